"""dbsandbox conformance: psycopg 3 through the proxy.

Numbers in the test names follow the list in conformance/README.md (issue 3, "What must
show that it works"). Every test has its own sandbox key and asserts exact values.

psycopg protocol notes (what the proxy sees):
* ``execute(sql)`` without parameters uses the simple protocol (``PQsendQuery``);
  with parameters, or ``prepare=True``, or in pipeline mode, the extended protocol.
* BEGIN/COMMIT/ROLLBACK/SAVEPOINT issued by ``conn.transaction()`` and ``conn.commit()``
  go over the simple protocol.
* ``prepare=True`` (or the automatic preparation after 5 runs) names statements
  ``_pg3_0``, ``_pg3_1``, ... per connection: two connections use the same names.
"""

import threading
import time

import psycopg
import psycopg.errors
import pytest
from psycopg.pq import TransactionStatus

from conftest import RESET

IDLE = TransactionStatus.IDLE
INTRANS = TransactionStatus.INTRANS
INERROR = TransactionStatus.INERROR


def names(conn, table="items"):
    return [r[0] for r in conn.execute(f"select name from {table} order by id").fetchall()]


def count(conn, table="items"):
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def reset_strict(conn):
    """The in-band reset; must be answered by the proxy with one row ('ok',)."""
    cur = conn.execute(RESET)
    assert [d.name for d in cur.description] == ["dbsandbox_reset"]
    assert cur.fetchall() == [("ok",)]


# --- (1) code that commits mid-test, then reset -> nothing left ---------------------------


def test_01_commit_then_reset_leaves_nothing(sandbox):
    app = sandbox.connect()  # autocommit, as application code: every statement commits
    app.execute("insert into items(name) values ('autocommitted')")
    tx = sandbox.connect(autocommit=False)
    tx.execute("insert into items(name) values ('committed-in-tx')")
    tx.commit()
    assert tx.info.transaction_status == IDLE
    other = sandbox.connect()
    assert names(other) == ["autocommitted", "committed-in-tx"]

    reset_strict(other)

    assert count(other) == 0
    assert count(app) == 0
    assert count(sandbox.connect()) == 0


# --- (2) a second connection of the same key sees the first one's writes ------------------


def test_02_second_connection_sees_committed_writes(sandbox):
    a = sandbox.connect()
    b = sandbox.connect()
    a.execute("insert into items(name) values ('from-a')")
    assert names(b) == ["from-a"]
    b.execute("update items set qty = 7 where name = 'from-a'")
    assert a.execute("select qty from items where name = 'from-a'").fetchone() == (7,)


def test_02b_second_connection_sees_uncommitted_writes(sandbox):
    """Rollback isolation only: connections of a key share one transaction, so even
    uncommitted writes are visible (documented difference from production)."""
    a = sandbox.connect(autocommit=False)
    b = sandbox.connect()
    a.execute("insert into items(name) values ('uncommitted')")
    assert a.info.transaction_status == INTRANS
    assert names(b) == ["uncommitted"]
    a.rollback()
    assert names(b) == []


# --- (3) a caught unique violation, then more statements ----------------------------------


def test_03_caught_unique_violation_then_more_statements(conn):
    conn.execute("insert into items(name) values ('dup')")
    with pytest.raises(psycopg.errors.UniqueViolation) as exc:
        conn.execute("insert into items(name) values ('dup')")
    assert exc.value.sqlstate == "23505"
    assert conn.info.transaction_status == IDLE
    conn.execute("insert into items(name) values ('after')")
    assert names(conn) == ["dup", "after"]
    # the failed insert consumed id 2, as in PostgreSQL
    assert conn.execute("select id from items where name = 'after'").fetchone() == (3,)


