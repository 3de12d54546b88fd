//! Admin: the audit log, settings and the dashboard. Planted: `enable_feature_x`, the state-setter
//! of `feature_x_banner_shown` (tests/settings.rs), and `count_seeded_orders`, the victim of
//! `place_order` (tests/orders.rs).

use dbsandbox_example_flaky_rust as shop;

#[tokio::test]
async fn audit_log_keeps_actions_in_order() {
    let db = shop::connect().await;
    shop::audit(&db, "admin-order", "login").await.unwrap();
    shop::audit(&db, "admin-order", "export").await.unwrap();
    assert_eq!(
        shop::audit_actions(&db, "admin-order").await.unwrap(),
        ["login", "export"]
    );
}

#[tokio::test]
async fn audit_log_records_action() {
    let db = shop::connect().await;
    shop::audit(&db, "admin-record", "refund").await.unwrap();
    assert_eq!(
        shop::audit_actions(&db, "admin-record").await.unwrap(),
        ["refund"]
    );
}

/// Planted victim (the dashboard's order count): counts every order and expects exactly the 4 seeded ones.
#[tokio::test]
async fn count_seeded_orders() {
    let db = shop::connect().await;
    let n: i64 = shop::scalar(&db, "select count(*) from orders").await;
    assert_eq!(n, 4);
}

#[tokio::test]
async fn currency_is_euro() {
    let db = shop::connect().await;
    assert_eq!(
        shop::setting(&db, "currency").await.unwrap().as_deref(),
        Some("EUR")
    );
}

/// Planted state-setter: the row `feature_x_banner_shown` needs and does not create itself.
#[tokio::test]
async fn enable_feature_x() {
    let db = shop::connect().await;
    shop::set_setting(&db, "feature_x", "on").await.unwrap();
    assert_eq!(
        shop::setting(&db, "feature_x").await.unwrap().as_deref(),
        Some("on")
    );
}

#[tokio::test]
async fn maintenance_mode_is_off() {
    let db = shop::connect().await;
    assert_eq!(
        shop::setting(&db, "maintenance").await.unwrap().as_deref(),
        Some("off")
    );
}
