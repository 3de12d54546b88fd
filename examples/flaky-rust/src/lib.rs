//! The shop under test in the planted `cargo test` suite for `dbsandbox flaky`: every function
//! runs on one autocommit `tokio_postgres::Client` connected to `DATABASE_URL`, so what a test
//! writes stays committed for the tests after it (exactly what order-dependent tests are made of).

use tokio_postgres::{Client, Error, NoTls};

/// A connection to `DATABASE_URL`, its driver task spawned on the test's runtime.
pub async fn connect() -> Client {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL names the shop's database");
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to DATABASE_URL: {err}"));
    tokio::spawn(connection);
    client
}

/// Whether the planted faults are on: `FLAKY_PLANTED=0` switches every one of them off.
pub fn planted() -> bool {
    std::env::var("FLAKY_PLANTED").map_or(true, |value| value != "0")
}

pub async fn register_user(db: &Client, email: &str, name: &str) -> Result<i32, Error> {
    let row = db
        .query_one(
            "insert into users (email, name) values ($1, $2) returning id",
            &[&email, &name],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn user_name(db: &Client, email: &str) -> Result<Option<String>, Error> {
    let row = db
        .query_opt("select name from users where email = $1", &[&email])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn user_id(db: &Client, email: &str) -> Result<Option<i32>, Error> {
    let row = db
        .query_opt("select id from users where email = $1", &[&email])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn product_price(db: &Client, sku: &str) -> Result<Option<i32>, Error> {
    let row = db
        .query_opt("select price_cents from products where sku = $1", &[&sku])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn add_product(
    db: &Client,
    sku: &str,
    name: &str,
    price_cents: i32,
    stock: i32,
) -> Result<i32, Error> {
    let row = db
        .query_one(
            "insert into products (sku, name, price_cents, stock) values ($1, $2, $3, $4) returning id",
            &[&sku, &name, &price_cents, &stock],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn change_stock(db: &Client, sku: &str, delta: i32) -> Result<i32, Error> {
    let row = db
        .query_one(
            "update products set stock = stock + $2 where sku = $1 returning stock",
            &[&sku, &delta],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn stock(db: &Client, sku: &str) -> Result<i32, Error> {
    let row = db
        .query_one("select stock from products where sku = $1", &[&sku])
        .await?;
    Ok(row.get(0))
}

pub async fn discontinue_product(db: &Client, sku: &str) -> Result<u64, Error> {
    db.execute("delete from products where sku = $1", &[&sku])
        .await
}

pub async fn create_coupon(db: &Client, code: &str, percent_off: i32) -> Result<(), Error> {
    db.execute(
        "insert into coupons (code, percent_off) values ($1, $2)",
        &[&code, &percent_off],
    )
    .await?;
    Ok(())
}

/// The welcome campaign's coupon, created or brought back to 10 % (idempotent, as an admin
/// action would be).
pub async fn launch_welcome_campaign(db: &Client) -> Result<(), Error> {
    db.execute(
        "insert into coupons (code, percent_off) values ('WELCOME10', 10)
         on conflict (code) do update set percent_off = excluded.percent_off",
        &[],
    )
    .await?;
    Ok(())
}

pub async fn delete_coupon(db: &Client, code: &str) -> Result<u64, Error> {
    db.execute("delete from coupons where code = $1", &[&code])
        .await
}

/// The product's price after the coupon, or `None` when either is unknown.
pub async fn discounted_price(db: &Client, sku: &str, code: &str) -> Result<Option<i32>, Error> {
    let row = db
        .query_opt(
            "select (p.price_cents * (100 - c.percent_off) / 100)::int
             from products p, coupons c where p.sku = $1 and c.code = $2",
            &[&sku, &code],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Places an order for a product and returns (order id, total in cents).
pub async fn place_order(
    db: &Client,
    email: &str,
    sku: &str,
    quantity: i32,
) -> Result<(i32, i32), Error> {
    let row = db
        .query_one(
            "insert into orders (user_id, product_id, quantity, total_cents)
             select u.id, p.id, $3, p.price_cents * $3 from users u, products p
             where u.email = $1 and p.sku = $2
             returning id, total_cents",
            &[&email, &sku, &quantity],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

pub async fn cancel_order(db: &Client, order_id: i32) -> Result<u64, Error> {
    db.execute("delete from orders where id = $1", &[&order_id])
        .await
}

pub async fn setting(db: &Client, key: &str) -> Result<Option<String>, Error> {
    let row = db
        .query_opt("select value from settings where key = $1", &[&key])
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub async fn set_setting(db: &Client, key: &str, value: &str) -> Result<(), Error> {
    db.execute(
        "insert into settings (key, value) values ($1, $2)
         on conflict (key) do update set value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

/// A price in cents as the shop prints it, in the configured currency.
pub async fn format_price(db: &Client, cents: i32) -> Result<String, Error> {
    let currency = setting(db, "currency").await?.unwrap_or_default();
    Ok(format!("{}.{:02} {currency}", cents / 100, cents % 100))
}

pub async fn gross_price(db: &Client, sku: &str) -> Result<i32, Error> {
    let row = db
        .query_one(
            "select (p.price_cents * (100 + s.value::int) / 100)::int
             from products p, settings s where p.sku = $1 and s.key = 'tax_rate_percent'",
            &[&sku],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn add_review(
    db: &Client,
    sku: &str,
    email: &str,
    rating: i32,
    body: &str,
) -> Result<(), Error> {
    db.execute(
        "insert into reviews (product_id, user_id, rating, body)
         select p.id, u.id, $3, $4 from products p, users u where p.sku = $1 and u.email = $2",
        &[&sku, &email, &rating, &body],
    )
    .await?;
    Ok(())
}

pub async fn average_rating(db: &Client, sku: &str) -> Result<Option<f64>, Error> {
    let row = db
        .query_one(
            "select avg(r.rating)::float8 from reviews r join products p on p.id = r.product_id
             where p.sku = $1",
            &[&sku],
        )
        .await?;
    Ok(row.get(0))
}

pub async fn subscribe(db: &Client, email: &str, topic: &str) -> Result<(), Error> {
    db.execute(
        "insert into newsletter (email, topic) values ($1, $2) on conflict (email) do nothing",
        &[&email, &topic],
    )
    .await?;
    Ok(())
}

pub async fn audit(db: &Client, actor: &str, action: &str) -> Result<(), Error> {
    db.execute(
        "insert into audit_log (actor, action) values ($1, $2)",
        &[&actor, &action],
    )
    .await?;
    Ok(())
}

pub async fn audit_actions(db: &Client, actor: &str) -> Result<Vec<String>, Error> {
    let rows = db
        .query(
            "select action from audit_log where actor = $1 order by id",
            &[&actor],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// One scalar column of one row: the tests' read-back helper.
pub async fn scalar<T>(db: &Client, sql: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    db.query_one(sql, &[])
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"))
        .get(0)
}

/// The SQLSTATE of a failed statement, for assertions on constraint violations.
pub fn sqlstate(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Ok(value) => panic!("expected a database error, got Ok({value:?})"),
        Err(err) => err
            .code()
            .map(|code| code.code().to_owned())
            .unwrap_or_else(|| panic!("expected a database error, got {err}")),
    }
}
