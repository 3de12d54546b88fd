"""Catalog: prices, search and reviews. Planted: test_starter_kit_is_listed (victim of
test_discontinue_starter_kit in test_inventory.py) and test_featured_product_pick (random)."""

import psycopg.errors
import pytest

import shop


def test_featured_product_pick(db):
    """Planted random failure: picks one of two products in random order (PostgreSQL's random(),
    which nothing the test order controls seeds) and expects the first."""
    order = "random()" if shop.planted() else "sku"
    sku = db.execute(
        f"select sku from products where sku in ('mug', 'sticker-pack') order by {order} limit 1"
    ).fetchone()[0]
    assert sku == "mug"


def test_one_review_per_user_and_product(db):
    shop.add_review(db, "sticker-pack", "grace@example.com", 5, "shiny")
    with pytest.raises(psycopg.errors.UniqueViolation):
        shop.add_review(db, "sticker-pack", "grace@example.com", 1, "changed my mind")


def test_price_formatted_in_currency(db):
    assert shop.format_price(db, 1200) == "12.00 EUR"


def test_product_price_lookup(db):
    assert shop.product_price(db, "pro-kit") == 4900


def test_products_under_fifteen_euros(db):
    skus = [row[0] for row in db.execute("select sku from products where price_cents < 1500 order by price_cents")]
    assert skus == ["sticker-pack", "mug"]


def test_review_average_rating(db):
    shop.add_review(db, "t-shirt", "ada@example.com", 4, "soft")
    shop.add_review(db, "t-shirt", "linus@example.com", 2, "shrinks")
    assert shop.average_rating(db, "t-shirt") == 3.0


def test_review_rating_out_of_range(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        shop.add_review(db, "mug", "linus@example.com", 6, "best mug ever")


def test_search_products_by_name(db):
    skus = [row[0] for row in db.execute("select sku from products where name ilike '%shirt%' order by sku")]
    assert skus == ["t-shirt"]


def test_starter_kit_is_listed(db):
    """Planted victim: the seeded starter kit must still be for sale."""
    assert shop.product_price(db, "starter-kit") == 1900


def test_unknown_sku_has_no_price(db):
    assert shop.product_price(db, "no-such-sku") is None
