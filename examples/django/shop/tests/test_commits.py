"""TransactionTestCase: real commits, each test from the template (migration data included)."""

from django.db import IntegrityError, transaction
from django.test import TransactionTestCase

from shop.models import Customer, Order, Product
from shop.tests.helpers import make_order, second_connection


class CommitTests(TransactionTestCase):
    def test_a_commit_is_seen_by_a_second_connection(self):
        with transaction.atomic():
            bob = Customer.objects.create(email="bob@example.com", name="Bob")
        # Every test starts from the template: the sequence too, so the first id is 1.
        self.assertEqual(bob.id, 1)
        with second_connection() as other:
            row = other.execute("SELECT name FROM shop_customer WHERE email = 'bob@example.com'").fetchone()
        self.assertEqual(row, ("Bob",))

    def test_a_second_connections_commit_is_seen_by_django(self):
        with second_connection() as other:
            other.execute("INSERT INTO shop_customer (email, name, joined) VALUES ('bob@example.com', 'Bob', now())")
            other.commit()
        self.assertEqual(Customer.objects.get().name, "Bob")

    def test_a_foreign_key_violation_fails_at_commit(self):
        with self.assertRaises(IntegrityError):
            with transaction.atomic():
                Order.objects.create(customer_id=999_999)
        self.assertEqual(Order.objects.count(), 0)


class TemplateStateTests(TransactionTestCase):
    def test_the_catalogue_survives_other_transaction_tests(self):
        # Django's flush would have emptied shop_product after the first TransactionTestCase
        # (without serialized_rollback); a fresh clone of the template keeps it.
        self.assertEqual(Product.objects.count(), 3)
        self.assertEqual(Customer.objects.count(), 0)

    def test_the_trigger_works_with_real_commits(self):
        with transaction.atomic():
            bob = Customer.objects.create(email="bob@example.com", name="Bob")
            order = make_order(bob, [("POT-1", 2)])
        self.assertEqual(bob.id, 1)
        self.assertEqual(order.total_cents, 7000)
