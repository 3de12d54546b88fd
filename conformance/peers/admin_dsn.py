"""Print how to reach the embedded server as dbsandbox's admin role, from `dbsandbox status --json`.

conformance/peers/run.sh uses it for the direct mode: the same server the sandboxes live on.
Without arguments it prints a libpq DSN without dbname; with `--env`, PG* variable assignments
(for drivers that read the environment, like node-postgres).
"""

import json
import shlex
import sys

endpoint = json.load(sys.stdin)["endpoint"]
settings = {
    "host": endpoint.get("socket_dir") or endpoint["host"],
    "port": str(endpoint["port"]),
    "user": endpoint["user"],
}
if endpoint.get("password"):
    settings["password"] = endpoint["password"]
if "--env" in sys.argv[1:]:
    print(" ".join(f"PG{k.upper()}={shlex.quote(v)}" for k, v in settings.items()))
else:
    print(" ".join(f"{k}={v}" for k, v in settings.items()))
