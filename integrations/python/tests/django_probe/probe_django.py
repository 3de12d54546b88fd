"""Copied into a copy of examples/django as shop/tests/test_probe.py by test_django.py: each test appends one JSON line to
$PROBE_FILE saying which database its connection used (key, clone, process, test class kind), and whether
QuerySet.iterator() ran on a server-side cursor (psycopg's DECLARE, then the portal used through the protocol)."""

import json
import os

from django.db import connection
from django.test import TestCase, TransactionTestCase


def record(kind):
    from shop.models import Product

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), (SELECT count(*) FROM shop_product)")
        clone, products = cursor.fetchone()
    iterated = sum(1 for _ in Product.objects.iterator(chunk_size=1))
    line = {
        "kind": kind,
        "key": connection.settings_dict["NAME"],
        "clone": clone,
        "pid": os.getpid(),
        "products": products,
        "server_side_cursors": not connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"),
        "iterated": iterated,
    }
    with open(os.environ["PROBE_FILE"], "a") as probe:
        probe.write(json.dumps(line) + "\n")


class ProbeTestCaseA(TestCase):
    def test_one(self):
        record("TestCase")

    def test_two(self):
        record("TestCase")


class ProbeTestCaseB(TestCase):
    def test_one(self):
        record("TestCase")


class ProbeTransactionA(TransactionTestCase):
    def test_one(self):
        record("TransactionTestCase")

    def test_two(self):
        record("TransactionTestCase")


class ProbeTransactionB(TransactionTestCase):
    def test_one(self):
        record("TransactionTestCase")
