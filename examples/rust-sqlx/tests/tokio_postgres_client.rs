//! `#[dbsandbox::test]` with a `tokio_postgres::Client`, and with a plain URL.

use tokio_postgres::Client;

async fn count(client: &Client) -> i64 {
    client
        .query_one("select count(*) from users", &[])
        .await
        .unwrap()
        .get(0)
}

#[dbsandbox::test]
async fn inserts_alice_in_a_committed_transaction(mut client: Client) {
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "insert into users(email, name) values ('alice@example.com', 'Alice')",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&client).await, 2);
}

#[dbsandbox::test]
async fn renames_user_1(client: Client) -> Result<(), tokio_postgres::Error> {
    let n = client
        .execute("update users set name = 'Root' where id = 1", &[])
        .await?;
    assert_eq!(n, 1);
    let name: String = client
        .query_one("select name from users where id = 1", &[])
        .await?
        .get(0);
    assert_eq!(name, "Root");
    Ok(())
}

#[dbsandbox::test]
async fn starts_from_the_seed(client: Client) {
    assert_eq!(count(&client).await, 1);
    let name: String = client
        .query_one("select name from users where id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Admin");
}

#[dbsandbox::test(isolation = "database")]
async fn database_isolation_with_ddl(client: Client) {
    client
        .batch_execute(
            "create table audit (id int primary key); insert into audit values (1);
             insert into users(email, name) values ('alice@example.com', 'Alice');",
        )
        .await
        .unwrap();
    assert_eq!(count(&client).await, 2);
}

#[dbsandbox::test]
async fn a_second_connection_sees_the_same_sandbox(url: &str) {
    let (a, conn_a) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn_a);
    let (b, conn_b) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn_b);
    a.execute(
        "insert into users(email, name) values ('alice@example.com', 'Alice')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(count(&b).await, 2);
}

#[dbsandbox::test]
async fn owned_url(url: String) {
    assert!(url.starts_with("postgres"), "{url}");
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(count(&client).await, 1);
}
