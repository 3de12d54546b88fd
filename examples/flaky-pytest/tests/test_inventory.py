"""Inventory: products the tests add themselves and seeded stock. Planted:
test_discontinue_starter_kit (polluter of test_starter_kit_is_listed in test_catalog.py)."""

import psycopg.errors
import pytest

import shop


def test_add_product(db):
    shop.add_product(db, "inv-lamp", "Lamp", 99900, 2)
    assert shop.product_price(db, "inv-lamp") == 99900


def test_discontinue_starter_kit(db):
    """Planted polluter: deletes the seeded starter kit and commits (with FLAKY_PLANTED=0 it
    discontinues a product of its own instead)."""
    if shop.planted():
        sku = "starter-kit"
    else:
        sku = "inv-demo-kit"
        shop.add_product(db, sku, "Demo kit", 99900, 1)
    assert shop.discontinue_product(db, sku) == 1
    assert shop.product_price(db, sku) is None


def test_restock_product(db):
    shop.add_product(db, "inv-desk", "Desk", 99900, 0)
    assert shop.change_stock(db, "inv-desk", 5) == 5


def test_seeded_stock_levels(db):
    assert shop.stock(db, "mug") == 40
    assert shop.stock(db, "sticker-pack") == 200


def test_stock_cannot_go_negative(db):
    shop.add_product(db, "inv-chair", "Chair", 99900, 1)
    with pytest.raises(psycopg.errors.CheckViolation):
        shop.change_stock(db, "inv-chair", -2)
    assert shop.stock(db, "inv-chair") == 1
