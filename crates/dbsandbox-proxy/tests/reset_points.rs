//! Named reset points of rollback sandboxes (`SELECT dbsandbox_snapshot('p')`,
//! `SELECT dbsandbox_reset('p')`), and what a reset leaves of the connections' transaction
//! blocks, through tokio-postgres against a real PostgreSQL.

mod support;

use dbsandbox_proxy::{Isolation, ProxyConfig};
use support::{sqlstate, MapRouter, PgServer, TestProxy};

async fn proxy_on_items(server: &PgServer) -> TestProxy {
    server.create_database("pointsdb").await;
    let admin = server.admin_of("pointsdb").await;
    admin
        .batch_execute("create table items(id serial primary key, name text unique not null)")
        .await
        .unwrap();
    let router = MapRouter::with([("k", server.unix_target("pointsdb"))]);
    let config = ProxyConfig {
        default_isolation: Isolation::Rollback,
        ..ProxyConfig::default()
    };
    TestProxy::start(config, router).await
}

async fn rows(client: &tokio_postgres::Client) -> Vec<(i32, String)> {
    client
        .query("select id, name from items order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn insert(client: &tokio_postgres::Client, name: &str) {
    client
        .execute("insert into items(name) values ($1)", &[&name])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_reset_to_a_point_keeps_the_shared_set_up_and_its_sequences() {
    let server = PgServer::start().await;
    let proxy = proxy_on_items(&server).await;
    let set_up = proxy.connect("k").await.unwrap();
    insert(&set_up, "class fixture").await;
    // Through the extended protocol, as a driver's prepared query sends it.
    let answer = set_up
        .query_one("SELECT dbsandbox_snapshot('class')", &[])
        .await
        .unwrap();
    assert_eq!(answer.get::<_, String>("dbsandbox_snapshot"), "ok");

    let test = proxy.connect("k").await.unwrap();
    insert(&test, "first test").await;
    test.batch_execute("SELECT dbsandbox_reset('class')")
        .await
        .unwrap();
    assert_eq!(rows(&set_up).await, [(1, "class fixture".to_string())]);
    // The sequence is back where it was at the point, so the next test gets the same ids.
    insert(&test, "second test").await;
    assert_eq!(
        rows(&test).await,
        [
            (1, "class fixture".to_string()),
            (2, "second test".to_string())
        ]
    );

    // A reset to the template drops the point with everything else.
    test.batch_execute("SELECT dbsandbox_reset()")
        .await
        .unwrap();
    assert_eq!(rows(&test).await, []);
    let missing = test
        .batch_execute("SELECT dbsandbox_reset('class')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&missing), "42704", "{missing:?}");
    assert!(
        missing
            .as_db_error()
            .is_some_and(|e| e.message().contains("dbsandbox_snapshot('class')")),
        "the error says how to take the point: {missing:?}"
    );
}

#[tokio::test]
async fn points_stack_and_taking_one_again_moves_it() {
    let server = PgServer::start().await;
    let proxy = proxy_on_items(&server).await;
    let client = proxy.connect("k").await.unwrap();
    insert(&client, "module").await;
    client
        .batch_execute("SELECT dbsandbox_snapshot('module')")
        .await
        .unwrap();
    insert(&client, "class").await;
    client
        .batch_execute("SELECT dbsandbox_snapshot('class')")
        .await
        .unwrap();
    insert(&client, "test").await;
    client
        .batch_execute("SELECT dbsandbox_reset('class')")
        .await
        .unwrap();
    assert_eq!(rows(&client).await.len(), 2);
    // Back to the outer point: the inner one, taken after it, is gone.
    client
        .batch_execute("SELECT dbsandbox_reset('module')")
        .await
        .unwrap();
    assert_eq!(rows(&client).await, [(1, "module".to_string())]);
    let gone = client
        .batch_execute("SELECT dbsandbox_reset('class')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&gone), "42704");
    // Taken again, a point stands for the state now.
    insert(&client, "more module set-up").await;
    client
        .batch_execute("SELECT dbsandbox_snapshot('module')")
        .await
        .unwrap();
    insert(&client, "test").await;
    client
        .batch_execute("SELECT dbsandbox_reset('module')")
        .await
        .unwrap();
    assert_eq!(rows(&client).await.len(), 2);
}

#[tokio::test]
async fn no_point_is_taken_while_a_connection_is_inside_a_transaction_block() {
    let server = PgServer::start().await;
    let proxy = proxy_on_items(&server).await;
    let busy = proxy.connect("k").await.unwrap();
    let other = proxy.connect("k").await.unwrap();
    busy.batch_execute("BEGIN; insert into items(name) values ('open')")
        .await
        .unwrap();
    let refused = other
        .batch_execute("SELECT dbsandbox_snapshot('p')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&refused), "25001", "{refused:?}");
    busy.batch_execute("COMMIT").await.unwrap();
    other
        .batch_execute("SELECT dbsandbox_snapshot('p')")
        .await
        .unwrap();
    let empty = other
        .batch_execute("SELECT dbsandbox_snapshot('')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&empty), "22023");
}

#[tokio::test]
async fn a_connection_inside_a_transaction_block_stays_in_it_across_a_reset() {
    let server = PgServer::start().await;
    let proxy = proxy_on_items(&server).await;
    let test = proxy.connect("k").await.unwrap();
    let fixture = proxy.connect("k").await.unwrap();
    // A framework's per-test block, as Django's TestCase opens one.
    test.batch_execute("BEGIN; insert into items(name) values ('before the reset')")
        .await
        .unwrap();
    fixture
        .batch_execute("SELECT dbsandbox_reset()")
        .await
        .unwrap();
    // Still in its block: a savepoint works (PostgreSQL would say 25P01 outside one), and the
    // block's earlier work is gone with the reset.
    test.batch_execute("SAVEPOINT inner_block; insert into items(name) values ('after')")
        .await
        .unwrap();
    test.batch_execute("RELEASE SAVEPOINT inner_block; COMMIT")
        .await
        .unwrap();
    assert_eq!(rows(&fixture).await, [(1, "after".to_string())]);
}
