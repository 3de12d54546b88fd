"""psycopg 3 through the ``dbsandbox`` fixture: committed rows never reach the next test."""

import psycopg
import pytest
from conftest import scalar


def test_committed_insert_gets_id_101(conn):
    assert scalar(conn, "insert into t0(name) values ('alice') returning id") == 101
    conn.commit()
    assert scalar(conn, "select count(*) from t0") == 101


def test_same_name_again_gets_id_101(conn):
    ids = conn.execute("insert into t0(name) values ('alice'), ('bob') returning id").fetchall()
    conn.commit()
    assert ids == [(101,), (102,)]
    assert scalar(conn, "select count(*) from t0") == 102


def test_committed_delete_is_undone_for_the_next_test(conn):
    conn.execute("delete from t39 where name in ('seed1', 'seed2', 'seed3')")
    conn.commit()
    assert scalar(conn, "select count(*) from t39") == 97
    assert scalar(conn, "insert into t39(name) values ('alice') returning id") == 101
    conn.commit()


def test_committed_update_is_undone_for_the_next_test(conn):
    conn.execute("update t0 set name = 'alice' where id = 1")
    conn.commit()
    assert scalar(conn, "select count(*) from t0 where name = 'alice'") == 1
    assert scalar(conn, "select count(*) from t0 where name like 'seed%'") == 99


def test_a_second_connection_sees_the_committed_row(conn, dbsandbox):
    conn.execute("insert into t0(name) values ('alice')")
    conn.commit()
    with psycopg.connect(dbsandbox.url) as other:
        assert scalar(other, "select id from t0 where name = 'alice'") == 101
        assert scalar(other, "select count(*) from t0") == 101


def test_unique_violation_then_more_work(conn):
    conn.execute("insert into t0(name) values ('alice')")
    conn.commit()
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("insert into t0(name) values ('alice')")
    conn.rollback()
    # As on PostgreSQL, the failed insert consumed id 102: sequences are not rolled back.
    assert scalar(conn, "insert into t0(name) values ('bob') returning id") == 103
    conn.commit()
    assert scalar(conn, "select count(*) from t0") == 102


def test_reset_inside_a_test_restores_the_seed_and_the_sequence(conn, dbsandbox):
    conn.execute("insert into t0(name) values ('alice'), ('bob')")
    conn.commit()
    assert scalar(conn, "select count(*) from t0") == 102
    dbsandbox.reset()
    assert scalar(conn, "select count(*) from t0") == 100
    assert scalar(conn, "insert into t0(name) values ('alice') returning id") == 101
    conn.commit()


def test_commit_survives_the_last_connection_closing_until_the_reset(dbsandbox):
    # An API-acquired sandbox is not reset when its last connection closes: code under test may
    # open, commit and close its own connection while the test holds none.
    with psycopg.connect(dbsandbox.url) as app_connection:
        app_connection.execute("insert into t1(name, parent_id) values ('alice-child', 1)")
        app_connection.commit()
    with psycopg.connect(dbsandbox.url) as later:
        assert scalar(later, "select id from t1 where name = 'alice-child'") == 101
        assert scalar(later, "select count(*) from t1") == 101
    dbsandbox.reset()
    with psycopg.connect(dbsandbox.url) as after_reset:
        assert scalar(after_reset, "select count(*) from t1") == 100


def test_the_daemon_counts_the_written_table(conn, dbsandbox):
    conn.execute("insert into t3(name, parent_id) values ('alice', 1)")
    conn.commit()
    info = dbsandbox.info()
    assert info["key"] == dbsandbox.key
    assert {"table": "public.t3", "rows": 101} in (info.get("tables") or [])


def test_startup_options_are_reported_back_like_postgresql_does(dbsandbox):
    """A setting given at connect (``options=-c TimeZone=…``) is the one the greeting reports:
    psycopg reads timestamps in the reported zone. A rollback key reported the server's value
    (the Django runner's naive datetimes came back six hours off)."""
    options = "-c TimeZone=America/Chicago -c application_name=from-options"
    with psycopg.connect(dbsandbox.url, options=options) as connection:
        assert connection.info.parameter_status("TimeZone") == "America/Chicago"
        assert connection.info.parameter_status("application_name") == "from-options"
        assert scalar(connection, "show timezone") == "America/Chicago"
        assert str(connection.info.timezone) == "America/Chicago"
