//! The database evidence against a real embedded PostgreSQL: a template shaped like the planted
//! suites', two clones of it, one changed the way polluting tests change theirs, and the exact
//! rows, tables and sequences `left_behind` reports.

use dbsandbox_flaky::evidence::left_behind;
use dbsandbox_flaky::model::TableEvidence;
use dbsandbox_server::{Endpoint, Server, ServerConfig};
use serde_json::json;

const TEMPLATE_SCHEMA: &str = r#"
create table users (id serial primary key, email text not null unique, name text);
create table coupons (id serial primary key, code text not null unique, percent int not null);
create table products (sku text primary key, name text not null, price numeric(10, 2) not null);
create table orders (
    id bigint generated always as identity primary key,
    user_id int not null references users,
    sku text not null references products,
    qty int not null);
-- No primary key: compared as a multiset of whole rows.
create table audit_log (event text, step int);
-- No primary key but a unique index over a not-null column: keyed by it.
create table tags (name text not null, weight int);
create unique index tags_name on tags (name);
create table events (at date not null, what text) partition by range (at);
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');
-- Names that need quoting everywhere.
create table "Cart Items" ("Id" int primary key, "it's" text, "dbsandbox row" text);
create schema billing;
create table billing.invoices (id serial primary key, total numeric not null);

insert into users (email, name) values ('ann@example.com', 'Ann');
insert into products values ('A1', 'apple', 1.50), ('B2', 'bread', 2.25), ('C3', 'cheese', 7.00);
insert into audit_log values ('seed', 1), ('seed', 1);
insert into tags values ('new', 1), ('sale', 2);
insert into billing.invoices (total) values (10);
insert into "Cart Items" values (1, 'one', 'x');
"#;

/// What the polluting tests of the planted suites do, all at once.
const POLLUTION: &str = r#"
insert into users (email, name) values ('bob@example.com', 'Bob');
insert into coupons (code, percent) values ('WELCOME10', 10);
update products set price = 1.99 where sku = 'A1';
delete from products where sku = 'C3';
select nextval('orders_id_seq');
insert into audit_log values ('test', 2);
delete from audit_log where ctid = (select ctid from audit_log limit 1);
update tags set weight = 5 where name = 'sale';
insert into events values ('2026-12-01', 'login');
create table scratch (x int primary key, note text);
insert into scratch values (2, 'b'), (1, 'a');
drop table billing.invoices;
update "Cart Items" set "it's" = 'uno' where "Id" = 1;
insert into "Cart Items" values (2, 'two', 'y');
"#;

async fn private_server() -> (tempfile::TempDir, Server) {
    let cache = tempfile::tempdir().unwrap();
    let server = Server::start(&ServerConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        private: true,
        ..Default::default()
    })
    .await
    .expect("embedded server starts");
    (cache, server)
}

/// Builds the template and two clones of it; returns their URLs (baseline, clone).
async fn template_and_clones(endpoint: &Endpoint) -> (String, String) {
    let admin = endpoint.admin().await.unwrap();
    admin.batch_execute("create database tpl").await.unwrap();
    endpoint
        .connect("tpl")
        .await
        .unwrap()
        .batch_execute(TEMPLATE_SCHEMA)
        .await
        .unwrap();
    for clone in ["baseline", "culprit"] {
        admin
            .batch_execute(&format!("create database {clone} template tpl"))
            .await
            .unwrap();
    }
    (endpoint.url("baseline"), endpoint.url("culprit"))
}

