//! `#[dbsandbox::test]` with a `sqlx::PgPool`. Every test inserts the same fixed email and
//! asserts exact counts and ids: on one shared database they would fail with
//! `duplicate key value violates unique constraint "users_email_key"` or wrong counts as soon
//! as two of them ran (in any order, in parallel or not).

use dbsandbox_example_rust_sqlx::{count_users, create_user, place_order, rename_user};
use sqlx::{Connection, PgPool};

#[dbsandbox::test]
async fn creates_alice(pool: PgPool) {
    let id = create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    // The sequence is part of the sandbox too: the first new user is always 2.
    assert_eq!(id, 2);
    assert_eq!(count_users(&pool).await.unwrap(), 2);
}

#[dbsandbox::test]
async fn creates_alice_and_bob(pool: PgPool) -> Result<(), sqlx::Error> {
    create_user(&pool, "alice@example.com", "Alice").await?;
    create_user(&pool, "bob@example.com", "Bob").await?;
    assert_eq!(count_users(&pool).await?, 3);
    Ok(())
}

#[dbsandbox::test]
async fn duplicate_email_fails_and_the_sandbox_recovers(pool: PgPool) {
    create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    let err = create_user(&pool, "alice@example.com", "Alice again")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("users_email_key"),
        "unexpected error: {err}"
    );
    // The failed transaction did not poison the sandbox: later statements work.
    assert_eq!(count_users(&pool).await.unwrap(), 2);
}

#[dbsandbox::test]
async fn renames_user_1(pool: PgPool) {
    assert!(rename_user(&pool, 1, "Root").await.unwrap());
    let (name,): (String,) = sqlx::query_as("select name from users where id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "Root");
}

#[dbsandbox::test]
async fn user_1_is_still_the_seed(pool: PgPool) {
    // Fails on a shared database once renames_user_1 has run.
    let (email, name): (String, String) =
        sqlx::query_as("select email, name from users where id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (email.as_str(), name.as_str()),
        ("admin@example.com", "Admin")
    );
    assert_eq!(count_users(&pool).await.unwrap(), 1);
}

#[dbsandbox::test]
async fn orders_for_alice(pool: PgPool) {
    let alice = create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    place_order(&pool, alice, 1250).await.unwrap();
    place_order(&pool, alice, 750).await.unwrap();
    let (n, total): (i64, Option<i64>) =
        sqlx::query_as("select count(*), sum(total_cents)::bigint from orders")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((n, total), (2, Some(2000)));
}

#[dbsandbox::test]
async fn pool_connections_share_the_sandbox(pool: PgPool) {
    // Two connections at once: both see the same sandbox.
    let mut a = pool.acquire().await.unwrap();
    let mut b = pool.acquire().await.unwrap();
    sqlx::query("insert into users(email, name) values ('carol@example.com', 'Carol')")
        .execute(&mut *a)
        .await
        .unwrap();
    let (n,): (i64,) =
        sqlx::query_as("select count(*) from users where email = 'carol@example.com'")
            .fetch_one(&mut *b)
            .await
            .unwrap();
    assert_eq!(n, 1);
}

#[dbsandbox::test(isolation = "database")]
async fn database_isolation_commits_for_real(pool: PgPool) {
    create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    assert_eq!(count_users(&pool).await.unwrap(), 2);
    // A brand-new connection (not from the pool) sees the committed row.
    let url = pool.connect_options();
    let mut other = sqlx::postgres::PgConnection::connect_with(&url)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("select count(*) from users")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[dbsandbox::test(migrations = "migrations")]
async fn migrations_from_the_attribute(pool: PgPool) {
    create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    assert_eq!(count_users(&pool).await.unwrap(), 2);
}

#[dbsandbox::test]
async fn single_connection(mut conn: sqlx::PgConnection) {
    sqlx::query("insert into users(email, name) values ('alice@example.com', 'Alice')")
        .execute(&mut conn)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as("select count(*) from users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[dbsandbox::test]
#[should_panic(expected = "deliberate failure")]
async fn a_failing_test_does_not_disturb_the_others(pool: PgPool) {
    create_user(&pool, "alice@example.com", "Alice")
        .await
        .unwrap();
    panic!("deliberate failure after a write");
}
