"""Coupons: discounts and the unique code. Planted: test_apply_welcome_coupon (victim of
test_create_welcome_coupon in test_marketing.py)."""

import psycopg.errors
import pytest

import shop


def test_apply_welcome_coupon(db):
    """Planted victim: creates WELCOME10 itself and expects the insert to succeed."""
    shop.create_coupon(db, "WELCOME10", 10)
    assert shop.discounted_price(db, "pro-kit", "WELCOME10") == 4410


def test_coupon_percent_out_of_range(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        shop.create_coupon(db, "BROKEN150", 150)


def test_create_seasonal_coupon(db):
    shop.create_coupon(db, "SUMMER15", 15)
    assert shop.discounted_price(db, "mug", "SUMMER15") == 1020


def test_duplicate_coupon_code_rejected(db):
    with pytest.raises(psycopg.errors.UniqueViolation):
        shop.create_coupon(db, "SPRING5", 50)


def test_seeded_coupon_discount(db):
    assert shop.discounted_price(db, "pro-kit", "SPRING5") == 4655


def test_unknown_coupon_gives_no_price(db):
    assert shop.discounted_price(db, "mug", "NOPE") is None
