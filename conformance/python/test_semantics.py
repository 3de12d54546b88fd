"""dbsandbox rollback sandboxes keep PostgreSQL's transaction semantics (issue 10), through
psycopg 3: deferred constraints checked at the client's COMMIT, session settings made with
``set_config(…, false)`` and ``SET SESSION CHARACTERISTICS``, the client's own
``application_name``, temporary objects that end with their connection, a connection that
terminates its own backend, and ``pg_notify()`` delivered as NOTIFY is. Each test states what plain PostgreSQL answers; the proxy must answer
the same (numbers continue conformance/README.md's list).
"""

import time

import psycopg
import psycopg.errors
import pytest
from psycopg.pq import TransactionStatus

from conftest import Sandbox, key_for

IDLE = TransactionStatus.IDLE

DEFERRED_SCHEMA = """
create table parent (id int primary key);
create table child (
  id serial primary key,
  parent_id int references parent (id) deferrable initially deferred
);
create table strict_child (
  id serial primary key,
  parent_id int references parent (id) deferrable initially immediate
);
"""


def test_14_deferred_fk_violation_fails_the_commit(sandbox):
    conn = sandbox.connect(autocommit=False)
    conn.execute(DEFERRED_SCHEMA)
    conn.commit()
    conn.execute("insert into child (parent_id) values (-1)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as exc:
        conn.commit()
    assert exc.value.diag.constraint_name == "child_parent_id_fkey"
    assert conn.info.transaction_status == IDLE
    # Rolled back, and no pending trigger events are left behind for a TRUNCATE.
    assert conn.execute("select count(*) from child").fetchone() == (0,)
    conn.execute("truncate child")
    conn.commit()


def test_14b_initially_deferred_stays_deferred_after_a_checked_commit(sandbox):
    conn = sandbox.connect(autocommit=False)
    conn.execute(DEFERRED_SCHEMA)
    conn.commit()
    conn.execute("insert into parent values (1)")
    conn.execute("insert into child (parent_id) values (1)")
    conn.commit()
    # Next transaction: the violation is only checked at COMMIT, so it can be repaired first.
    conn.execute("insert into child (parent_id) values (2)")
    conn.execute("insert into parent values (2)")
    conn.commit()
    # An INITIALLY IMMEDIATE constraint is still checked at once.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("insert into strict_child (parent_id) values (3)")
    conn.rollback()
    # The client's own SET CONSTRAINTS … DEFERRED holds inside its transaction.
    conn.execute("set constraints strict_child_parent_id_fkey deferred")
    conn.execute("insert into strict_child (parent_id) values (3)")
    conn.execute("insert into parent values (3)")
    conn.commit()
    assert conn.execute("select count(*) from strict_child").fetchone() == (1,)
    conn.commit()


def test_14c_autocommit_statement_checks_deferred_constraints(sandbox):
    conn = sandbox.connect()
    conn.execute(DEFERRED_SCHEMA)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("insert into child (parent_id) values (-1)")
    assert conn.info.transaction_status == IDLE
    assert conn.execute("select count(*) from child").fetchone() == (0,)
    conn.execute("truncate child")


def test_14d_autocommit_extended_protocol_statement_checks_deferred_constraints(sandbox):
    conn = sandbox.connect()
    conn.execute(DEFERRED_SCHEMA)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("insert into child (parent_id) values (%s)", [-1])
    assert conn.info.transaction_status == IDLE
    assert conn.execute("select count(*) from child").fetchone() == (0,)
    conn.execute("insert into parent values (%s)", [1])
    conn.execute("insert into child (parent_id) values (%s)", [1], prepare=True)
    conn.execute("truncate child")


def test_15_set_config_session_survives_a_rolled_back_transaction(sandbox):
    conn = sandbox.connect(autocommit=False)
    conn.execute("select set_config('TimeZone', 'America/Chicago', false)")
    conn.commit()
    conn.execute("select 1")
    conn.rollback()
    assert conn.execute("show timezone").fetchone() == ("America/Chicago",)
    conn.rollback()
    # set_config(…, true) is SET LOCAL: gone when the transaction ends.
    conn.execute("select set_config('TimeZone', 'Asia/Tokyo', true)")
    assert conn.execute("show timezone").fetchone() == ("Asia/Tokyo",)
    conn.commit()
    assert conn.execute("show timezone").fetchone() == ("America/Chicago",)
    conn.rollback()
    # A set_config(…, false) inside a transaction that rolls back is undone, as SET is.
    conn.execute("select set_config('TimeZone', 'Europe/Paris', false)")
    conn.rollback()
    assert conn.execute("show timezone").fetchone() == ("America/Chicago",)
    conn.rollback()


def test_15b_set_config_is_per_connection(sandbox):
    one = sandbox.connect()
    two = sandbox.connect()
    one.execute("select set_config('application_name', 'one', false)")
    assert two.execute("show application_name").fetchone() == ("",)
    assert one.execute("show application_name").fetchone() == ("one",)


def test_19_application_name_defaults_to_empty(sandbox):
    conn = sandbox.connect()
    assert conn.execute("show application_name").fetchone() == ("",)
    assert conn.info.parameter_status("application_name") in (None, b"", "")
    named = sandbox.connect(application_name="mine")
    assert named.execute("show application_name").fetchone() == ("mine",)


def test_18_temp_objects_end_with_their_connection(sandbox):
    stays = sandbox.connect()  # keeps the key open: no reset when the first one closes
    first = sandbox.connect()
    first.execute("create temp table person (id serial primary key, name text)")
    first.execute("insert into person (name) values ('a')")
    first.close()
    second = sandbox.connect()
    second.execute("create temp table person (id int)")  # 42P07 if the first one's survived
    assert second.execute("select count(*) from person").fetchone() == (0,)
    assert stays.execute("select 1").fetchone() == (1,)


def test_18b_a_temp_name_another_open_connection_holds_fails_with_the_remedy(sandbox):
    # A documented difference (README: rollback sandbox differences): two connections of a key
    # open at once share one temporary schema. PostgreSQL would let both create `person`; here
    # the second gets PostgreSQL's 42P07, and its HINT names the cause and the remedy.
    first = sandbox.connect()
    first.execute("create temp table person (id int)")
    second = sandbox.connect()
    with pytest.raises(psycopg.errors.DuplicateTable) as exc:
        second.execute("create temp table person (id int)")
    assert exc.value.diag.message_primary == 'relation "person" already exists'
    hint = exc.value.diag.message_hint or ""
    assert "another open connection of dbsandbox key" in hint
    assert "dbsandbox.isolation=database" in hint
    # A clash with the connection's own temporary table is PostgreSQL's error, with no hint.
    with pytest.raises(psycopg.errors.DuplicateTable) as own:
        first.execute("create temp table person (id int)")
    assert own.value.diag.message_hint is None
    # Nor is a clash with a table of the template (not another connection's temporary one).
    second.execute("create table lasting (id int)")
    with pytest.raises(psycopg.errors.DuplicateTable) as lasting:
        first.execute("create table lasting (id int)")
    assert lasting.value.diag.message_hint is None
    first.close()
    # The proxy reads the close a moment later; a new connection of the key is admitted only
    # once the closed one has left (its temporary objects dropped), as after a test.
    sandbox.connect().close()
    second.execute("create temp table person (id int)")  # the first one's went with it


@pytest.mark.parametrize(
    "sql, params",
    [
        ("select pg_terminate_backend(%s)", "own pid"),  # psycopg's test_broken
        ("select pg_terminate_backend(pg_backend_pid())", None),
    ],
)
def test_20_terminating_the_own_backend_ends_only_this_connection(sandbox, sql, params):
    other = sandbox.connect()
    other.execute("insert into items (name) values ('kept')")
    conn = sandbox.connect()
    with pytest.raises(psycopg.errors.AdminShutdown):
        conn.execute(sql, [conn.info.backend_pid] if params else None)
    assert conn.closed and conn.broken
    assert other.execute("select name from items").fetchall() == [("kept",)]


def test_16_session_characteristics_are_kept_like_set(sandbox):
    conn = sandbox.connect(autocommit=False)
    conn.execute("set session characteristics as transaction isolation level serializable")
    conn.commit()
    conn.execute("select 1")
    conn.rollback()
    assert conn.execute("show default_transaction_isolation").fetchone() == ("serializable",)
    conn.rollback()


def _within(seconds, work):
    """Runs `work` in a thread; its result, or a failure if it has not answered in time (the
    thread is left waiting: the fixture's clean-up closes its connection)."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(work).result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"no answer within {seconds} s: the key is held by another connection")
    finally:
        pool.shutdown(wait=False)


def test_21_a_pipeline_waiting_for_its_results_does_not_hold_the_key(sandbox):
    """psycopg's pipeline mode fetches a result with a Flush, not a Sync: the sequence stays
    open on the server while the code goes on, here to a second connection of the key (psycopg's
    own test_autocommit_off_but_no_tx_started_successful_exit[pipeline=on] does this). In
    PostgreSQL the two sessions are independent; the second one must answer, and the pipeline
    must go on afterwards as if nothing had happened in between."""
    piped = sandbox.connect(autocommit=False)
    other = sandbox.connect()
    with piped.pipeline():
        with piped.transaction():
            piped.execute("insert into items (name) values ('piped')")
            assert piped.execute("select name from items").fetchall() == [("piped",)]
            seen = _within(10, lambda: other.execute("select count(*) from items").fetchone())
            assert seen == (1,)  # rollback isolation: one transaction, uncommitted rows shared
            piped.execute("insert into items (name) values ('after')")
            assert piped.execute("select count(*) from items").fetchone() == (2,)
        assert piped.execute("select 1").fetchone() == (1,)
    piped.commit()
    names = other.execute("select name from items order by id").fetchall()
    assert names == [("piped",), ("after",)]


def test_21b_a_failed_pipeline_statement_after_another_connection_ran_skips_to_sync(sandbox):
    """The sequence's error after the key's turn went to another connection: the rest of the
    sequence up to its Sync is skipped, as PostgreSQL skips it, and the connection then works."""
    piped = sandbox.connect()
    other = sandbox.connect()
    with pytest.raises(psycopg.errors.UniqueViolation):
        with piped.pipeline():
            piped.execute("insert into items (name) values ('once')")
            assert piped.execute("select count(*) from items").fetchone() == (1,)
            assert _within(10, lambda: other.execute("select 2").fetchone()) == (2,)
            piped.execute("insert into items (name) values ('once')")
            piped.execute("insert into items (name) values ('skipped')")
    assert piped.execute("select name from items order by id").fetchall() == [("once",)]
    assert other.execute("select count(*) from items").fetchone() == (1,)


def test_23_idle_in_transaction_timeout_ends_only_that_connection(sandbox):
    """A connection's own idle_in_transaction_session_timeout ends its session with 25P03 and
    rolls its transaction back (psycopg's test_right_exception_on_session_timeout); the shared
    backend never gets the setting, so the key's other connections go on."""
    other = sandbox.connect()
    conn = sandbox.connect(autocommit=False)
    conn.execute("insert into items (name) values ('lost')")
    conn.execute("set session idle_in_transaction_session_timeout = 100")
    time.sleep(1)
    with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
        conn.execute("select 1")
    assert conn.closed
    assert other.execute("select count(*) from items").fetchone() == (0,)
    idle = sandbox.connect(autocommit=False)
    idle.execute("set idle_in_transaction_session_timeout = 100")
    idle.commit()
    time.sleep(0.5)  # idle outside a transaction: no timeout, as in PostgreSQL
    assert idle.execute("select 1").fetchone() == (1,)


def test_24_read_only_transactions_refuse_writes_and_read_back(sandbox):
    """BEGIN READ ONLY, SET TRANSACTION READ ONLY and default_transaction_read_only make the
    connection's transactions read-only as in PostgreSQL (25006 on a write, `on` read back),
    while the key's other connections, whose statements run in between, still write."""
    other = sandbox.connect()
    other.execute("insert into items (name) values ('before')")
    conn = sandbox.connect(autocommit=False)
    conn.read_only = True  # psycopg sends BEGIN READ ONLY
    assert conn.execute("select current_setting('transaction_read_only')").fetchone() == ("on",)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("insert into items (name) values ('refused')")
    conn.rollback()
    assert conn.execute("select count(*) from items").fetchone() == (1,)
    other.execute("insert into items (name) values ('during')")  # between conn's statements
    conn.commit()
    conn.read_only = None
    conn.execute("set transaction read only")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("update items set qty = 1")
    conn.rollback()
    # An isolation level cannot be changed in the sandbox (a savepoint cannot): accepted, as
    # BEGIN ISOLATION LEVEL is; its READ ONLY holds.
    conn.execute("set transaction isolation level serializable, read only")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("insert into items (name) values ('refused')")
    conn.rollback()
    conn.execute("select set_config(%s, %s, false)", ["default_transaction_read_only", "on"])
    conn.commit()
    assert conn.execute("show transaction_read_only").fetchone() == ("on",)
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("delete from items")
    conn.rollback()
    conn.read_only = False  # BEGIN READ WRITE overrides the default
    conn.execute("insert into items (name) values ('written')")
    conn.commit()
    names = other.execute("select name, qty from items order by id").fetchall()
    assert names == [("before", 0), ("during", 0), ("written", 0)]


# --- (22) pg_notify() has NOTIFY's semantics -----------------------------------------------
# "Not delivered" is checked without waiting: another connection then sends a NOTIFY in
# autocommit (delivered at once), and the listener's notifications arrive in order, so that
# sentinel must be the next one.


def next_notification(listener):
    got = [(n.channel, n.payload) for n in listener.notifies(timeout=10, stop_after=1)]
    assert len(got) == 1, "no notification within 10 s"
    return got[0]


def nothing_before_sentinel(listener, sender):
    sender.execute("NOTIFY jobs, 'sentinel'")
    assert next_notification(listener) == ("jobs", "sentinel")


def test_22_pg_notify_in_autocommit_is_delivered_at_once_and_exact(sandbox):
    listener = sandbox.connect()
    notifier = sandbox.connect()
    listener.execute("LISTEN jobs")
    notifier.execute("SET client_min_messages = error")  # must not hide it
    notifier.execute("select pg_notify('jobs', 'literal')")
    assert next_notification(listener) == ("jobs", "literal")
    payload = "it's \"done\" \\ ; ü € 日本"
    notifier.execute("select pg_notify(%s, %s)", ["jobs", payload])
    assert next_notification(listener) == ("jobs", payload)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="channel name cannot be empty"):
        notifier.execute("select pg_notify('', 'x')")


def test_22b_pg_notify_in_a_transaction_waits_for_commit_dropped_by_rollback(sandbox):
    listener = sandbox.connect()
    notifier = sandbox.connect()
    other = sandbox.connect()
    listener.execute("LISTEN jobs")

    notifier.execute("BEGIN")
    notifier.execute("select pg_notify('jobs', 'at-commit')")
    nothing_before_sentinel(listener, other)  # not before COMMIT
    notifier.execute("COMMIT")
    assert next_notification(listener) == ("jobs", "at-commit")

    notifier.execute("BEGIN")
    notifier.execute("select pg_notify('jobs', 'rolled-back')")
    notifier.execute("ROLLBACK")
    nothing_before_sentinel(listener, other)

    notifier.execute("BEGIN")
    notifier.execute("select pg_notify('jobs', 'before-the-error')")
    with pytest.raises(psycopg.errors.DivisionByZero):
        notifier.execute("select 1/0")
    notifier.execute("ROLLBACK")
    nothing_before_sentinel(listener, other)


def test_22c_trigger_pg_notify_is_delivered_at_the_inserting_commit(sandbox):
    listener = sandbox.connect()
    worker = sandbox.connect(autocommit=False)
    other = sandbox.connect()
    other.execute(
        """create function items_signal() returns trigger language plpgsql as $$
           begin perform pg_notify('jobs', 'new ' || new.name); return new; end $$;
           create trigger items_signal after insert on items
             for each row execute function items_signal()"""
    )
    listener.execute("LISTEN jobs")
    worker.execute("insert into items (name) values ('queued')")
    nothing_before_sentinel(listener, other)
    worker.commit()
    assert next_notification(listener) == ("jobs", "new queued")


def test_22d_pg_notify_through_a_database_key_is_postgresqls_own():
    options = "-c dbsandbox.isolation=database"
    key = Sandbox(key_for("22d_database_key"))
    listener = key.connect(options=options)
    notifier = key.connect(options=options)
    try:
        listener.execute("LISTEN jobs")
        notifier.execute("select pg_notify('jobs', 'real')")
        assert next_notification(listener) == ("jobs", "real")
    finally:
        key.close_all()


def test_22e_notifications_keep_a_non_utf8_client_encoding(sandbox):
    listener = sandbox.connect()
    notifier = sandbox.connect()
    for conn in (listener, notifier):
        conn.execute("SET client_encoding = 'LATIN9'")
    listener.execute("LISTEN jobs")
    notifier.execute("select pg_notify('jobs', 'café €')")
    assert next_notification(listener) == ("jobs", "café €")
    notifier.execute("NOTIFY jobs, 'statement é'")
    assert next_notification(listener) == ("jobs", "statement é")


def test_25_a_finished_query_leaves_nothing_open_on_the_shared_backend(sandbox):
    """A query read to its end holds no table once its Sync is answered (PostgreSQL drops the
    unnamed portal with the implicit transaction): another connection of the key can TRUNCATE
    and DROP the table, also after the first connection's transaction ended or it closed
    (psycopg's test_leak drops its table in each round)."""
    reader = sandbox.connect()
    truncater = sandbox.connect()
    reader.execute("insert into items (name) values (%s)", ["x"])
    assert reader.execute("select name from items where qty = %s", [0]).fetchall() == [("x",)]
    truncater.execute("truncate items")
    tx = sandbox.connect(autocommit=False)
    tx.execute("create table scratch (id int)")
    assert tx.execute("select count(*) from scratch where id > %s", [0]).fetchone() == (0,)
    tx.commit()
    gone = sandbox.connect()
    assert gone.execute("select count(*) from scratch where id < %s", [1]).fetchone() == (0,)
    gone.close()
    truncater.execute("drop table scratch")
    assert truncater.execute("select count(*) from items").fetchone() == (0,)


def test_26_copy_freeze_after_truncate_in_the_transaction(sandbox):
    """`BEGIN; TRUNCATE t; COPY t FROM STDIN (FREEZE)`, as pgbench -i and bulk loaders do, is
    accepted by PostgreSQL (the table was truncated in the same transaction); through a rollback
    key each statement runs in a savepoint of its own, and FREEZE (which no connection of the key
    can observe) must not fail the COPY with 55000."""
    conn = sandbox.connect(autocommit=False)
    conn.execute("truncate items")
    with conn.cursor().copy("copy items (name) from stdin with (freeze)") as copy:
        copy.write_row(["frozen"])
    conn.commit()
    assert conn.execute("select name from items").fetchall() == [("frozen",)]


def test_27_own_notification_arrives_before_the_statement_returns(sandbox):
    """PostgreSQL sends a session's pending notifications before the ReadyForQuery that ends
    the statement, so a connection that LISTENs and NOTIFYs in autocommit has its handler
    called by the time execute() returns (psycopg's test_notify_handlers); the proxy wrote
    them after, in a write of their own, and the handler saw nothing yet."""
    conn = sandbox.connect()
    got = []
    conn.add_notify_handler(lambda n: got.append((n.channel, n.payload)))
    conn.execute("listen foo")
    for i in range(20):
        conn.execute(f"notify foo, 'n{i}'")
        assert got[-1:] == [("foo", f"n{i}")], f"round {i}: {got}"
    conn.execute("select pg_notify(%s, %s)", ["foo", "extended"])
    assert got[-1] == ("foo", "extended")
