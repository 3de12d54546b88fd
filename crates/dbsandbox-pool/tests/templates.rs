//! Templates and pools against a real embedded PostgreSQL: build and reuse, drift and collection,
//! failing migrations, concurrent builders, clone pool, spares, and gc's respect for the marker.

use std::path::Path;
use std::time::Duration;

use dbsandbox_pool::{
    collect_old_templates, ensure_template, gc, list, ClonePool, DbKind, DbState, PoolConfig,
    PoolError, SchemaSource,
};
use dbsandbox_server::{Endpoint, Server, ServerConfig};

async fn private_server(cache: &Path) -> Server {
    Server::start(&ServerConfig {
        cache_dir: Some(cache.to_path_buf()),
        private: true,
        ..Default::default()
    })
    .await
    .expect("embedded server starts")
}

fn project(dir: &Path, files: &[(&str, &str)]) -> SchemaSource {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for (name, sql) in files {
        std::fs::write(migrations.join(name), sql).unwrap();
    }
    SchemaSource {
        project_root: dir.to_path_buf(),
        migrations: Some(migrations),
        ..Default::default()
    }
}

async fn database_names(endpoint: &Endpoint) -> Vec<String> {
    let admin = endpoint.admin().await.unwrap();
    admin
        .query("select datname from pg_database order by datname", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn count(endpoint: &Endpoint, database: &str, sql: &str) -> i64 {
    let client = endpoint.connect(database).await.unwrap();
    client.query_one(sql, &[]).await.unwrap().get(0)
}

fn quiet(_: &str) {}

async fn pool_of(
    endpoint: &Endpoint,
    template: &dbsandbox_pool::Template,
    size: usize,
) -> ClonePool {
    ClonePool::start(
        endpoint,
        template,
        PoolConfig {
            size,
            ..Default::default()
        },
    )
    .await
    .expect("pool starts")
}

#[tokio::test]
async fn builds_once_reuses_and_rebuilds_on_drift_collecting_the_old() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let source = project(
        dir.path(),
        &[
            (
                "0001_users.sql",
                "create table users(id serial primary key, name text unique);",
            ),
            (
                "0002_seed.sql",
                "insert into users(name) values ('a'), ('b');",
            ),
        ],
    );

    let first = ensure_template(endpoint, &source, &quiet).await.unwrap();
    assert!(first.built);
    let again = ensure_template(endpoint, &source, &quiet).await.unwrap();
    assert!(!again.built, "unchanged inputs reuse the template");
    assert_eq!(first.name, again.name);
    assert!(
        again.elapsed < Duration::from_millis(500),
        "reuse took {:?}",
        again.elapsed
    );

    // Drift: a new migration makes a new template; the old one is collected with keep = 1.
    std::fs::write(
        dir.path().join("migrations/0003_more.sql"),
        "insert into users(name) values ('c');",
    )
    .unwrap();
    let drifted = ensure_template(endpoint, &source, &quiet).await.unwrap();
    assert!(drifted.built);
    assert_ne!(drifted.name, first.name);
    let admin = endpoint.admin().await.unwrap();
    let collected = collect_old_templates(&admin, &drifted.project, &drifted.name, 1)
        .await
        .unwrap();
    assert_eq!(collected, vec![first.name.clone()]);
    let names = database_names(endpoint).await;
    assert!(
        !names.contains(&first.name) && names.contains(&drifted.name),
        "{names:?}"
    );

    let pool = pool_of(endpoint, &drifted, 2).await;
    let clone = pool.acquire().await.unwrap();
    assert_eq!(
        count(endpoint, &clone, "select count(*) from users").await,
        3,
        "a clone has the template's data"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn failing_migration_names_file_line_and_message_and_leaves_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let source = project(
        dir.path(),
        &[
            ("0001_ok.sql", "create table a(id int);"),
            (
                "0002_bad.sql",
                "create table b(id int);\n\ncreate table c(x no_such_type);\n",
            ),
        ],
    );
    let before = database_names(endpoint).await;
    let err = ensure_template(endpoint, &source, &quiet)
        .await
        .unwrap_err();
    match &err {
        PoolError::Migration {
            file,
            line,
            message,
        } => {
            assert!(file.ends_with("0002_bad.sql"), "{file}");
            assert_eq!(*line, Some(3));
            assert!(
                message.contains("no_such_type") && message.contains("42704"),
                "{message}"
            );
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    assert!(err.to_string().contains("0002_bad.sql:3"), "{err}");
    assert_eq!(
        database_names(endpoint).await,
        before,
        "no half-built template left"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_requests_build_the_template_once() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint().clone();
    let dir = tempfile::tempdir().unwrap();
    // pg_sleep makes the build slow enough that all requests overlap with it.
    let source = project(
        dir.path(),
        &[(
            "0001_slow.sql",
            "select pg_sleep(0.5); create table t(id int);",
        )],
    );
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (endpoint, source) = (endpoint.clone(), source.clone());
        tasks.push(tokio::spawn(async move {
            ensure_template(&endpoint, &source, &quiet).await
        }));
    }
    let mut built = 0;
    let mut names = std::collections::HashSet::new();
    for task in tasks {
        let template = task.await.unwrap().unwrap();
        built += usize::from(template.built);
        names.insert(template.name);
    }
    assert_eq!(built, 1, "exactly one builder");
    assert_eq!(names.len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn pool_hands_out_marked_clones_drops_returns_and_keeps_spares() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let source = project(
        dir.path(),
        &[("0001.sql", "create table t(id serial primary key);")],
    );
    let template = ensure_template(endpoint, &source, &quiet).await.unwrap();
    let pool = pool_of(endpoint, &template, 3).await;
    assert!(pool.wait_ready(3, Duration::from_secs(30)).await);
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    assert_ne!(a, b);
    let client = endpoint.connect(&a).await.unwrap();
    client
        .batch_execute("insert into t default values")
        .await
        .unwrap();
    drop(client);
    pool.release(&a);
    assert!(
        pool.wait_ready(3, Duration::from_secs(30)).await,
        "refilled"
    );
    pool.shutdown(true).await.unwrap();
    let names = database_names(endpoint).await;
    assert!(
        !names.contains(&a) && !names.contains(&b),
        "returned and leased clones are dropped"
    );
    let admin = endpoint.admin().await.unwrap();
    let spares: Vec<_> = list(&admin)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.marker.kind == DbKind::Clone && d.marker.state == DbState::Spare)
        .collect();
    assert_eq!(spares.len(), 3, "ready clones are kept as spares");

    // The next pool adopts them instead of cloning.
    let next = pool_of(endpoint, &template, 3).await;
    assert_eq!(next.stats().adopted, 3);
    let adopted = next.acquire().await.unwrap();
    assert_eq!(
        count(endpoint, &adopted, "select count(*) from t").await,
        0,
        "adopted clones are pristine"
    );
    next.shutdown(false).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn gc_drops_only_marked_databases() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let admin = endpoint.admin().await.unwrap();
    // A user's databases, one of them even sharing our prefix: never touched.
    admin.batch_execute("create database userdb").await.unwrap();
    admin
        .batch_execute("create database dbsandbox_users")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = project(dir.path(), &[("0001.sql", "create table t(id int);")]);
    let template = ensure_template(endpoint, &source, &quiet).await.unwrap();
    let pool = pool_of(endpoint, &template, 1).await;
    let leased = pool.acquire().await.unwrap();

    // What the daemon reports: its template and every clone its pool holds or makes.
    let mut daemons_use: std::collections::BTreeSet<String> =
        pool.databases().into_iter().collect();
    daemons_use.insert(template.name.clone());
    let report = gc(&admin, true, async { Ok(daemons_use) }).await.unwrap();
    assert!(
        report.kept_for_daemons.contains(&template.name)
            && report.kept_for_daemons.contains(&leased),
        "what a live daemon uses is kept even with force: {report:?}"
    );
    let second = pool.acquire().await.unwrap();
    assert_eq!(count(endpoint, &second, "select count(*) from t").await, 0);

    let none = || async { Ok(std::collections::BTreeSet::new()) };
    let report = gc(&admin, false, none()).await.unwrap();
    assert!(
        report.skipped_in_use.contains(&leased),
        "a clone leased by a live process is kept"
    );
    assert!(report.dropped.contains(&template.name));
    let report = gc(&admin, true, none()).await.unwrap();
    assert!(report.dropped.contains(&leased));
    let names = database_names(endpoint).await;
    assert!(
        names.contains(&"userdb".to_string()) && names.contains(&"dbsandbox_users".to_string())
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("dbsandbox_t_") || n.starts_with("dbsandbox_c_")),
        "{names:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_mid_refill_leaves_no_unmarked_clone_and_only_dead_creators_clones_are_reaped() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let source = project(dir.path(), &[("0001.sql", "create table t(id int);")]);
    let template = ensure_template(endpoint, &source, &quiet).await.unwrap();
    let admin = endpoint.admin().await.unwrap();
    let unmarked = || async {
        let rows = admin
            .query(
                "select datname from pg_database where datname like 'dbsandbox_c_%' and shobj_description(oid, 'pg_database') is null",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };

    // Shut down while the refill is busy creating clones.
    for _ in 0..3 {
        let pool = pool_of(endpoint, &template, 4).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        pool.shutdown(false).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        unmarked().await,
        Vec::<String>::new(),
        "a clean shutdown leaves no unmarked clone"
    );

    // What a creator killed between CREATE DATABASE and COMMENT leaves behind, and a user's
    // database of a similar name that must survive.
    let orphan = format!(
        "dbsandbox_c_{}_0123456789ab",
        &template.fingerprint.hex[..10]
    );
    admin
        .batch_execute(&format!(
            "create database {orphan} template {}",
            template.name
        ))
        .await
        .unwrap();
    admin
        .batch_execute("create database dbsandbox_c_not_ours")
        .await
        .unwrap();
    // A clone a live but slow creator has not marked yet: it holds the creator lock.
    let in_making = format!(
        "dbsandbox_c_{}_ba9876543210",
        &template.fingerprint.hex[..10]
    );
    let creator = endpoint.admin().await.unwrap();
    creator
        .execute(
            "select pg_advisory_lock($1, hashtext($2))",
            &[&dbsandbox_pool::CLONE_LOCK_CLASS, &in_making],
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "create database {in_making} template {}",
            template.name
        ))
        .await
        .unwrap();
    let reaped = dbsandbox_pool::reap_dead_owners(&admin).await.unwrap();
    assert_eq!(reaped, vec![orphan.clone()]);
    let mut left = vec!["dbsandbox_c_not_ours".to_string(), in_making.clone()];
    left.sort();
    let mut found = unmarked().await;
    found.sort();
    assert_eq!(found, left);
    // gc (the template kept, as a daemon using it would have it) leaves it too.
    let daemons_use = async { Ok([template.name.clone()].into_iter().collect()) };
    let gc = dbsandbox_pool::gc(&admin, false, daemons_use)
        .await
        .unwrap();
    assert_eq!(gc.skipped_in_use, vec![in_making.clone()], "{gc:?}");
    assert!(
        dbsandbox_pool::reap_unfinished_clones(&admin)
            .await
            .unwrap()
            .is_empty(),
        "a clone in the making was reaped"
    );

    // Its creator's session ends before it could mark the clone.
    drop(creator);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reaped = dbsandbox_pool::reap_unfinished_clones(&admin)
            .await
            .unwrap();
        if reaped == vec![in_making.clone()] {
            break;
        }
        assert!(reaped.is_empty(), "{reaped:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "{in_making} was not reaped after its creator's session ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unmarked().await, vec!["dbsandbox_c_not_ours".to_string()]);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn each_clone_belongs_to_an_unprivileged_role_of_its_own() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint().clone();
    let dir = tempfile::tempdir().unwrap();
    let source = project(
        dir.path(),
        &[(
            "0001_items.sql",
            "create extension if not exists pgcrypto;\n\
             create table items(id serial primary key, name text not null);\n\
             insert into items(name) values ('seed');",
        )],
    );
    let template = ensure_template(&endpoint, &source, &quiet).await.unwrap();
    let pool = pool_of(&endpoint, &template, 2).await;
    let a = pool.acquire().await.unwrap();
    let b = pool.acquire().await.unwrap();
    let login = |database: &str| {
        let (user, password) = endpoint.clone_login(database);
        Endpoint {
            user,
            password,
            ..endpoint.clone()
        }
    };
    assert_eq!(login(&a).user, a, "a clone's clients use its own role");
    let client = login(&a).connect(&a).await.unwrap();
    let other = login(&b).connect(&b).await.unwrap();
    let other_pid: i32 = other
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    // Everything a test suite does to its own schema works.
    client
        .batch_execute(
            "alter table items add column note text;\n\
             truncate items restart identity;\n\
             select setval('items_id_seq', 5);\n\
             create table mine(x int); drop table mine;\n\
             create extension citext;\n\
             select gen_random_uuid();\n\
             select pg_advisory_lock(1), pg_advisory_unlock_all();\n\
             set role none; reset session authorization; reset all;",
        )
        .await
        .unwrap();
    let writes: i64 = client
        .query_one(
            "select pg_stat_get_xact_tuples_inserted('items'::regclass)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(writes >= 0);

    // Nothing beyond its clone does.
    for sql in [
        format!("drop database \"{b}\""),
        "create role intruder superuser".to_string(),
        "select pg_read_file('/etc/passwd')".to_string(),
        "copy (select 1) to program 'true'".to_string(),
        format!("select pg_terminate_backend({other_pid})"),
        format!("select pg_cancel_backend({other_pid})"),
        format!("drop database \"{}\"", template.name),
    ] {
        let err = client
            .batch_execute(&sql)
            .await
            .expect_err(&format!("a sandbox may not: {sql}"));
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("42501"),
            "{sql}: {err}"
        );
    }
    other
        .simple_query("select 1")
        .await
        .expect("b's backend lives");

    drop((client, other));
    pool.release(&a);
    pool.release(&b);
    pool.shutdown(false).await.unwrap();
    let roles: i64 = endpoint
        .admin()
        .await
        .unwrap()
        .query_one(
            "select count(*) from pg_roles where rolname = any($1)",
            &[&vec![a.clone(), b.clone()]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0, "a dropped clone's role goes with it");
    server.stop().await.unwrap();
}

/// A private server, a template of one table `t`, and a pool of `size` clones all ready.
async fn full_pool_of_table_t(
    cache: &Path,
    dir: &Path,
    size: usize,
) -> (Server, dbsandbox_pool::Template, ClonePool) {
    let server = private_server(cache).await;
    let endpoint = server.endpoint();
    let source = project(dir, &[("0001.sql", "create table t(id int);")]);
    let template = ensure_template(endpoint, &source, &quiet).await.unwrap();
    let pool = pool_of(endpoint, &template, size).await;
    assert!(pool.wait_ready(size, Duration::from_secs(60)).await);
    (server, template, pool)
}

#[tokio::test]
async fn a_pooled_clone_dropped_behind_the_pools_back_is_never_handed_out() {
    let (cache, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (server, _, pool) = full_pool_of_table_t(cache.path(), dir.path(), 2).await;
    let endpoint = server.endpoint();
    let ghost = pool.ready_names()[0].clone();
    endpoint
        .admin()
        .await
        .unwrap()
        .batch_execute(&format!("drop database \"{ghost}\""))
        .await
        .unwrap();

    let taken = pool.acquire().await.unwrap();
    assert_ne!(taken, ghost, "a dropped clone is never handed out");
    assert_eq!(count(endpoint, &taken, "select count(*) from t").await, 0);
    let notes = pool.take_vanished_notes();
    assert!(notes.iter().any(|n| n.contains(&ghost)), "{notes:?}");
    assert!(!pool.databases().contains(&ghost));
    pool.shutdown(false).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn gc_leaves_a_template_alone_while_its_builder_holds_the_build_lock() {
    let cache = tempfile::tempdir().unwrap();
    let server = private_server(cache.path()).await;
    let endpoint = server.endpoint();
    let admin = endpoint.admin().await.unwrap();
    let name = "dbsandbox_t_p_0123456789abcdef";
    admin
        .batch_execute(&format!("create database {name}"))
        .await
        .unwrap();
    let marker = dbsandbox_pool::Marker::new(DbKind::Template, DbState::Building, "p", "f", "");
    admin
        .batch_execute(&marker.comment_sql(name))
        .await
        .unwrap();
    let builder = endpoint.admin().await.unwrap();
    builder
        .execute(
            "select pg_advisory_lock($1, hashtext($2))",
            &[&0x6462_7362_i32, &name],
        )
        .await
        .unwrap();
    let none = || async { Ok(std::collections::BTreeSet::new()) };
    let report = gc(&admin, true, none()).await.unwrap();
    assert_eq!(report.kept_for_daemons, [name], "{report:?}");
    drop(builder); // the builder died: its lock is gone
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let report = gc(&admin, true, none()).await.unwrap();
        if report.dropped == [name] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{report:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap();
}

/// CI caught a clone without the migrations (`relation "items" does not exist`) after a
/// clean-up script dropped the template: the daemon rebuilds it under the same name, and the
/// refill cloned it between its CREATE DATABASE and its migrations. While the template is
/// missing the refill now waits for the daemon to say it is back.
#[tokio::test]
async fn a_template_being_rebuilt_is_not_cloned_before_it_is_restored() {
    let (cache, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (server, template, pool) = full_pool_of_table_t(cache.path(), dir.path(), 1).await;
    let endpoint = server.endpoint();
    let admin = endpoint.admin().await.unwrap();
    admin
        .batch_execute(&format!("drop database \"{}\"", template.name))
        .await
        .unwrap();
    let first = pool.acquire().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !pool.template_missing() {
        assert!(
            std::time::Instant::now() < deadline,
            "the refill never missed the template"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The rebuild has created the database, its migrations are still to come.
    admin
        .batch_execute(&format!("create database \"{}\"", template.name))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pool.ready_names().is_empty(),
        "cloned a half-built template: {:?}",
        pool.ready_names()
    );

    let client = endpoint.connect(&template.name).await.unwrap();
    client
        .batch_execute("create table t(id int)")
        .await
        .unwrap();
    drop(client);
    pool.template_restored();
    let taken = pool.acquire().await.unwrap();
    assert_eq!(count(endpoint, &taken, "select count(*) from t").await, 0);
    pool.release(&first);
    pool.release(&taken);
    pool.shutdown(false).await.unwrap();
    server.stop().await.unwrap();
}
