"""pytest-django style tests (collected by pytest only): db is a TestCase, transactional_db a
TransactionTestCase, both through dbsandbox."""

import pytest

from shop.models import Customer, Product
from shop.tests.helpers import make_order, second_connection


@pytest.mark.django_db
def test_db_sees_the_data_migration():
    assert Product.objects.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("run", [1, 2])
def test_db_is_rolled_back_after_each_test(run):
    assert not Customer.objects.exists()
    Customer.objects.create(email="carol@example.com", name="Carol")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("run", [1, 2])
def test_transactional_db_starts_from_the_template(run):
    carol = Customer.objects.create(email="carol@example.com", name="Carol")
    assert carol.id == 1
    assert make_order(carol, [("MUG-1", 3)]).total_cents == 3600
    with second_connection() as other:
        assert other.execute("SELECT count(*) FROM shop_customer").fetchone() == (1,)
