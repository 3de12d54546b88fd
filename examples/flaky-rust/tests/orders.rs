//! Orders: the seeded orders are read only. Planted: `place_order`, the polluter of
//! `count_seeded_orders` (tests/admin.rs).

use dbsandbox_example_flaky_rust as shop;

#[tokio::test]
async fn order_customer_email() {
    let db = shop::connect().await;
    let email: String = shop::scalar(
        &db,
        "select u.email from orders o join users u on u.id = o.user_id where o.id = 2",
    )
    .await;
    assert_eq!(email, "grace@example.com");
}

#[tokio::test]
async fn order_quantity_must_be_positive() {
    let db = shop::connect().await;
    assert_eq!(
        shop::sqlstate(shop::place_order(&db, "ada@example.com", "mug", 0).await),
        "23514"
    );
}

#[tokio::test]
async fn order_with_coupon() {
    let db = shop::connect().await;
    let code: String = shop::scalar(&db, "select coupon_code from orders where id = 4").await;
    assert_eq!(code, "VIP20");
}

/// Planted polluter: places an order and commits it (with FLAKY_PLANTED=0 it cancels it again).
#[tokio::test]
async fn place_order() {
    let db = shop::connect().await;
    let (id, total) = shop::place_order(&db, "grace@example.com", "mug", 1)
        .await
        .unwrap();
    assert_eq!(total, 1200);
    if !shop::planted() {
        assert_eq!(shop::cancel_order(&db, id).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn seeded_order_total() {
    let db = shop::connect().await;
    let total: i32 = shop::scalar(&db, "select total_cents from orders where id = 1").await;
    assert_eq!(total, 4900);
}