fn table(name: &str, key: &[&str]) -> TableEvidence {
    TableEvidence {
        table: name.into(),
        key_columns: key.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}

fn sequence(name: &str, before: Option<i64>, after: Option<i64>) -> TableEvidence {
    TableEvidence {
        table: name.into(),
        updated: vec![json!({ "before": before, "after": after })],
        updated_count: 1,
        ..Default::default()
    }
}

fn expected_evidence() -> Vec<TableEvidence> {
    vec![
        TableEvidence {
            deleted: vec![json!({"id": 1, "total": 10})],
            deleted_count: 1,
            ..table("billing.invoices", &["id"])
        },
        TableEvidence {
            inserted: vec![json!({"Id": 2, "it's": "two", "dbsandbox row": "y"})],
            updated: vec![json!({
                "key": {"Id": 1},
                "before": {"it's": "one"},
                "after": {"it's": "uno"},
            })],
            inserted_count: 1,
            updated_count: 1,
            ..table("public.Cart Items", &["Id"])
        },
        TableEvidence {
            inserted: vec![json!({"event": "test", "step": 2})],
            deleted: vec![json!({"event": "seed", "step": 1})],
            inserted_count: 1,
            deleted_count: 1,
            ..table("public.audit_log", &["event", "step"])
        },
        TableEvidence {
            inserted: vec![json!({"id": 1, "code": "WELCOME10", "percent": 10})],
            inserted_count: 1,
            ..table("public.coupons", &["id"])
        },
        TableEvidence {
            inserted: vec![json!({"at": "2026-12-01", "what": "login"})],
            inserted_count: 1,
            ..table("public.events", &["at", "what"])
        },
        TableEvidence {
            updated: vec![json!({
                "key": {"sku": "A1"},
                "before": {"price": 1.5},
                "after": {"price": 1.99},
            })],
            deleted: vec![json!({"sku": "C3", "name": "cheese", "price": 7.0})],
            updated_count: 1,
            deleted_count: 1,
            ..table("public.products", &["sku"])
        },
        TableEvidence {
            inserted: vec![json!({"x": 1, "note": "a"}), json!({"x": 2, "note": "b"})],
            inserted_count: 2,
            ..table("public.scratch", &["x"])
        },
        TableEvidence {
            updated: vec![json!({
                "key": {"name": "sale"},
                "before": {"weight": 2},
                "after": {"weight": 5},
            })],
            updated_count: 1,
            ..table("public.tags", &["name"])
        },
        TableEvidence {
            inserted: vec![json!({"id": 2, "email": "bob@example.com", "name": "Bob"})],
            inserted_count: 1,
            ..table("public.users", &["id"])
        },
        sequence("billing.invoices_id_seq", Some(1), None),
        sequence("public.coupons_id_seq", None, Some(1)),
        sequence("public.orders_id_seq", None, Some(1)),
        sequence("public.users_id_seq", Some(1), Some(2)),
    ]
}

#[tokio::test]
async fn reports_the_rows_tables_and_sequences_a_culprit_left_behind() {
    let (_cache, server) = private_server().await;
    let endpoint = server.endpoint().clone();
    let (baseline, clone) = template_and_clones(&endpoint).await;
    endpoint
        .connect("culprit")
        .await
        .unwrap()
        .batch_execute(POLLUTION)
        .await
        .unwrap();

    let evidence = left_behind(&baseline, &clone, 10).await.unwrap();
    let expected = expected_evidence();
    let names = |e: &[TableEvidence]| e.iter().map(|t| t.table.clone()).collect::<Vec<_>>();
    assert_eq!(names(&evidence), names(&expected), "{evidence:#?}");
    for (got, want) in evidence.iter().zip(&expected) {
        assert_eq!(got, want, "evidence of {}", want.table);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn cuts_each_list_at_the_limit_but_counts_every_row() {
    let (_cache, server) = private_server().await;
    let endpoint = server.endpoint().clone();
    let (baseline, clone) = template_and_clones(&endpoint).await;
    endpoint
        .connect("culprit")
        .await
        .unwrap()
        .batch_execute(
            "insert into users (email) select 'u' || i || '@example.com' from generate_series(1, 5000) i;
             update products set price = price + 1;
             delete from tags;
             insert into audit_log select 'bulk', i from generate_series(1, 300) i;",
        )
        .await
        .unwrap();

    let evidence = left_behind(&baseline, &clone, 2).await.unwrap();
    let get = |name: &str| {
        evidence
            .iter()
            .find(|e| e.table == name)
            .unwrap_or_else(|| panic!("no evidence for {name}: {evidence:#?}"))
    };
    let users = get("public.users");
    assert_eq!(users.inserted_count, 5000);
    // The first rows in key order.
    assert_eq!(
        users.inserted,
        vec![
            json!({"id": 2, "email": "u1@example.com", "name": null}),
            json!({"id": 3, "email": "u2@example.com", "name": null}),
        ]
    );
    let products = get("public.products");
    assert_eq!((products.updated_count, products.updated.len()), (3, 2));
    assert_eq!(
        products.updated[0],
        json!({"key": {"sku": "A1"}, "before": {"price": 1.5}, "after": {"price": 2.5}})
    );
    let tags = get("public.tags");
    assert_eq!((tags.deleted_count, tags.deleted.len()), (2, 2));
    let audit = get("public.audit_log");
    assert_eq!((audit.inserted_count, audit.inserted.len()), (300, 2));
    assert_eq!(audit.deleted_count, 0);
    assert_eq!(
        get("public.users_id_seq").updated,
        vec![json!({"before": 1, "after": 5001})]
    );
    assert_eq!(evidence.len(), 5, "{evidence:#?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn identical_clones_give_no_evidence_and_are_released_at_once() {
    let (_cache, server) = private_server().await;
    let endpoint = server.endpoint().clone();
    let (baseline, clone) = template_and_clones(&endpoint).await;
    // A change undone leaves no trace in the data (only in the physical row order).
    endpoint
        .connect("culprit")
        .await
        .unwrap()
        .batch_execute(
            "update products set price = price + 1 where sku = 'B2';
             update products set price = price - 1 where sku = 'B2';",
        )
        .await
        .unwrap();

    let evidence = left_behind(&baseline, &clone, 10).await.unwrap();
    assert_eq!(evidence, Vec::<TableEvidence>::new());
    // Its connections are closed when it returns: both clones can be dropped right away.
    let admin = endpoint.admin().await.unwrap();
    for clone in ["baseline", "culprit"] {
        admin
            .batch_execute(&format!("drop database {clone}"))
            .await
            .unwrap();
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_clone_that_cannot_be_reached_is_a_clear_error() {
    let (_cache, server) = private_server().await;
    let endpoint = server.endpoint().clone();
    let (baseline, _) = template_and_clones(&endpoint).await;
    let error = left_behind(&baseline, &endpoint.url("no_such_clone"), 10)
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("connecting to the culprit's clone"),
        "{error:#}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_column_the_culprit_added_or_a_key_it_dropped_still_compares() {
    let (_cache, server) = private_server().await;
    let endpoint = server.endpoint().clone();
    let (baseline, clone) = template_and_clones(&endpoint).await;
    endpoint
        .connect("culprit")
        .await
        .unwrap()
        .batch_execute(
            "alter table tags add column hidden bool not null default false;
             alter table users drop constraint users_pkey cascade;
             alter table users drop constraint users_email_key;
             insert into users (id, email) values (1, 'ann@example.com');",
        )
        .await
        .unwrap();

    let evidence = left_behind(&baseline, &clone, 10).await.unwrap();
    let tags = evidence.iter().find(|e| e.table == "public.tags").unwrap();
    assert_eq!(tags.updated_count, 2, "{tags:#?}");
    assert_eq!(
        tags.updated[0],
        json!({"key": {"name": "new"}, "before": {}, "after": {"hidden": false}})
    );
    // Its key gone and duplicated, the table is compared as whole rows: Ann's copy shows.
    let users = evidence.iter().find(|e| e.table == "public.users").unwrap();
    assert_eq!(users.key_columns, ["id", "email", "name"]);
    assert_eq!(
        users.inserted,
        [json!({"id": 1, "email": "ann@example.com", "name": null})],
        "{users:#?}"
    );
    assert_eq!(users.deleted_count, 0);
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    server.stop().await.unwrap();
}
