"""The code under test: a tiny shop that opens, commits and closes its own connections.

It reads its database from ``DATABASE_URL`` like an application would; conftest.py points that
at the worker's sandbox.
"""

import os

import psycopg
import sqlalchemy
from sqlalchemy import text


def database_url() -> str:
    return os.environ["DATABASE_URL"]


def sign_up(email: str, name: str) -> int:
    """Create a customer and commit; returns the new id."""
    with psycopg.connect(database_url()) as connection:
        new_id = connection.execute(
            "insert into customers(email, name) values (%s, %s) returning id", (email, name)
        ).fetchone()[0]
        connection.commit()
        return new_id


def place_order(email: str, sku: str, total_cents: int) -> int:
    """Take one item off the stock and record the order, in one committed transaction (SQLAlchemy)."""
    engine = sqlalchemy.create_engine(
        sqlalchemy.make_url(database_url()).set(drivername="postgresql+psycopg")
    )
    try:
        with engine.begin() as connection:
            customer = connection.execute(
                text("select id from customers where email = :email"), {"email": email}
            ).scalar_one()
            connection.execute(
                text("update stock set quantity = quantity - 1 where sku = :sku"), {"sku": sku}
            )
            return connection.execute(
                text("insert into orders(customer_id, total_cents) values (:c, :t) returning id"),
                {"c": customer, "t": total_cents},
            ).scalar_one()
    finally:
        engine.dispose()
