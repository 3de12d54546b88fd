"""Inserts that commit through psycopg, checked with absolute values (tables t0 and t1).

Every test starts from the seed (100 rows ``seed1``..``seed100``, ids 1..100, in every table)
and commits its rows. Several tests insert the same name, ``alice``, on purpose: in a rollback
sandbox reset before each test every one of them sees t0 with 100 rows and gets id 101. On a
shared database that nobody resets, the second ``alice`` raises
``duplicate key value violates unique constraint "t0_name_key"`` and every count is off.
"""

import psycopg
import pytest


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def test_committed_insert_gets_the_first_id_after_the_seed(conn):
    alice = scalar(conn, "insert into t0(name) values ('alice') returning id")
    conn.commit()
    assert alice == 101
    assert scalar(conn, "select count(*) from t0") == 101


def test_two_rows_in_one_statement_get_consecutive_ids(conn):
    rows = conn.execute("insert into t0(name) values ('alice'), ('bob') returning id, name")
    assert rows.fetchall() == [(101, "alice"), (102, "bob")]
    conn.commit()
    assert scalar(conn, "select count(*) from t0") == 102
    assert scalar(conn, "select count(*) from t0 where name not like 'seed%'") == 2


def test_child_rows_reference_a_new_parent(conn):
    with conn.transaction():
        alice = scalar(conn, "insert into t0(name) values ('alice') returning id")
        conn.execute(
            "insert into t1(name, parent_id) values ('alice-child-1', %s), ('alice-child-2', %s)",
            (alice, alice),
        )
    conn.commit()
    assert alice == 101
    assert scalar(conn, "select count(*) from t1 where parent_id = 101") == 2
    assert scalar(conn, "select array_agg(id order by id) from t1 where parent_id = 101") == [101, 102]
    assert scalar(conn, "select count(*) from t1") == 102


def test_caught_unique_violation_in_a_savepoint_leaves_the_connection_usable(conn):
    conn.execute("insert into t0(name) values ('alice')")
    conn.commit()
    with pytest.raises(psycopg.errors.UniqueViolation):
        with conn.transaction():  # a savepoint: only this block is rolled back
            conn.execute("insert into t0(name) values ('alice')")
    # Same connection, same test: more statements, and a commit.
    conn.execute("insert into t0(name) values ('bob')")
    conn.commit()
    assert scalar(conn, "select count(*) from t0 where name = 'alice'") == 1
    assert scalar(conn, "select count(*) from t0") == 102
    # The failed insert used id 102 (sequences are not transactional), so bob has 103.
    assert scalar(conn, "select id from t0 where name = 'bob'") == 103


def test_caught_unique_violation_then_rollback_and_go_on(conn):
    conn.execute("insert into t0(name) values ('alice')")
    conn.commit()
    conn.execute("insert into t0(name) values ('carol')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("insert into t0(name) values ('alice')")
    with pytest.raises(psycopg.errors.InFailedSqlTransaction):
        conn.execute("select 1")
    conn.rollback()  # undoes carol and the failed insert, keeps the committed alice
    assert scalar(conn, "select count(*) from t0") == 101
    assert scalar(conn, "select count(*) from t0 where name = 'carol'") == 0
    # Same connection, same test: a new transaction works. carol used 102, the failed alice 103.
    dave = scalar(conn, "insert into t0(name) values ('dave') returning id")
    conn.commit()
    assert dave == 104
    assert scalar(conn, "select count(*) from t0") == 102
