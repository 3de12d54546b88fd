//! Marketing: the newsletter, campaigns and sign-ups. Planted: `create_welcome_coupon` (polluter of
//! `apply_welcome_coupon` in tests/coupons.rs) and `signup_new_customer` (polluter of
//! `register_assigns_next_id` in tests/accounts.rs).

use dbsandbox_example_flaky_rust as shop;

/// Planted polluter: launches the welcome campaign, which leaves coupon WELCOME10 committed
/// (with FLAKY_PLANTED=0 it ends the campaign again, deleting the coupon).
#[tokio::test]
async fn create_welcome_coupon() {
    let db = shop::connect().await;
    shop::launch_welcome_campaign(&db).await.unwrap();
    assert_eq!(
        shop::discounted_price(&db, "mug", "WELCOME10")
            .await
            .unwrap(),
        Some(1080)
    );
    if !shop::planted() {
        assert_eq!(shop::delete_coupon(&db, "WELCOME10").await.unwrap(), 1);
    }
}

#[tokio::test]
async fn newsletter_topics() {
    let db = shop::connect().await;
    shop::subscribe(&db, "fan-news-1@example.com", "news")
        .await
        .unwrap();
    shop::subscribe(&db, "fan-news-2@example.com", "news")
        .await
        .unwrap();
    let n: i64 = shop::scalar(
        &db,
        "select count(*) from newsletter where topic = 'news' and email like 'fan-news-%'",
    )
    .await;
    assert_eq!(n, 2);
}

/// Planted polluter of `register_assigns_next_id` (tests/accounts.rs): its committed user takes the next id.
#[tokio::test]
async fn signup_new_customer() {
    let db = shop::connect().await;
    shop::register_user(&db, "zoe@example.com", "Zoe")
        .await
        .unwrap();
    assert_eq!(
        shop::user_name(&db, "zoe@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("Zoe")
    );
}

#[tokio::test]
async fn subscribe_newsletter() {
    let db = shop::connect().await;
    shop::subscribe(&db, "fan-deals@example.com", "deals")
        .await
        .unwrap();
    let topic: String = shop::scalar(
        &db,
        "select topic from newsletter where email = 'fan-deals@example.com'",
    )
    .await;
    assert_eq!(topic, "deals");
}

#[tokio::test]
async fn subscribe_twice_keeps_one_row() {
    let db = shop::connect().await;
    shop::subscribe(&db, "fan-twice@example.com", "deals")
        .await
        .unwrap();
    shop::subscribe(&db, "fan-twice@example.com", "news")
        .await
        .unwrap();
    let n: i64 = shop::scalar(
        &db,
        "select count(*) from newsletter where email = 'fan-twice@example.com'",
    )
    .await;
    assert_eq!(n, 1);
}

#[tokio::test]
async fn vip_coupon_discount() {
    let db = shop::connect().await;
    assert_eq!(
        shop::discounted_price(&db, "mug", "VIP20").await.unwrap(),
        Some(960)
    );
}
