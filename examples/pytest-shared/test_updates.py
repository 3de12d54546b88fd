"""Updates of seed rows, checked by exact value (table t20).

A seed row renamed once, a payload counter bumped once: exact results when one worker owns
the database. When two workers share it, the second rename finds no ``seed7`` left and the
counter reads 2 instead of 1.
"""

import pytest


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


class UpdateWorkflow:
    """The workflow; each group below runs all of it, in this order, on one worker."""

    def test_rename_seed_row(self, conn):
        renamed = conn.execute("update t20 set name = 'renamed-seed7' where name = 'seed7'")
        assert renamed.rowcount == 1
        assert scalar(conn, "select name from t20 where id = 7") == "renamed-seed7"
        assert scalar(conn, "select count(*) from t20 where name like 'seed%'") == 99

    def test_bump_payload_counter(self, conn):
        payload = scalar(
            conn,
            """update t20
                  set payload = jsonb_build_object(
                        'visits', coalesce((payload->>'visits')::int, 0) + 1)
                where name = 'seed8'
            returning payload""",
        )
        assert payload == {"visits": 1}


@pytest.mark.xdist_group("a")
class TestGroupA(UpdateWorkflow):
    """Run by one xdist worker."""


@pytest.mark.xdist_group("b")
class TestGroupB(UpdateWorkflow):
    """Run by the other xdist worker: the same rows and the same expected values."""
