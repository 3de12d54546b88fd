"""psycopg2 through the ``dbsandbox`` fixture, and the plugin's reset done with psycopg2."""

import psycopg2
import psycopg2.errors
import pytest
from conftest import scalar
from pytest_dbsandbox import reset_sandbox


def test_committed_insert_gets_id_101(conn2):
    assert scalar(conn2, "insert into t0(name) values ('alice') returning id") == 101
    conn2.commit()
    assert scalar(conn2, "select count(*) from t0") == 101


def test_committed_rows_in_two_tables(conn2):
    with conn2.cursor() as cursor:
        cursor.execute("insert into t0(name) values ('alice') returning id")
        (alice,) = cursor.fetchone()
        cursor.execute(
            "insert into t1(name, parent_id) values ('alice-child-1', %s), ('alice-child-2', %s)",
            (alice, alice),
        )
    conn2.commit()
    assert alice == 101
    assert scalar(conn2, "select array_agg(id order by id) from t1 where parent_id = 101") == [101, 102]
    assert scalar(conn2, "select count(*) from t1") == 102


def test_unique_violation_is_caught(conn2):
    with conn2.cursor() as cursor:
        cursor.execute("insert into t0(name) values ('alice')")
        conn2.commit()
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cursor.execute("insert into t0(name) values ('alice')")
    conn2.rollback()
    assert scalar(conn2, "select count(*) from t0 where name = 'alice'") == 1
    assert scalar(conn2, "select count(*) from t0") == 101


def test_reset_with_the_psycopg2_driver(conn2, dbsandbox):
    with conn2.cursor() as cursor:
        cursor.execute("insert into t2(name, parent_id) values ('alice', 1)")
    conn2.commit()
    assert scalar(conn2, "select count(*) from t2") == 101
    reset_sandbox(dbsandbox.url, driver="psycopg2")
    assert scalar(conn2, "select count(*) from t2") == 100
    assert scalar(conn2, "insert into t2(name, parent_id) values ('alice', 1) returning id") == 101
    conn2.commit()
