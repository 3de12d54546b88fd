"""Orders: the seeded orders are read only. Planted: test_count_seeded_orders (victim) and
test_place_order (its polluter, later in this file)."""

import psycopg.errors
import pytest

import shop


def test_count_seeded_orders(db):
    """Planted victim: counts every order and expects exactly the 4 seeded ones."""
    assert db.execute("select count(*) from orders").fetchone()[0] == 4


def test_order_customer_email(db):
    email = db.execute("select u.email from orders o join users u on u.id = o.user_id where o.id = 2").fetchone()[0]
    assert email == "grace@example.com"


def test_order_quantity_must_be_positive(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        shop.place_order(db, "ada@example.com", "mug", 0)


def test_order_with_coupon(db):
    assert db.execute("select coupon_code from orders where id = 4").fetchone()[0] == "VIP20"


def test_place_order(db):
    """Planted polluter: places an order and commits it (with FLAKY_PLANTED=0 it cancels it again)."""
    order_id, total = shop.place_order(db, "grace@example.com", "mug", 1)
    assert total == 1200
    if not shop.planted():
        assert shop.cancel_order(db, order_id) == 1


def test_seeded_order_total(db):
    assert db.execute("select total_cents from orders where id = 1").fetchone()[0] == 4900
