"""Deletes and the sequence that follows them, checked with exact counts (table t39).

t39 is the end of the foreign-key chain, so its seed rows can be deleted. Deleting
``seed100`` leaves 99 rows; the next insert gets id 101 from the bigserial sequence. When two
workers share the database, the second delete finds nothing, and the second insert gets id 102.
"""

import pytest


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


class DeleteWorkflow:
    """The workflow; each group below runs all of it, in this order, on one worker."""

    def test_delete_seed_row(self, conn):
        deleted = conn.execute("delete from t39 where name = 'seed100'")
        assert deleted.rowcount == 1
        assert scalar(conn, "select count(*) from t39") == 99

    def test_insert_after_delete_gets_next_id(self, conn):
        erin = scalar(conn, "insert into t39(name) values ('erin') returning id")
        assert erin == 101
        assert scalar(conn, "select count(*) from t39") == 100


@pytest.mark.xdist_group("a")
class TestGroupA(DeleteWorkflow):
    """Run by one xdist worker."""


@pytest.mark.xdist_group("b")
class TestGroupB(DeleteWorkflow):
    """Run by the other xdist worker: the same rows and the same expected counts."""
