"""What a sandbox client may do beyond its own clone, checked with psycopg through the proxy.

Usage: sandbox_reach.py refused|allowed   (DATABASE_URL: any key of a `dbsandbox run`)
Keys `a` and `b` are two sandboxes of the run. Exits non-zero with the first surprise.
"""

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg

expect = sys.argv[1]
url = urlsplit(os.environ["DATABASE_URL"])


def connect(key):
    return psycopg.connect(urlunsplit(url._replace(path="/" + key)), autocommit=True)


a, b = connect("a"), connect("b")
b_pid, b_database = b.execute("select pg_backend_pid(), current_database()").fetchone()

# What a test suite does to its own schema works, whoever it runs as.
a.execute("create table scratch(x int)")
a.execute("truncate items restart identity")
a.execute("select setval('items_id_seq', 7)")
a.execute("create extension if not exists citext")

attempts = {
    "COPY TO PROGRAM": "copy (select 1) to program 'cat > /dev/null'",
    "pg_read_file": "select pg_read_file('/etc/passwd')",
    "CREATE ROLE": "create role intruder superuser",
    "pg_terminate_backend of another key": f"select pg_terminate_backend({b_pid})",
    "DROP DATABASE of another key": f'drop database "{b_database}"',
}
# A superuser may, except what the proxy refuses anyway (DROP DATABASE cannot run in a rollback
# sandbox's transaction) and what would end the other key's backend.
allowed = {"COPY TO PROGRAM", "pg_read_file", "CREATE ROLE"}
outcomes = []
for what, sql in attempts.items():
    if expect == "allowed" and what not in allowed:
        continue
    try:
        a.execute(sql)
        outcome = "allowed"
    except psycopg.Error as e:
        outcome = f"refused {e.sqlstate}"
    outcomes.append(f"{what}: {outcome}")
    if expect == "allowed" and outcome != "allowed":
        sys.exit(f"{what} should work with --superuser: {outcome}")
    if expect == "refused" and outcome == "allowed":
        sys.exit(f"a sandbox client could: {what}")

# The other key never noticed.
assert b.execute("select count(*) from items").fetchone()[0] == 1
print("\n".join(outcomes))
print(f"checked {len(outcomes)}")