def test_03b_caught_unique_violation_inside_savepoint(sandbox):
    """The ORM pattern: try an insert inside a savepoint, catch, go on in the transaction."""
    conn = sandbox.connect(autocommit=False)
    with conn.transaction():
        conn.execute("insert into items(name) values ('dup')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():  # SAVEPOINT "_pg3_1" ... ROLLBACK TO
                conn.execute("insert into items(name) values ('dup')")
        assert conn.info.transaction_status == INTRANS
        conn.execute("insert into items(name) values ('after')")
    assert conn.info.transaction_status == IDLE
    assert names(sandbox.connect()) == ["dup", "after"]


# --- (4) nested transactions and savepoints at depth 3 ------------------------------------


def test_04_savepoints_depth3_exact_survivors(sandbox):
    conn = sandbox.connect()  # autocommit: BEGIN/COMMIT written by hand
    observer = sandbox.connect()
    assert conn.info.transaction_status == IDLE
    conn.execute("BEGIN")
    assert conn.info.transaction_status == INTRANS
    conn.execute("insert into items(name) values ('top')")
    conn.execute("SAVEPOINT a")
    conn.execute("insert into items(name) values ('in-a')")
    conn.execute("SAVEPOINT b")
    conn.execute("insert into items(name) values ('in-b-undone')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("insert into items(name) values ('top')")
    assert conn.info.transaction_status == INERROR
    conn.execute("ROLLBACK TO b")
    assert conn.info.transaction_status == INTRANS
    conn.execute("insert into items(name) values ('in-b-kept')")
    conn.execute("RELEASE a")
    assert conn.info.transaction_status == INTRANS
    # a is released (and b with it): rolling back to either is now an error
    with pytest.raises(psycopg.errors.InvalidSavepointSpecification) as exc:
        conn.execute("ROLLBACK TO a")
    assert exc.value.sqlstate == "3B001"
    assert conn.info.transaction_status == INERROR
    conn.execute("ROLLBACK")
    assert conn.info.transaction_status == IDLE
    assert names(observer) == []

    # the same again, ending with COMMIT this time
    conn.execute("BEGIN")
    conn.execute("insert into items(name) values ('top')")
    conn.execute("SAVEPOINT a")
    conn.execute("insert into items(name) values ('in-a')")
    conn.execute("SAVEPOINT b")
    conn.execute("insert into items(name) values ('in-b-undone')")
    conn.execute("ROLLBACK TO b")
    conn.execute("insert into items(name) values ('in-b-kept')")
    conn.execute("RELEASE a")
    conn.execute("COMMIT")
    assert conn.info.transaction_status == IDLE
    assert names(observer) == ["top", "in-a", "in-b-kept"]


def test_04b_driver_nested_transactions_depth3(sandbox):
    """psycopg's own nesting: transaction() -> BEGIN, nested -> SAVEPOINT "_pg3_n"."""
    conn = sandbox.connect()
    with conn.transaction():
        conn.execute("insert into items(name) values ('l1')")
        with conn.transaction():
            conn.execute("insert into items(name) values ('l2')")
            with conn.transaction():
                conn.execute("insert into items(name) values ('l3-undone')")
                assert conn.info.transaction_status == INTRANS
                raise psycopg.Rollback()  # ROLLBACK TO SAVEPOINT; RELEASE
            conn.execute("insert into items(name) values ('l2-after')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():
                conn.execute("insert into items(name) values ('l1')")
        assert conn.info.transaction_status == INTRANS
    assert conn.info.transaction_status == IDLE
    assert names(sandbox.connect()) == ["l1", "l2", "l2-after"]


def test_04c_committed_savepoints_gone_after_reset(sandbox):
    conn = sandbox.connect()
    conn.execute("BEGIN")
    conn.execute("SAVEPOINT a")
    conn.execute("SAVEPOINT b")
    conn.execute("insert into items(name) values ('deep')")
    conn.execute("RELEASE a")
    conn.execute("COMMIT")
    assert names(sandbox.connect()) == ["deep"]
    reset_strict(conn)
    assert count(conn) == 0
    assert conn.info.transaction_status == IDLE


# --- (5) prepared statements with the same name on two connections ------------------------


def test_05_same_protocol_statement_name_on_two_connections(sandbox):
    a = sandbox.connect()
    b = sandbox.connect()
    # Both connections' first prepared statement is named _pg3_0, with different SQL.
    for i in range(3):
        assert a.execute("select %s::int * 2", [i + 20], prepare=True).fetchone() == (2 * (i + 20),)
        assert b.execute("select 'b:' || %s::text", [f"x{i}"], prepare=True).fetchone() == (f"b:x{i}",)
    assert list(a._prepared._names.values()) == [b"_pg3_0"]
    assert list(b._prepared._names.values()) == [b"_pg3_0"]


def test_05b_same_sql_prepare_name_on_two_connections(sandbox):
    a = sandbox.connect()
    b = sandbox.connect()
    a.execute("PREPARE s1(int) AS select $1 + 1")
    b.execute("PREPARE s1(text) AS select 'b:' || $1")
    assert a.execute("EXECUTE s1(41)").fetchone() == (42,)
    assert b.execute("EXECUTE s1('x')").fetchone() == ("b:x",)
    a.execute("DEALLOCATE s1")
    with pytest.raises(psycopg.errors.InvalidSqlStatementName) as exc:
        a.execute("EXECUTE s1(1)")
    assert exc.value.sqlstate == "26000"
    assert b.execute("EXECUTE s1('y')").fetchone() == ("b:y",)


# --- (6) pipelined extended-protocol queries ---------------------------------------------


def test_06_pipeline(conn):
    with conn.pipeline():
        c1 = conn.execute("insert into items(name) values (%s) returning id", ["p1"])
        c2 = conn.execute("insert into items(name) values (%s) returning id", ["p2"])
        c3 = conn.execute("insert into items(name, qty) values (%s, %s) returning id", ["p3", 5])
        c4 = conn.execute("select count(*), sum(qty) from items where name like %s", ["p%"])
    assert (c1.fetchone(), c2.fetchone(), c3.fetchone()) == ((1,), (2,), (3,))
    assert c4.fetchone() == (3, 5)


def test_06b_pipeline_error_aborts_until_sync(conn):
    with pytest.raises(psycopg.errors.UniqueViolation):
        with conn.pipeline() as p:
            conn.execute("insert into items(name) values (%s)", ["one"])
            p.sync()
            conn.execute("insert into items(name) values (%s)", ["one"])
            conn.execute("insert into items(name) values (%s)", ["skipped"])
    assert conn.info.transaction_status == IDLE
    assert names(conn) == ["one"]
    with conn.pipeline():
        c = conn.execute("select count(*) from items where name = %s", ["one"])
    assert c.fetchone() == (1,)


# --- (7) COPY in and out -----------------------------------------------------------------


def test_07_copy_in_and_out(conn):
    cur = conn.cursor()
    with cur.copy("COPY items(name, qty) FROM STDIN") as copy:
        for i in range(1, 501):
            copy.write_row((f"c{i}", i))
    assert cur.rowcount == 500
    assert conn.execute("select count(*), sum(qty) from items").fetchone() == (500, 125250)
    out = []
    with cur.copy("COPY (select id, name, qty from items where id <= 3 order by id) TO STDOUT") as copy:
        for row in copy.rows():
            out.append(row)
    assert out == [("1", "c1", "1"), ("2", "c2", "2"), ("3", "c3", "3")]
    with cur.copy("COPY items TO STDOUT") as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    assert data.count(b"\n") == 500


def test_07b_copy_in_failure_then_connection_works(conn):
    conn.execute("insert into items(name) values ('taken')")
    cur = conn.cursor()
    with pytest.raises(psycopg.errors.UniqueViolation):
        with cur.copy("COPY items(name) FROM STDIN") as copy:
            copy.write_row(("fresh",))
            copy.write_row(("taken",))
    assert conn.info.transaction_status == IDLE
    assert names(conn) == ["taken"]


# --- (8) LISTEN/NOTIFY between two connections of one key --------------------------------


def payloads(conn, timeout):
    return [(n.channel, n.payload) for n in conn.notifies(timeout=timeout)]


def test_08_notify_delivered_at_commit_not_before_not_on_rollback(sandbox):
    listener = sandbox.connect()
    notifier = sandbox.connect()
    listener.execute("LISTEN jobs")

    notifier.execute("BEGIN")
    notifier.execute("NOTIFY jobs, 'at-commit'")
    assert payloads(listener, 0.5) == []  # not before commit
    notifier.execute("COMMIT")
    got = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == [("jobs", "at-commit")]

    notifier.execute("BEGIN")
    notifier.execute("NOTIFY jobs, 'rolled-back'")
    notifier.execute("ROLLBACK")
    notifier.execute("NOTIFY jobs, 'outside-tx'")  # delivered at once
    got = [(n.channel, n.payload) for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == [("jobs", "outside-tx")]
    assert payloads(listener, 0.5) == []

    listener.execute("UNLISTEN jobs")
    notifier.execute("NOTIFY jobs, 'after-unlisten'")
    assert payloads(listener, 0.5) == []


# --- (9) a statement that cannot run in a transaction ------------------------------------


def test_09_vacuum_refused_naming_database_isolation(conn):
    with pytest.raises(psycopg.errors.Error) as exc:
        conn.execute("VACUUM items")
    assert exc.value.sqlstate == "25001"
    assert "database" in str(exc.value)
    assert conn.info.transaction_status == IDLE
    assert conn.execute("select 1").fetchone() == (1,)


def test_09b_prepare_transaction_refused(conn):
    conn.execute("BEGIN")
    with pytest.raises(psycopg.errors.Error) as exc:
        conn.execute("PREPARE TRANSACTION 'x'")
    assert exc.value.sqlstate == "0A000"
    conn.execute("ROLLBACK")
    assert conn.execute("select 1").fetchone() == (1,)


# --- (10) id = 1 after reset --------------------------------------------------------------


def test_10_ids_restart_after_reset(conn):
    assert conn.execute("insert into empty_table(v) values (1) returning id").fetchone() == (1,)
    assert conn.execute("insert into empty_table(v) values (2) returning id").fetchone() == (2,)
    assert conn.execute("insert into t0(name) values ('new') returning id").fetchone() == (101,)
    reset_strict(conn)
    assert conn.execute("insert into empty_table(v) values (1) returning id").fetchone() == (1,)
    assert conn.execute("insert into t0(name) values ('new') returning id").fetchone() == (101,)
    assert count(conn, "t0") == 101


SHARED_KEY = "py_id_one_consecutive"


@pytest.mark.parametrize("sandbox", [SHARED_KEY], indirect=True)
def test_10b_id_one_consecutive_first(sandbox):
    conn = sandbox.connect()
    assert conn.execute("insert into empty_table(v) values (1) returning id").fetchone() == (1,)
    assert conn.execute("insert into t0(name) values ('consecutive') returning id").fetchone() == (101,)


@pytest.mark.parametrize("sandbox", [SHARED_KEY], indirect=True)
def test_10c_id_one_consecutive_second(sandbox):
    conn = sandbox.connect()
    assert conn.execute("insert into empty_table(v) values (1) returning id").fetchone() == (1,)
    assert conn.execute("insert into t0(name) values ('consecutive') returning id").fetchone() == (101,)


def test_10d_last_connection_close_resets(sandbox):
    conn = psycopg.connect(sandbox.url, autocommit=True)
    conn.execute("insert into items(name) values ('left-behind')")
    conn.execute("insert into empty_table(v) values (1)")
    conn.close()
    conn = sandbox.connect()
    assert count(conn) == 0
    assert conn.execute("insert into empty_table(v) values (1) returning id").fetchone() == (1,)


# --- (11) cancel of a long query ---------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "cancel_safe"])
def test_11_cancel_long_query(conn, how):
    conn.execute("insert into items(name) values ('before-cancel')")
    timer = threading.Timer(1.0, getattr(conn, how))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(psycopg.errors.QueryCanceled) as exc:
            conn.execute("select pg_sleep(30)")
    finally:
        timer.cancel()
    elapsed = time.monotonic() - started
    assert exc.value.sqlstate == "57014"
    assert elapsed < 5, f"cancel took {elapsed:.1f}s"
    assert conn.info.transaction_status == IDLE
    assert conn.execute("select 1").fetchone() == (1,)
    assert names(conn) == ["before-cancel"]


# --- (12) a failed transaction answers 25P02 until ROLLBACK -------------------------------


def test_12_failed_transaction_25P02_until_rollback(conn):
    conn.execute("BEGIN")
    conn.execute("insert into items(name) values ('x')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("insert into items(name) values ('x')")
    assert conn.info.transaction_status == INERROR
    for sql, params in [("select 1", None), ("select %s::int", [1]), ("insert into items(name) values ('y')", None)]:
        with pytest.raises(psycopg.errors.InFailedSqlTransaction) as exc:
            conn.execute(sql, params)
        assert exc.value.sqlstate == "25P02"
        assert conn.info.transaction_status == INERROR
    conn.execute("ROLLBACK")
    assert conn.info.transaction_status == IDLE
    assert count(conn) == 0


def test_12b_commit_of_failed_transaction_rolls_back(conn):
    conn.execute("BEGIN")
    conn.execute("insert into items(name) values ('x')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("insert into items(name) values ('x')")
    cur = conn.execute("COMMIT")  # PostgreSQL answers ROLLBACK to a COMMIT of a failed tx
    assert cur.statusmessage == "ROLLBACK"
    assert conn.info.transaction_status == IDLE
    assert count(conn) == 0


# --- (13) in-band reset over simple and extended protocol --------------------------------


def test_13_reset_simple_protocol(conn):
    conn.execute("insert into items(name) values ('gone')")
    res = conn.pgconn.exec_(RESET.encode())  # PQexec: simple Query message
    assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
    assert (res.ntuples, res.nfields) == (1, 1)
    assert res.fname(0) == b"dbsandbox_reset"
    assert res.get_value(0, 0) == b"ok"
    assert count(conn) == 0


def test_13b_reset_extended_protocol_unnamed(conn):
    conn.execute("insert into items(name) values ('gone')")
    res = conn.pgconn.exec_params(RESET.encode(), [])  # Parse/Bind/Describe/Execute/Sync
    assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
    assert res.fname(0) == b"dbsandbox_reset"
    assert res.get_value(0, 0) == b"ok"
    assert count(conn) == 0


def test_13c_reset_extended_protocol_prepared(conn):
    conn.execute("insert into items(name) values ('gone')")
    for i in range(2):  # named statement, executed twice
        cur = conn.execute(RESET, prepare=True)
        assert [d.name for d in cur.description] == ["dbsandbox_reset"]
        assert cur.fetchall() == [("ok",)]
        assert count(conn) == 0
        conn.execute("insert into items(name) values ('gone')")


def test_13d_reset_in_pipeline(conn):
    conn.execute("insert into items(name) values ('gone')")
    with conn.pipeline():
        r = conn.execute(RESET)
        c = conn.execute("select count(*) from items")
    assert r.fetchall() == [("ok",)]
    assert c.fetchone() == (0,)


# --- (14) names and text as PostgreSQL shows them (issue 10) --------------------------------


def test_14_server_side_cursor_declared_in_sql_used_through_the_protocol(sandbox):
    conn = sandbox.connect(autocommit=False)
    conn.execute("insert into items(name) values ('a'), ('b'), ('c')")
    for _ in range(2):  # the same cursor name in the next transaction
        with conn.cursor(name="c") as cur:
            cur.execute("select name from items where name > %s order by id", [""])
            assert cur.fetchmany(2) == [("a",), ("b",)]
            assert cur.fetchall() == [("c",)]
        conn.commit()
    assert conn.info.transaction_status == IDLE


def test_14b_errors_name_the_clients_own_statements(conn):
    with pytest.raises(psycopg.errors.InvalidSqlStatementName) as excinfo:
        conn.execute("EXECUTE nosuch")
    assert str(excinfo.value).splitlines()[0] == 'prepared statement "nosuch" does not exist'


def test_14c_pg_prepared_statements_lists_the_connections_own_only(sandbox):
    one = sandbox.connect()
    two = sandbox.connect()
    one.execute("select 1", prepare=True)
    listed = "select name from pg_prepared_statements order by name"
    assert one.execute(listed, prepare=False).fetchall() == [("_pg3_0",)]
    assert two.execute(listed, prepare=False).fetchall() == []


def test_14d_latin9_client_encoding_with_non_ascii_text(sandbox):
    conn = sandbox.connect(client_encoding="latin9")
    assert conn.info.parameter_status("client_encoding") == "LATIN9"
    assert conn.execute("select %s || '€', length('é')", ["é"]).fetchone() == ("é€", 1)
    conn.execute("SET client_encoding TO 'UTF8'")
    assert conn.execute("select 'ü'").fetchone() == ("ü",)
