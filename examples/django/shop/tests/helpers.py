"""Helpers of the shop's tests: a second, independent connection to the test database."""

import psycopg
from django.db import connection


def second_connection() -> psycopg.Connection:
    """A psycopg 3 connection of its own to the database Django's connection uses now."""
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"] or 5432, dbname=s["NAME"], user=s["USER"],
        password=s["PASSWORD"] or None,
    )


def make_order(customer, lines):
    """An order of ``customer`` with ``lines`` = [(sku, quantity), ...]."""
    from shop.models import Order, OrderLine, Product

    order = Order.objects.create(customer=customer)
    for sku, quantity in lines:
        OrderLine.objects.create(order=order, product=Product.objects.get(sku=sku), quantity=quantity)
    order.refresh_from_db()
    return order
