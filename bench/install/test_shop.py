"""The suite both sides of bench/install/run.sh run: each test signs up the same customer and
expects exactly four, which passes only when every test starts from the migrated state.

``db`` comes from each side's conftest.py: a psycopg 3 connection to that test's database.
"""

import pytest


@pytest.mark.parametrize("attempt", range(5))
def test_signup_is_isolated(db, attempt):
    db.execute("insert into customers(email, name) values ('new@example.com', 'New')")
    db.commit()
    assert db.execute("select count(*) from customers").fetchone()[0] == 4
