//! Rollback sandboxes at the proxy level, against a real PostgreSQL: the rule for interleaved
//! transactions of two connections of one key, cancel limited to the client whose query runs,
//! reset restoring sequences, and memory that stays flat over 100,000 statements.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbsandbox_proxy::{Isolation, ProxyConfig};
use support::{sqlstate, MapRouter, PgServer, TestProxy, SANDBOX_BACKEND_OF_K};

async fn sandbox_proxy(server: &PgServer, key: &'static str) -> (TestProxy, Arc<MapRouter>) {
    server.create_database("sandboxdb").await;
    let admin = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname=sandboxdb",
            server.socket_dir.display(),
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(admin.1);
    admin
        .0
        .batch_execute("create table items(id serial primary key, name text unique not null)")
        .await
        .unwrap();
    let router = MapRouter::with([(key, server.unix_target("sandboxdb"))]);
    let config = ProxyConfig {
        default_isolation: Isolation::Rollback,
        ..ProxyConfig::default()
    };
    (TestProxy::start(config, router.clone()).await, router)
}

async fn names(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("select name from items order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn interleaved_transactions_follow_the_documented_rule() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let one = proxy.connect("k").await.unwrap();
    let two = proxy.connect("k").await.unwrap();
    let observer = proxy.connect("k").await.unwrap();

    // Crossed transactions: one commits first while two's savepoint is above its own.
    one.batch_execute("BEGIN; insert into items(name) values ('a')")
        .await
        .unwrap();
    two.batch_execute("BEGIN; insert into items(name) values ('b')")
        .await
        .unwrap();
    one.batch_execute("COMMIT").await.unwrap();
    two.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        names(&observer).await,
        ["a"],
        "one's commit survives two's rollback"
    );

    // A transaction that has run nothing yet has no savepoint: its ROLLBACK undoes nothing of
    // anyone else's.
    one.batch_execute("BEGIN").await.unwrap();
    two.batch_execute("insert into items(name) values ('early')")
        .await
        .unwrap();
    one.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(names(&observer).await, ["a", "early"]);
    observer
        .batch_execute("delete from items where name = 'early'")
        .await
        .unwrap();

    // A rollback undoes what another connection wrote since that transaction's first statement;
    // the other connection's own transaction goes on and can still commit.
    one.batch_execute("BEGIN; select 1").await.unwrap();
    two.batch_execute("BEGIN; insert into items(name) values ('lost')")
        .await
        .unwrap();
    one.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(names(&observer).await, ["a"]);
    two.batch_execute("insert into items(name) values ('kept'); COMMIT")
        .await
        .unwrap();
    assert_eq!(names(&observer).await, ["a", "kept"]);

    // No deadlock: autocommit statements of another connection run while a transaction is open,
    // and become part of it (rolled back with it).
    one.batch_execute("BEGIN; insert into items(name) values ('tx')")
        .await
        .unwrap();
    two.batch_execute("insert into items(name) values ('autocommit')")
        .await
        .unwrap();
    assert_eq!(names(&two).await, ["a", "kept", "tx", "autocommit"]);
    one.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(names(&observer).await, ["a", "kept"]);

    // A failed transaction answers 25P02 and the other connections are unaffected.
    one.batch_execute("BEGIN").await.unwrap();
    let err = one
        .batch_execute("insert into items(name) values ('a')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "23505");
    let err = one.batch_execute("select 1").await.unwrap_err();
    assert_eq!(sqlstate(&err), "25P02");
    assert_eq!(names(&two).await, ["a", "kept"]);
    one.batch_execute("ROLLBACK").await.unwrap();
    one.batch_execute("select 1").await.unwrap();
}

#[tokio::test]
async fn reset_restores_sequences_and_a_new_connection_waits_for_it() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let client = proxy.connect("k").await.unwrap();
    client
        .batch_execute("insert into items(name) values ('x'), ('y')")
        .await
        .unwrap();
    let rows = client
        .simple_query("SELECT dbsandbox_reset()")
        .await
        .unwrap();
    assert!(
        matches!(&rows[..], [tokio_postgres::SimpleQueryMessage::RowDescription(_), tokio_postgres::SimpleQueryMessage::Row(r), ..] if r.get(0) == Some("ok"))
    );
    let id: i32 = client
        .query_one("insert into items(name) values ('x') returning id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, 1, "the sequence is back at its start");
    // The last connection closing resets too.
    drop(client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let next = proxy.connect("k").await.unwrap();
    assert_eq!(names(&next).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_cancel_reaches_only_the_query_of_the_client_that_sent_it() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let sleeper = proxy.connect("k").await.unwrap();
    let bystander = proxy.connect("k").await.unwrap();
    let bystander_token = bystander.cancel_token();
    let token = sleeper.cancel_token();
    let sleeping = tokio::spawn(async move { sleeper.batch_execute("select pg_sleep(30)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The idle bystander's cancel must not hit the sleeper's query.
    bystander_token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !sleeping.is_finished(),
        "another client's cancel stopped the query"
    );
    let started = Instant::now();
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let err = sleeping.await.unwrap().unwrap_err();
    assert_eq!(sqlstate(&err), "57014");
    assert!(started.elapsed() < Duration::from_secs(5));
    bystander.batch_execute("select 1").await.unwrap();
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn memory_stays_flat_over_100000_statements() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let client = proxy.connect("k").await.unwrap();
    let statement = client.prepare("select $1::int + 1").await.unwrap();
    let run = |count: usize| {
        let client = &client;
        let statement = &statement;
        async move {
            for i in 0..count {
                match i % 100 {
                    // Transactions, errors and their recovery, and simple queries in the mix.
                    0 => client
                        .batch_execute("BEGIN; insert into items(name) values ('t'); ROLLBACK")
                        .await
                        .unwrap(),
                    1 => assert!(client.batch_execute("select 1/0").await.is_err()),
                    2 => client
                        .batch_execute("SAVEPOINT outside")
                        .await
                        .map(|_| ())
                        .unwrap_or(()),
                    _ => {
                        let row = client.query_one(statement, &[&(i as i32)]).await.unwrap();
                        assert_eq!(row.get::<_, i32>(0), i as i32 + 1);
                    }
                }
            }
        }
    };
    run(10_000).await;
    let before = resident_kib();
    run(90_000).await;
    let after = resident_kib();
    assert!(
        after < before + 8 * 1024,
        "resident memory grew from {before} KiB to {after} KiB over 90,000 statements"
    );
    assert_eq!(names(&client).await, Vec::<String>::new());
}

async fn show(client: &tokio_postgres::Client, setting: &str) -> String {
    client
        .query_one(&format!("SHOW {setting}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn each_connection_keeps_its_own_settings_on_the_shared_backend() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let mut config = proxy.config("k");
    config
        .application_name("first")
        .options("-c statement_timeout=11000");
    let one = support::connect_with(&config).await.unwrap();
    let mut config = proxy.config("k");
    config.application_name("second");
    let two = support::connect_with(&config).await.unwrap();

    one.batch_execute("SET search_path TO pg_catalog, public")
        .await
        .unwrap();
    two.batch_execute("SET TimeZone TO 'Asia/Tokyo'")
        .await
        .unwrap();
    // Alternate, so the backend switches client before every statement.
    for _ in 0..2 {
        assert_eq!(show(&one, "application_name").await, "first");
        assert_eq!(show(&two, "application_name").await, "second");
        assert_eq!(show(&one, "search_path").await, "pg_catalog, public");
        assert_eq!(show(&two, "search_path").await, "\"$user\", public");
        assert_eq!(show(&one, "statement_timeout").await, "11s");
        assert_eq!(show(&two, "statement_timeout").await, "0");
        assert_eq!(show(&two, "TimeZone").await, "Asia/Tokyo");
        assert_ne!(show(&one, "TimeZone").await, "Asia/Tokyo");
    }

    // A SET inside a rolled-back transaction is undone; SET LOCAL ends with its transaction.
    one.batch_execute("BEGIN; SET search_path TO public; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(show(&one, "search_path").await, "pg_catalog, public");
    two.batch_execute("BEGIN; SET LOCAL TimeZone TO 'UTC'")
        .await
        .unwrap();
    assert_eq!(show(&two, "TimeZone").await, "UTC");
    two.batch_execute("COMMIT").await.unwrap();
    assert_eq!(show(&two, "TimeZone").await, "Asia/Tokyo");

    // RESET ALL goes back to the connection's own startup values, not the sandbox's.
    one.batch_execute("RESET ALL").await.unwrap();
    assert_eq!(show(&one, "search_path").await, "\"$user\", public");
    assert_eq!(show(&one, "application_name").await, "first");
    assert_eq!(show(&one, "statement_timeout").await, "11s");
    assert_eq!(show(&two, "TimeZone").await, "Asia/Tokyo");
}

#[tokio::test]
async fn discard_all_and_deallocate_all_touch_only_their_own_connection() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let one = proxy.connect("k").await.unwrap();
    let two = proxy.connect("k").await.unwrap();
    one.batch_execute("PREPARE mine AS select 1; SET search_path TO pg_catalog")
        .await
        .unwrap();
    two.batch_execute("PREPARE mine AS select 2").await.unwrap();
    let protocol = two.prepare("select 3").await.unwrap();

    one.batch_execute("DISCARD ALL").await.unwrap();
    let err = one.batch_execute("EXECUTE mine").await.unwrap_err();
    assert_eq!(sqlstate(&err), "26000", "one's statement is gone");
    assert_eq!(
        show(&one, "search_path").await,
        "\"$user\", public",
        "and its settings"
    );
    // two's statements, SQL-level and protocol-level, are untouched.
    let rows = two.simple_query("EXECUTE mine").await.unwrap();
    assert!(
        matches!(&rows[1], tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("2"))
    );
    assert_eq!(
        two.query_one(&protocol, &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        3
    );

    two.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(
        sqlstate(&two.batch_execute("EXECUTE mine").await.unwrap_err()),
        "26000"
    );
    // DISCARD ALL is refused inside a transaction, as PostgreSQL does.
    one.batch_execute("BEGIN").await.unwrap();
    assert_eq!(
        sqlstate(&one.batch_execute("DISCARD ALL").await.unwrap_err()),
        "25001"
    );
    one.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_failing_query_in_a_pipeline_leaves_its_neighbours_alone() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let client = proxy.connect("k").await.unwrap();
    client
        .batch_execute("insert into items(name) values ('taken')")
        .await
        .unwrap();
    let insert = client
        .prepare("insert into items(name) values ($1) returning id")
        .await
        .unwrap();
    // Three units in flight at once (each Parse/Bind/Execute/Sync); the middle one fails.
    let (first, second, third) = tokio::join!(
        client.query_one(&insert, &[&"first"]),
        client.query_one(&insert, &[&"taken"]),
        client.query_one(&insert, &[&"third"]),
    );
    assert_eq!(first.unwrap().get::<_, i32>(0), 2);
    assert_eq!(sqlstate(&second.unwrap_err()), "23505");
    assert_eq!(
        third.unwrap().get::<_, i32>(0),
        4,
        "the failed insert used up id 3, as in PostgreSQL"
    );
    assert_eq!(names(&client).await, ["taken", "first", "third"]);
}

/// A superuser connection straight to the sandbox's database.
async fn admin_of_sandboxdb(server: &PgServer) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::Config::new()
        .host_path(&server.socket_dir)
        .port(server.port)
        .user("postgres")
        .dbname("sandboxdb")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Polls until `done` holds (a condition, not a timing: the deadline only bounds a failure).
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The reset a key's last close triggers is done before the key's next connection is admitted,
/// even when the proxy has not got round to that close yet: the client saw its socket close,
/// but the session's clean-up waits for the key's turn (held here by a control request, as by
/// a status query or another connection's statement, or simply a busy runtime). The next
/// connection saw the previous one's rows (conformance test t10d, now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_after_the_last_one_closed_is_admitted_after_its_reset() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let proxy = Arc::new(proxy);
    let admin = admin_of_sandboxdb(&server).await;
    for round in 0..3 {
        let (first, connection) = proxy
            .config("k")
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(connection);
        first
            .batch_execute("insert into items(name) values ('left-behind')")
            .await
            .unwrap();
        // The key's turn is held until the admin lets go of an advisory lock.
        admin
            .execute("select pg_advisory_lock(4711)", &[])
            .await
            .unwrap();
        let sandboxes = Arc::clone(&proxy.sandboxes);
        let holder = tokio::spawn(async move {
            sandboxes
                .query(
                    "k",
                    "select pg_advisory_lock(4711)::text, pg_advisory_unlock(4711)::text",
                )
                .await
        });
        loop {
            let waiting: i64 = admin
                .query_one(
                    &format!(
                        "select count(*) from pg_stat_activity where {SANDBOX_BACKEND_OF_K} \
                         and wait_event_type = 'Lock'"
                    ),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(first); // the connection task sends Terminate and closes the socket ...
        tokio::time::timeout(Duration::from_secs(5), connection)
            .await
            .unwrap()
            .unwrap()
            .unwrap(); // ... and ends
        let next = {
            let proxy = Arc::clone(&proxy);
            tokio::spawn(async move { proxy.connect("k").await })
        };
        // Admitted at once (the bug), or waiting for the closed connection's clean-up.
        wait_until("the next connection to be admitted or to wait", || {
            next.is_finished()
                || proxy
                    .sandboxes
                    .stats_of("k")
                    .is_some_and(|s| s.connections_waiting == 1)
        })
        .await;
        admin
            .execute("select pg_advisory_unlock(4711)", &[])
            .await
            .unwrap();
        holder.await.unwrap().unwrap();
        let next = next.await.unwrap().unwrap();
        assert_eq!(
            names(&next).await,
            Vec::<String>::new(),
            "round {round}: the next connection saw the previous one's rows"
        );
        drop(next);
        support::wait_until_no_open_connections(&proxy).await;
    }
}

/// Replies up to ReadyForQuery, as (SQLSTATE of each error, status of the ReadyForQuery).
async fn errors_until_ready(raw: &mut support::RawConnection) -> (Vec<String>, u8) {
    let mut errors = Vec::new();
    loop {
        match raw.recv().await {
            Some(support::Reply::Error(_, code, _)) => errors.push(code),
            Some(support::Reply::ReadyForQuery(status)) => return (errors, status),
            Some(support::Reply::Other(_)) => {}
            None => panic!("the proxy closed the connection"),
        }
    }
}

/// An extended-protocol sequence that fails in the proxy (a Bind in a failed transaction) after
/// a message the proxy had already planned for the server (a Describe, with the key's queued
/// savepoint work in front of it): the planned part was dropped at the Sync, so another
/// connection's savepoints were recorded as made and never made, and that connection's next
/// statements failed ("savepoint dbsb_c… does not exist", the fuzzer's seed 777).
#[tokio::test]
async fn a_sequence_failing_in_the_proxy_still_runs_what_it_planned_for_the_server() {
    use postgres_protocol::message::frontend;
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let other = proxy.connect("k").await.unwrap();
    // Its savepoints are queued, to be made in front of the key's next batch.
    other.batch_execute("BEGIN; SAVEPOINT s").await.unwrap();
    let mut failing = support::RawConnection::open(proxy.addr).await;
    failing.send_startup("k").await;
    failing.until_ready().await;
    let mut query = bytes::BytesMut::new();
    frontend::query("BEGIN; select 1/0", &mut query).unwrap();
    failing.send(&query).await;
    assert_eq!(
        errors_until_ready(&mut failing).await,
        (vec!["22012".into()], b'E')
    );
    let mut sequence = bytes::BytesMut::new();
    frontend::describe(b'S', "", &mut sequence).unwrap();
    // Bind of the unnamed portal and statement, without parameters.
    sequence.extend_from_slice(&[b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    frontend::sync(&mut sequence);
    failing.send(&sequence).await;
    let (errors, status) = errors_until_ready(&mut failing).await;
    assert!(!errors.is_empty() && status == b'E', "{errors:?} {status}");
    other
        .batch_execute("insert into items(name) values ('in s'); ROLLBACK TO SAVEPOINT s")
        .await
        .unwrap();
    other
        .batch_execute("insert into items(name) values ('kept'); COMMIT")
        .await
        .unwrap();
    assert_eq!(names(&other).await, ["kept"]);
}

/// A Bind of the unnamed portal from `statement`, without parameters.
fn bind_unnamed_portal(statement: &str, out: &mut bytes::BytesMut) {
    let len = 4 + 1 + statement.len() + 1 + 6;
    out.extend_from_slice(b"B");
    out.extend_from_slice(&(len as i32).to_be_bytes());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(statement.as_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
}

/// A Parse the server skipped (an error came first in its sequence) was taken for done: the
/// server still held the statement's older `COPY … FROM STDIN` of that name, its Execute started
/// a COPY the proxy had not planned, and the Close pipelined behind it ended the key's shared
/// session ("unexpected message type 0x43 during COPY from stdin", found by the 10⁶-message fuzz
/// run). As in PostgreSQL, the client now gets the COPY it asked for, and the key goes on.
#[tokio::test]
async fn a_parse_the_server_skipped_is_not_taken_for_done() {
    use postgres_protocol::message::frontend;
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let other = proxy.connect("k").await.unwrap();
    let mut client = support::RawConnection::open(proxy.addr).await;
    client.send_startup("k").await;
    client.until_ready().await;
    let mut copy = bytes::BytesMut::new();
    frontend::parse("s", "COPY items(name) FROM STDIN", [], &mut copy).unwrap();
    frontend::sync(&mut copy);
    client.send(&copy).await;
    assert_eq!(errors_until_ready(&mut client).await, (vec![], b'I'));
    let mut skipped = bytes::BytesMut::new();
    bind_unnamed_portal("nosuch", &mut skipped);
    frontend::parse("s", "select 1", [], &mut skipped).unwrap();
    frontend::sync(&mut skipped);
    client.send(&skipped).await;
    let (errors, _) = errors_until_ready(&mut client).await;
    assert_eq!(errors, ["26000"]);
    let mut run = bytes::BytesMut::new();
    bind_unnamed_portal("s", &mut run);
    frontend::execute("", 0, &mut run).unwrap();
    frontend::close(b'S', "gone", &mut run).unwrap();
    frontend::sync(&mut run);
    client.send(&run).await;
    loop {
        match client.recv().await {
            Some(support::Reply::Other(b'G')) => break,
            Some(support::Reply::Other(_)) => {}
            other => panic!("expected the COPY's CopyInResponse, got {other:?}"),
        }
    }
    let mut fail = bytes::BytesMut::new();
    frontend::copy_fail("not today", &mut fail).unwrap();
    // After the COPY, as libpq does: the server ignored the Sync sent during it.
    frontend::sync(&mut fail);
    client.send(&fail).await;
    let (errors, status) = errors_until_ready(&mut client).await;
    assert_eq!((errors, status), (vec!["57014".to_string()], b'I'));
    other
        .batch_execute("insert into items(name) values ('still here')")
        .await
        .expect("the key's shared session survives");
    assert_eq!(names(&other).await, ["still here"]);
}

/// A cancel reaches a statement run through the extended protocol too: the proxy sends it while
/// it awaits the replies of the client's Bind and Execute (after those of its own savepoint
/// work, which it has the server answer at once).
#[tokio::test]
async fn a_cancel_reaches_an_extended_protocol_statement() {
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let admin = admin_of_sandboxdb(&server).await;
    let client = Arc::new(proxy.connect("k").await.unwrap());
    let sleeping = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.query("select pg_sleep(60)", &[]).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sleeping_now: i64 = admin
            .query_one(
                &format!(
                    "select count(*) from pg_stat_activity where {SANDBOX_BACKEND_OF_K} \
                     and query = 'select pg_sleep(60)' and state = 'active'"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if sleeping_now == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the sleep never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(30), sleeping)
        .await
        .expect("cancelled long before the sleep ends")
        .unwrap()
        .unwrap_err();
    assert_eq!(sqlstate(&err), "57014");
    assert_eq!(names(&client).await, Vec::<String>::new());
}

/// Execute of a portal the proxy had forgotten (DISCARD ALL, emulated per client, forgets the
/// client's portals while the server still holds its unnamed one, here a `COPY … FROM STDIN`)
/// was planned as an ordinary statement: the Parse pipelined behind it reached the server in
/// COPY and ended the key's shared session ("unexpected message type 0x50 during COPY from
/// stdin", found by the 10⁶-message fuzz run). The client's unnamed portal now has a private
/// name on the server, so the Execute of the forgotten one finds no portal (34000) and never
/// starts that COPY; the key's shared session survives either way.
#[tokio::test]
async fn an_execute_of_a_forgotten_portal_never_reaches_the_servers_copy() {
    use postgres_protocol::message::frontend;
    let server = PgServer::start().await;
    let (proxy, _) = sandbox_proxy(&server, "k").await;
    let other = proxy.connect("k").await.unwrap();
    let mut client = support::RawConnection::open(proxy.addr).await;
    client.send_startup("k").await;
    client.until_ready().await;
    let mut units = bytes::BytesMut::new();
    frontend::parse("", "COPY items(name) FROM STDIN", [], &mut units).unwrap();
    bind_unnamed_portal("", &mut units);
    frontend::flush(&mut units);
    frontend::parse("", "DISCARD ALL", [], &mut units).unwrap();
    bind_unnamed_portal("", &mut units);
    frontend::execute("", 0, &mut units).unwrap();
    frontend::flush(&mut units);
    frontend::execute("", 0, &mut units).unwrap();
    frontend::parse("next", "select 1", [], &mut units).unwrap();
    frontend::sync(&mut units);
    client.send(&units).await;
    let (errors, status) = errors_until_ready(&mut client).await;
    assert_eq!((errors, status), (vec!["34000".to_string()], b'I'));
    other
        .batch_execute("insert into items(name) values ('still here')")
        .await
        .expect("the key's shared session survives");
    assert_eq!(names(&other).await, ["still here"]);
}
