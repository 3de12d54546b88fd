"""Marketing: the newsletter and campaigns. Planted: test_create_welcome_coupon (polluter of
test_apply_welcome_coupon in test_coupons.py)."""

import shop


def test_create_welcome_coupon(db):
    """Planted polluter: launches the welcome campaign, which leaves coupon WELCOME10 committed
    (with FLAKY_PLANTED=0 it ends the campaign again, deleting the coupon)."""
    shop.launch_welcome_campaign(db)
    assert shop.discounted_price(db, "mug", "WELCOME10") == 1080
    if not shop.planted():
        assert shop.delete_coupon(db, "WELCOME10") == 1


def test_newsletter_topics(db):
    shop.subscribe(db, "fan-news-1@example.com", "news")
    shop.subscribe(db, "fan-news-2@example.com", "news")
    count = db.execute(
        "select count(*) from newsletter where topic = 'news' and email like 'fan-news-%'"
    ).fetchone()[0]
    assert count == 2


def test_subscribe_newsletter(db):
    shop.subscribe(db, "fan-deals@example.com", "deals")
    assert db.execute("select topic from newsletter where email = 'fan-deals@example.com'").fetchone() == ("deals",)


def test_subscribe_twice_keeps_one_row(db):
    shop.subscribe(db, "fan-twice@example.com", "deals")
    shop.subscribe(db, "fan-twice@example.com", "news")
    assert db.execute("select count(*) from newsletter where email = 'fan-twice@example.com'").fetchone() == (1,)


def test_vip_coupon_discount(db):
    assert shop.discounted_price(db, "mug", "VIP20") == 960
