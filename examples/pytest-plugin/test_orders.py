"""Orders through the application's SQLAlchemy code: the first order is always id 1."""

import psycopg
import shop


def test_first_order_is_id_1(dbsandbox_url):
    assert shop.place_order("ada@example.com", "book", 1500) == 1
    with psycopg.connect(dbsandbox_url) as connection:
        assert connection.execute("select count(*), sum(total_cents) from orders").fetchone() == (1, 1500)


def test_two_orders_are_ids_1_and_2(dbsandbox_url):
    assert shop.place_order("grace@example.com", "pen", 200) == 1
    assert shop.place_order("grace@example.com", "pen", 300) == 2
    with psycopg.connect(dbsandbox_url) as connection:
        assert connection.execute("select count(*) from orders").fetchone()[0] == 2


def test_customer_with_an_order_signs_up_and_orders(dbsandbox_url):
    assert shop.sign_up("new@example.com", "New") == 4
    assert shop.place_order("new@example.com", "book", 999) == 1
    with psycopg.connect(dbsandbox_url) as connection:
        assert connection.execute(
            "select c.email from orders o join customers c on c.id = o.customer_id where o.id = 1"
        ).fetchone() == ("new@example.com",)
