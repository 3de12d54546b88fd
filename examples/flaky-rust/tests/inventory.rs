//! Inventory: products the tests add themselves and seeded stock. Planted:
//! `discontinue_starter_kit` (polluter of `starter_kit_is_listed` in tests/catalog.rs).

use dbsandbox_example_flaky_rust as shop;

#[tokio::test]
async fn add_product() {
    let db = shop::connect().await;
    shop::add_product(&db, "inv-lamp", "Lamp", 99_900, 2)
        .await
        .unwrap();
    assert_eq!(
        shop::product_price(&db, "inv-lamp").await.unwrap(),
        Some(99_900)
    );
}

/// Planted polluter: deletes the seeded starter kit and commits (with FLAKY_PLANTED=0 it
/// discontinues a product of its own instead).
#[tokio::test]
async fn discontinue_starter_kit() {
    let db = shop::connect().await;
    let sku = if shop::planted() {
        "starter-kit"
    } else {
        shop::add_product(&db, "inv-demo-kit", "Demo kit", 99_900, 1)
            .await
            .unwrap();
        "inv-demo-kit"
    };
    assert_eq!(shop::discontinue_product(&db, sku).await.unwrap(), 1);
    assert_eq!(shop::product_price(&db, sku).await.unwrap(), None);
}

#[tokio::test]
async fn restock_product() {
    let db = shop::connect().await;
    shop::add_product(&db, "inv-desk", "Desk", 99_900, 0)
        .await
        .unwrap();
    assert_eq!(shop::change_stock(&db, "inv-desk", 5).await.unwrap(), 5);
}

#[tokio::test]
async fn seeded_stock_levels() {
    let db = shop::connect().await;
    assert_eq!(shop::stock(&db, "mug").await.unwrap(), 40);
    assert_eq!(shop::stock(&db, "sticker-pack").await.unwrap(), 200);
}

#[tokio::test]
async fn stock_cannot_go_negative() {
    let db = shop::connect().await;
    shop::add_product(&db, "inv-chair", "Chair", 99_900, 1)
        .await
        .unwrap();
    assert_eq!(
        shop::sqlstate(shop::change_stock(&db, "inv-chair", -2).await),
        "23514"
    );
    assert_eq!(shop::stock(&db, "inv-chair").await.unwrap(), 1);
}
