//! Catalog: prices, search and reviews. Planted: `starter_kit_is_listed` (victim of
//! `discontinue_starter_kit` in tests/inventory.rs) and `featured_product_pick` (random).

use dbsandbox_example_flaky_rust as shop;

/// Planted random failure: picks one of two products in random order (PostgreSQL's random(),
/// not seeded by anything the test order controls) and expects the first.
#[tokio::test]
async fn featured_product_pick() {
    let db = shop::connect().await;
    let order = if shop::planted() { "random()" } else { "sku" };
    let sql = format!(
        "select sku from products where sku in ('mug', 'sticker-pack') order by {order} limit 1"
    );
    let sku: String = shop::scalar(&db, &sql).await;
    assert_eq!(sku, "mug");
}

#[tokio::test]
async fn one_review_per_user_and_product() {
    let db = shop::connect().await;
    shop::add_review(&db, "sticker-pack", "grace@example.com", 5, "shiny")
        .await
        .unwrap();
    let again = shop::add_review(
        &db,
        "sticker-pack",
        "grace@example.com",
        1,
        "changed my mind",
    )
    .await;
    assert_eq!(shop::sqlstate(again), "23505");
}

#[tokio::test]
async fn price_formatted_in_currency() {
    let db = shop::connect().await;
    assert_eq!(shop::format_price(&db, 1200).await.unwrap(), "12.00 EUR");
}

#[tokio::test]
async fn product_price_lookup() {
    let db = shop::connect().await;
    assert_eq!(
        shop::product_price(&db, "pro-kit").await.unwrap(),
        Some(4900)
    );
}

#[tokio::test]
async fn products_under_fifteen_euros() {
    let db = shop::connect().await;
    let rows = db
        .query(
            "select sku from products where price_cents < 1500 order by price_cents",
            &[],
        )
        .await
        .unwrap();
    let skus: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(skus, ["sticker-pack", "mug"]);
}

#[tokio::test]
async fn review_average_rating() {
    let db = shop::connect().await;
    shop::add_review(&db, "t-shirt", "ada@example.com", 4, "soft")
        .await
        .unwrap();
    shop::add_review(&db, "t-shirt", "linus@example.com", 2, "shrinks")
        .await
        .unwrap();
    assert_eq!(
        shop::average_rating(&db, "t-shirt").await.unwrap(),
        Some(3.0)
    );
}

#[tokio::test]
async fn review_rating_out_of_range() {
    let db = shop::connect().await;
    let result = shop::add_review(&db, "mug", "linus@example.com", 6, "best mug ever").await;
    assert_eq!(shop::sqlstate(result), "23514");
}

#[tokio::test]
async fn search_products_by_name() {
    let db = shop::connect().await;
    let rows = db
        .query(
            "select sku from products where name ilike '%shirt%' order by sku",
            &[],
        )
        .await
        .unwrap();
    let skus: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(skus, ["t-shirt"]);
}

/// Planted victim: the seeded starter kit must still be for sale.
#[tokio::test]
async fn starter_kit_is_listed() {
    let db = shop::connect().await;
    assert_eq!(
        shop::product_price(&db, "starter-kit").await.unwrap(),
        Some(1900)
    );
}

#[tokio::test]
async fn unknown_sku_has_no_price() {
    let db = shop::connect().await;
    assert_eq!(shop::product_price(&db, "no-such-sku").await.unwrap(), None);
}
