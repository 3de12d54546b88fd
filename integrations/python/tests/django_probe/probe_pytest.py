"""pytest-django twin of probe_django.py (db and transactional_db), copied as
shop/tests/test_probe_pytest.py; collected by pytest only."""

import pytest

from shop.tests.test_probe import record


@pytest.mark.django_db
@pytest.mark.parametrize("n", range(3))
def test_db(n):
    record("db")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("n", range(3))
def test_transactional_db(n):
    record("transactional_db")
