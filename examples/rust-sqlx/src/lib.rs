//! The "application" under test: a few queries that commit, as real code does.

use sqlx::PgPool;

/// Creates a user in its own committed transaction and returns its id.
pub async fn create_user(pool: &PgPool, email: &str, name: &str) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (id,): (i64,) =
        sqlx::query_as("insert into users(email, name) values ($1, $2) returning id")
            .bind(email)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(id)
}

/// Renames a user; true when the user exists.
pub async fn rename_user(pool: &PgPool, id: i64, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update users set name = $2 where id = $1")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Places an order for a user (committed).
pub async fn place_order(
    pool: &PgPool,
    user_id: i64,
    total_cents: i64,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (id,): (i64,) =
        sqlx::query_as("insert into orders(user_id, total_cents) values ($1, $2) returning id")
            .bind(user_id)
            .bind(total_cents)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(id)
}

/// The number of users.
pub async fn count_users(pool: &PgPool) -> Result<i64, sqlx::Error> {
    let (n,): (i64,) = sqlx::query_as("select count(*) from users")
        .fetch_one(pool)
        .await?;
    Ok(n)
}
