"""Admin: the audit log and settings. Planted: test_enable_feature_x, the state-setter of
test_feature_x_banner_shown (test_settings.py)."""

import shop


def test_audit_log_keeps_actions_in_order(db):
    shop.audit(db, "admin-order", "login")
    shop.audit(db, "admin-order", "export")
    assert shop.audit_actions(db, "admin-order") == ["login", "export"]


def test_audit_log_records_action(db):
    shop.audit(db, "admin-record", "refund")
    assert shop.audit_actions(db, "admin-record") == ["refund"]


def test_currency_is_euro(db):
    assert shop.setting(db, "currency") == "EUR"


def test_enable_feature_x(db):
    """Planted state-setter: the row test_feature_x_banner_shown needs and does not create."""
    shop.set_setting(db, "feature_x", "on")
    assert shop.setting(db, "feature_x") == "on"


def test_maintenance_mode_is_off(db):
    assert shop.setting(db, "maintenance") == "off"
