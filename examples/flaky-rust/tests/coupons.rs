//! Coupons: discounts and the unique code. Planted: `apply_welcome_coupon` (victim of
//! `create_welcome_coupon` in tests/marketing.rs).

use dbsandbox_example_flaky_rust as shop;

/// Planted victim: creates WELCOME10 itself and expects the insert to succeed.
#[tokio::test]
async fn apply_welcome_coupon() {
    let db = shop::connect().await;
    shop::create_coupon(&db, "WELCOME10", 10).await.unwrap();
    assert_eq!(
        shop::discounted_price(&db, "pro-kit", "WELCOME10")
            .await
            .unwrap(),
        Some(4410)
    );
}

#[tokio::test]
async fn coupon_percent_out_of_range() {
    let db = shop::connect().await;
    assert_eq!(
        shop::sqlstate(shop::create_coupon(&db, "BROKEN150", 150).await),
        "23514"
    );
}

#[tokio::test]
async fn create_seasonal_coupon() {
    let db = shop::connect().await;
    shop::create_coupon(&db, "SUMMER15", 15).await.unwrap();
    assert_eq!(
        shop::discounted_price(&db, "mug", "SUMMER15")
            .await
            .unwrap(),
        Some(1020)
    );
}

#[tokio::test]
async fn duplicate_coupon_code_rejected() {
    let db = shop::connect().await;
    assert_eq!(
        shop::sqlstate(shop::create_coupon(&db, "SPRING5", 50).await),
        "23505"
    );
}

#[tokio::test]
async fn seeded_coupon_discount() {
    let db = shop::connect().await;
    assert_eq!(
        shop::discounted_price(&db, "pro-kit", "SPRING5")
            .await
            .unwrap(),
        Some(4655)
    );
}

#[tokio::test]
async fn unknown_coupon_gives_no_price() {
    let db = shop::connect().await;
    assert_eq!(
        shop::discounted_price(&db, "mug", "NOPE").await.unwrap(),
        None
    );
}
