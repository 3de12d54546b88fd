//! Accounts: seeded users are read only. Planted: an assumed id (`register_assigns_next_id`,
//! victim of `signup_new_customer` in tests/marketing.rs).

use dbsandbox_example_flaky_rust as shop;

#[tokio::test]
async fn find_user_by_email() {
    let db = shop::connect().await;
    assert_eq!(
        shop::user_name(&db, "ada@example.com")
            .await
            .unwrap()
            .as_deref(),
        Some("Ada")
    );
}

/// Planted victim: assumes its user gets the id after the seeded ones (3 + 1).
#[tokio::test]
async fn register_assigns_next_id() {
    let db = shop::connect().await;
    let id = shop::register_user(&db, "new@example.com", "New")
        .await
        .unwrap();
    if shop::planted() {
        assert_eq!(id, 4, "the first registered user gets id 4");
    } else {
        assert!(
            id > 3,
            "a registered user gets an id after the seeded ones, got {id}"
        );
        assert_eq!(
            shop::user_id(&db, "new@example.com").await.unwrap(),
            Some(id)
        );
    }
}

#[tokio::test]
async fn seeded_user_names_in_id_order() {
    let db = shop::connect().await;
    let rows = db
        .query("select name from users where id <= 3 order by id", &[])
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(names, ["Ada", "Grace", "Linus"]);
}

#[tokio::test]
async fn unknown_email_has_no_user() {
    let db = shop::connect().await;
    assert_eq!(
        shop::user_name(&db, "nobody@example.com").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn user_order_history() {
    let db = shop::connect().await;
    let rows = db
        .query(
            "select p.sku from orders o join products p on p.id = o.product_id
             where o.user_id = 1 order by o.id",
            &[],
        )
        .await
        .unwrap();
    let skus: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    assert_eq!(skus, ["pro-kit", "t-shirt"]);
}
