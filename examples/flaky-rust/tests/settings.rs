//! Settings. Planted: `feature_x_banner_shown` (brittle: it needs the row its state-setter
//! `enable_feature_x` in tests/admin.rs commits).

use dbsandbox_example_flaky_rust as shop;

/// Planted brittle test: expects feature_x to be on without switching it on (with
/// FLAKY_PLANTED=0 it switches it on itself).
#[tokio::test]
async fn feature_x_banner_shown() {
    let db = shop::connect().await;
    if !shop::planted() {
        shop::set_setting(&db, "feature_x", "on").await.unwrap();
    }
    assert_eq!(
        shop::setting(&db, "feature_x").await.unwrap().as_deref(),
        Some("on")
    );
}

#[tokio::test]
async fn gross_price_includes_tax() {
    let db = shop::connect().await;
    assert_eq!(shop::gross_price(&db, "mug").await.unwrap(), 1440);
}

#[tokio::test]
async fn set_custom_setting() {
    let db = shop::connect().await;
    shop::set_setting(&db, "settings-test-theme", "dark")
        .await
        .unwrap();
    assert_eq!(
        shop::setting(&db, "settings-test-theme")
            .await
            .unwrap()
            .as_deref(),
        Some("dark")
    );
}

#[tokio::test]
async fn tax_rate_is_twenty_percent() {
    let db = shop::connect().await;
    assert_eq!(
        shop::setting(&db, "tax_rate_percent")
            .await
            .unwrap()
            .as_deref(),
        Some("20")
    );
}

#[tokio::test]
async fn unknown_setting_is_none() {
    let db = shop::connect().await;
    assert_eq!(shop::setting(&db, "no-such-setting").await.unwrap(), None);
}
