"""Issue 10's behaviours through psycopg2, the driver most Django projects still use: it speaks
the simple protocol only (server-side cursors are SQL DECLARE/FETCH, parameters are
interpolated), so it takes other paths through a rollback sandbox than psycopg 3 does. Each test
states what plain PostgreSQL answers; the proxy must answer the same."""

import select

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from conftest import url_for, key_for, reset_sandbox


@pytest.fixture
def connect(request):
    url = url_for(key_for("pg2_" + request.node.name))
    reset_sandbox(url)
    opened = []

    def open_connection(autocommit=False):
        conn = psycopg2.connect(url)
        conn.autocommit = autocommit
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        conn.close()
    reset_sandbox(url)


def test_pg2_deferred_fk_violation_fails_the_commit(connect):
    conn = connect()
    cur = conn.cursor()
    cur.execute(
        "create table parent (id int primary key);"
        "create table child (p int references parent deferrable initially deferred)"
    )
    conn.commit()
    cur.execute("insert into child values (1)")
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        conn.commit()
    cur.execute("truncate child, parent")  # 55006 if the violation were still pending
    conn.commit()


def test_pg2_named_cursor_reads_in_chunks_beside_another_connection(connect):
    conn, other = connect(), connect(autocommit=True)
    cur = conn.cursor(name="chunks")
    cur.itersize = 7
    cur.execute("select g from generate_series(1, 50) g")
    seen = []
    for (g,) in cur:
        seen.append(g)
        if g % 10 == 0:
            other.cursor().execute("insert into items (name) values (%s)", [f"at {g}"])
    assert seen == list(range(1, 51))
    conn.commit()
    with other.cursor() as count:
        count.execute("select count(*) from items")
        assert count.fetchone() == (5,)


def test_pg2_set_config_time_zone_survives_a_rolled_back_transaction(connect):
    conn = connect()
    cur = conn.cursor()
    cur.execute("select set_config('TimeZone', 'America/Chicago', false)")
    conn.commit()
    cur.execute("select 1")
    conn.rollback()
    cur.execute("show timezone")
    assert cur.fetchone() == ("America/Chicago",)


def test_pg2_pg_notify_from_a_trigger_is_delivered_at_commit(connect):
    listener, writer = connect(autocommit=True), connect()
    listener.cursor().execute("listen jobs")
    cur = writer.cursor()
    cur.execute(
        "create function notify_job() returns trigger language plpgsql as "
        "$$ begin perform pg_notify('jobs', new.name); return new; end $$;"
        "create trigger job_added after insert on items for each row execute function notify_job()"
    )
    cur.execute("insert into items (name) values ('job 1')")
    listener.poll()
    assert listener.notifies == [], "nothing before the commit"
    writer.commit()
    if not select.select([listener], [], [], 10)[0]:
        pytest.fail("no notification within 10 s")
    listener.poll()
    assert [(n.channel, n.payload) for n in listener.notifies] == [("jobs", "job 1")]


def test_pg2_read_only_session_refuses_writes(connect):
    conn, other = connect(), connect(autocommit=True)
    conn.set_session(readonly=True)
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        conn.cursor().execute("insert into items (name) values ('refused')")
    conn.rollback()
    other.cursor().execute("insert into items (name) values ('other')")
    conn.set_session(readonly=False)
    conn.cursor().execute("insert into items (name) values ('mine')")
    conn.commit()
    with other.cursor() as cur:
        cur.execute("select name from items order by id")
        assert cur.fetchall() == [("other",), ("mine",)]


def test_pg2_temp_table_ends_with_its_connection(connect):
    first = connect(autocommit=True)
    first.cursor().execute("create temp table scratch (id int)")
    first.close()
    second = connect(autocommit=True)
    second.cursor().execute("create temp table scratch (id int)")  # 42P07 if it survived
