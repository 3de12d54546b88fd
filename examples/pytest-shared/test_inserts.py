"""Inserts with fixed unique names, checked with exact counts (tables t0 and t1).

Each test commits, and the counts are cumulative in file order: the schema seeds 100 rows
per table, ``alice`` makes t0 101, ``bob`` and ``carol`` make it 103, and so on. That holds
when one worker owns the database. When two workers share it, the second ``alice`` hits
``duplicate key value violates unique constraint "t0_name_key"`` and the counts are off.
"""

import psycopg
import pytest


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


class InsertWorkflow:
    """The workflow; each group below runs all of it, in this order, on one worker."""

    def test_insert_alice(self, conn):
        conn.execute("insert into t0(name) values ('alice')")
        assert scalar(conn, "select count(*) from t0") == 101

    def test_insert_bob_and_carol(self, conn):
        conn.execute("insert into t0(name) values ('bob'), ('carol')")
        assert scalar(conn, "select count(*) from t0") == 103
        assert scalar(conn, "select count(*) from t0 where name not like 'seed%'") == 3

    def test_name_is_unique(self, conn):
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("insert into t0(name) values ('alice')")
        assert scalar(conn, "select count(*) from t0 where name = 'alice'") == 1

    def test_child_rows_reference_new_parent(self, conn):
        dave = scalar(conn, "insert into t0(name) values ('dave') returning id")
        conn.execute(
            "insert into t1(name, parent_id) values ('dave-child-1', %s), ('dave-child-2', %s)",
            (dave, dave),
        )
        assert scalar(conn, "select count(*) from t1 where parent_id = %s", (dave,)) == 2
        assert scalar(conn, "select count(*) from t1") == 102
        assert scalar(conn, "select count(*) from t0") == 104


@pytest.mark.xdist_group("a")
class TestGroupA(InsertWorkflow):
    """Run by one xdist worker."""


@pytest.mark.xdist_group("b")
class TestGroupB(InsertWorkflow):
    """Run by the other xdist worker: the same names and the same expected counts."""
