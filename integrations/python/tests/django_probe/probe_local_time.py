"""Copied into a copy of examples/django as shop/tests/test_probe_local_time.py by test_django.py, run with
USE_TZ = False and TIME_ZONE = "America/Chicago" (Django's own suite's settings): the connection's time zone is
Chicago, and a naive datetime must come back as it went in, before and after a rolled-back atomic block."""

import datetime

from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase

WRITTEN = datetime.datetime(2005, 7, 31, 12, 30, 45, 180)


class RoundTrip:
    def test_naive_datetime_comes_back_unshifted(self):
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s::timestamptz, current_setting('TimeZone')", [WRITTEN])
                read, zone = cursor.fetchone()
            self.assertEqual((read, zone), (WRITTEN, "America/Chicago"))
            with self.assertRaises(ZeroDivisionError), transaction.atomic():
                connection.cursor().execute("SELECT 1")
                1 / 0


class LocalTimeTestCase(RoundTrip, TestCase):
    pass


class LocalTimeTransactionTestCase(RoundTrip, TransactionTestCase):
    pass
