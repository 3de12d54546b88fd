"""LiveServerTestCase: the server thread opens its own connection to the worker's database key."""

import json
from urllib.request import urlopen

from django.test import LiveServerTestCase

from shop.models import Customer
from shop.tests.helpers import make_order


class LiveOrderTests(LiveServerTestCase):
    def get(self, path):
        with urlopen(f"{self.live_server_url}{path}") as response:
            return json.load(response)

    def test_the_server_thread_sees_the_tests_commits(self):
        dave = Customer.objects.create(email="dave@example.com", name="Dave")
        order = make_order(dave, [("TEA-1", 4)])
        self.assertEqual(self.get(f"/orders/{order.id}/total"), {"order": 1, "total_cents": 1800})

    def test_starts_without_the_other_tests_customers(self):
        self.assertEqual(self.get("/customers"), {"customers": []})
