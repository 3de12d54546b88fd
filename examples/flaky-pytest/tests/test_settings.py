"""Settings. Planted: test_feature_x_banner_shown (brittle: it needs the row its state-setter
test_enable_feature_x in test_admin.py commits)."""

import shop


def test_feature_x_banner_shown(db):
    """Planted brittle test: expects feature_x to be on without switching it on (with
    FLAKY_PLANTED=0 it switches it on itself)."""
    if not shop.planted():
        shop.set_setting(db, "feature_x", "on")
    assert shop.setting(db, "feature_x") == "on"


def test_gross_price_includes_tax(db):
    assert shop.gross_price(db, "mug") == 1440


def test_set_custom_setting(db):
    shop.set_setting(db, "settings-test-theme", "dark")
    assert shop.setting(db, "settings-test-theme") == "dark"


def test_tax_rate_is_twenty_percent(db):
    assert shop.setting(db, "tax_rate_percent") == "20"


def test_unknown_setting_is_none(db):
    assert shop.setting(db, "no-such-setting") is None
