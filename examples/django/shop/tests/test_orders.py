"""TestCase: class data from setUpTestData, restored for every test; Django's atomic blocks."""

import datetime
from zoneinfo import ZoneInfo

from django.db import IntegrityError, connection, transaction
from django.test import TestCase
from django.utils import timezone

from shop.models import Customer, Order, OrderLine, Product
from shop.tests.helpers import make_order, second_connection


class OrderTotalTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = Customer.objects.create(email="alice@example.com", name="Alice")
        cls.order = make_order(cls.alice, [("TEA-1", 2), ("MUG-1", 1)])

    def test_trigger_keeps_the_total(self):
        self.assertEqual(self.order.total_cents, 2 * 450 + 1200)

    def test_adding_a_line_updates_the_total(self):
        OrderLine.objects.create(order=self.order, product=Product.objects.get(sku="POT-1"), quantity=1)
        self.order.refresh_from_db()
        self.assertEqual(self.order.total_cents, 2100 + 3500)

    def test_deleting_the_lines_zeroes_the_total(self):
        self.order.lines.all().delete()
        self.order.refresh_from_db()
        self.assertEqual(self.order.total_cents, 0)

    def test_class_data_is_back_for_every_test(self):
        # Another test deletes the lines, another adds one: each starts from setUpTestData.
        self.assertEqual(Customer.objects.count(), 1)
        self.assertEqual(self.order.lines.count(), 2)
        self.assertEqual(Order.objects.get().total_cents, 2100)

    def test_a_failed_atomic_block_is_a_savepoint(self):
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                Customer.objects.create(email="alice@example.com", name="Alice again")
        self.assertEqual(Customer.objects.count(), 1)

    def test_deferred_foreign_key_checked_by_check_constraints(self):
        # Django's FKs are DEFERRABLE INITIALLY DEFERRED; TestCase checks them at teardown.
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                OrderLine.objects.create(order_id=999_999, product=Product.objects.first(), quantity=1)
                connection.check_constraints()
        self.assertEqual(OrderLine.objects.count(), 2)


class CatalogueTests(TestCase):
    def test_the_data_migration_seeded_the_catalogue(self):
        self.assertEqual(
            sorted(Product.objects.values_list("sku", flat=True)), ["MUG-1", "POT-1", "TEA-1"]
        )

    def test_iterator_uses_a_server_side_cursor(self):
        self.assertEqual(len(list(Product.objects.iterator(chunk_size=1))), 3)

    def test_the_session_time_zone_survives_a_rollback(self):
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                Product.objects.create(sku="TEA-1", name="dup", price_cents=1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('TimeZone')")
            self.assertEqual(cursor.fetchone()[0], "UTC")
        alice = Customer.objects.create(email="tz@example.com", name="TZ")
        self.assertLess(abs(alice.joined - timezone.now()), datetime.timedelta(minutes=5))
        self.assertEqual(alice.joined.tzinfo, datetime.timezone.utc)
        self.assertEqual(timezone.localtime(alice.joined).tzinfo, ZoneInfo("America/Chicago"))

    def test_a_second_connection_commits_into_the_test(self):
        with second_connection() as other:
            other.execute("INSERT INTO shop_customer (email, name, joined) VALUES ('bob@example.com', 'Bob', now())")
            other.commit()
        # Plain PostgreSQL: committed for good (it would leak into later tests); in a rollback
        # sandbox it is undone with this test.
        self.assertTrue(Customer.objects.filter(email="bob@example.com").exists())

    def test_no_customer_leaked_from_other_tests(self):
        self.assertFalse(Customer.objects.filter(email="bob@example.com").exists())
