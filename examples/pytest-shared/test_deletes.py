"""Deletes that commit through psycopg, and the sequence after them (table t39).

t39 is the end of the foreign-key chain, so its seed rows can be deleted. Deleting
``seed100`` leaves 99 rows, and the next insert still gets id 101: deletes do not move the
sequence, and the reset before each test puts it back to 100. On a shared database the
second delete finds nothing and the second ``erin`` is a unique violation.
"""


def scalar(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()[0]


def test_delete_a_seed_row(conn):
    deleted = conn.execute("delete from t39 where name = 'seed100'")
    conn.commit()
    assert deleted.rowcount == 1
    assert scalar(conn, "select count(*) from t39") == 99
    assert scalar(conn, "select max(id) from t39") == 99


def test_insert_after_delete_gets_the_next_id(conn):
    conn.execute("delete from t39 where name = 'seed100'")
    erin = scalar(conn, "insert into t39(name) values ('erin') returning id")
    conn.commit()
    assert erin == 101
    assert scalar(conn, "select count(*) from t39") == 100


def test_delete_half_of_the_seed(conn):
    deleted = conn.execute("delete from t39 where id > 50")
    conn.commit()
    assert deleted.rowcount == 50
    assert scalar(conn, "select count(*) from t39") == 50
    erin = scalar(conn, "insert into t39(name) values ('erin') returning id")
    conn.commit()
    assert erin == 101
