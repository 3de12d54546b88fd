"""Updates of seed rows that commit through psycopg, checked by exact value (table t20).

Each test renames or bumps a seed row once and expects the seed's value before it. In a
sandbox reset before each test that always holds. On a shared database the second rename of
``seed7`` (test_sqlalchemy.py renames it too) finds nothing left, and ``seed7`` is gone.
"""


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def test_rename_a_seed_row(conn):
    renamed = conn.execute("update t20 set name = 'renamed-seed7' where name = 'seed7'")
    conn.commit()
    assert renamed.rowcount == 1
    assert scalar(conn, "select name from t20 where id = 7") == "renamed-seed7"
    assert scalar(conn, "select count(*) from t20 where name like 'seed%'") == 99


def test_bump_a_payload_counter_from_empty(conn):
    bumped = conn.execute(
        """update t20
              set payload = jsonb_build_object(
                    'visits', coalesce((payload->>'visits')::int, 0) + 1)
            where name = 'seed7'
        returning id, payload"""
    ).fetchall()
    conn.commit()
    assert bumped == [(7, {"visits": 1})]
    assert scalar(conn, "select count(*) from t20 where payload is not null") == 1
