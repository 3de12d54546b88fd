//! Rollback sandboxes under faults (issue 11): clients that fail, leave, terminate or abuse the
//! protocol must never leave a key waiting on a reply that cannot come, nor break it for the
//! other connections; a key that does break says so, with the reason, until it is reset. Each
//! test reproduces one reported bug against a real PostgreSQL, with psycopg (through Python),
//! tokio-postgres or raw protocol messages.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dbsandbox_proxy::{Isolation, ProxyConfig};
use postgres_protocol::message::frontend;
use support::{MapRouter, PgServer, RawConnection, Reply, TestProxy, SANDBOX_BACKEND_OF_K};

/// Long enough that a test waiting on it fails instead of passing by luck, short enough that a
/// hang is reported in reasonable time.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

async fn admin_of(server: &PgServer, database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname={database}",
            server.socket_dir.display(),
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
}

async fn rollback_proxy(server: &PgServer, config: ProxyConfig) -> (TestProxy, Arc<MapRouter>) {
    server.create_database("sandboxdb").await;
    admin_of(server, "sandboxdb")
        .await
        .batch_execute("create table items(id serial primary key, name text unique not null)")
        .await
        .unwrap();
    let router = MapRouter::with([("k", server.unix_target("sandboxdb"))]);
    let config = ProxyConfig {
        default_isolation: Isolation::Rollback,
        ..config
    };
    (TestProxy::start(config, router.clone()).await, router)
}

async fn default_proxy(server: &PgServer) -> TestProxy {
    rollback_proxy(server, ProxyConfig::default()).await.0
}

/// A query that must be answered: a hang fails the test.
async fn answered(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<i64, tokio_postgres::Error> {
    let row = tokio::time::timeout(ANSWER_WITHIN, client.query_one(sql, &[]))
        .await
        .unwrap_or_else(|_| panic!("no answer to {sql:?} within {ANSWER_WITHIN:?}"))?;
    Ok(row.get(0))
}

async fn count_items(client: &tokio_postgres::Client) -> i64 {
    answered(client, "select count(*) from items")
        .await
        .unwrap()
}

/// The pid of the key's shared backend, and whether it is running `query_like` now.
async fn sandbox_backend(admin: &tokio_postgres::Client) -> Option<(i32, String, String)> {
    admin
        .query_opt(
            &format!("select pid, state, query from pg_stat_activity where {SANDBOX_BACKEND_OF_K}"),
            &[],
        )
        .await
        .unwrap()
        .map(|r| {
            (
                r.get(0),
                r.get::<_, Option<String>>(1).unwrap_or_default(),
                r.get(2),
            )
        })
}

/// Polls until `done` holds (a condition, not a timing: the deadline only bounds a failure).
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + ANSWER_WITHIN;
    while !done().await {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Terminates the key's backend from outside and waits until it is gone.
async fn kill_sandbox_backend(admin: &tokio_postgres::Client) {
    let (pid, _, _) = sandbox_backend(admin).await.expect("the key has a backend");
    admin
        .execute("select pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    wait_for("the sandbox backend to exit", || async {
        sandbox_backend(admin).await.is_none()
    })
    .await;
}

fn python(script: &str, url: &str) -> std::process::Output {
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with psycopg 3");
    let deadline = Instant::now() + ANSWER_WITHIN;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the psycopg script hung: stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A driver error as a user reads it: the server's message when there is one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn url(proxy: &TestProxy) -> String {
    format!("postgresql://tester@127.0.0.1:{}/k", proxy.addr.port())
}

async fn raw_session(proxy: &TestProxy) -> RawConnection {
    let mut raw = RawConnection::open(proxy.addr).await;
    raw.send_startup("k").await;
    raw.until_ready().await;
    raw
}

fn query(sql: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    frontend::query(sql, &mut buf).unwrap();
    buf
}

/// Bug 1: a failed `execute(..., prepare=True)`, then DISCARD ALL, froze the key for good.
#[tokio::test]
async fn a_failed_prepared_query_then_discard_all_leaves_the_key_answering() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let output = tokio::task::spawn_blocking({
        let url = url(&proxy);
        move || {
            python(
                r#"
import sys, psycopg
url = sys.argv[1]
conn = psycopg.connect(url, autocommit=True)
for bad in ("select * from no_such_table", "selec 1"):
    try:
        conn.execute(bad, prepare=True)
        raise SystemExit("the bad query succeeded")
    except psycopg.errors.Error as e:
        print(type(e).__name__)
conn.execute("DISCARD ALL")
print(conn.execute("select 1").fetchone()[0])
other = psycopg.connect(url, autocommit=True)
print(other.execute("select 2").fetchone()[0])
conn.close()
print(other.execute("select 3").fetchone()[0])
"#,
                &url,
            )
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "UndefinedTable\nSyntaxError\n1\n2\n3\n");
    // The key still answers a new client, and an API-style reset works.
    let client = proxy.connect("k").await.unwrap();
    assert_eq!(answered(&client, "select 4::int8").await.unwrap(), 4);
    assert!(
        tokio::time::timeout(ANSWER_WITHIN, proxy.sandboxes.reset("k"))
            .await
            .expect("reset answers")
            .unwrap()
    );
}

/// Bug 2: a batch ending `Sync, Flush` (psycopg's executemany) kept the key's turn.
#[tokio::test]
async fn a_sync_followed_by_flush_does_not_keep_the_keys_turn() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let other = proxy.connect("k").await.unwrap();
    let mut raw = raw_session(&proxy).await;
    let mut batch = BytesMut::new();
    frontend::parse("", "insert into items(name) values ('one')", [], &mut batch).unwrap();
    // Bind of the unnamed portal to the unnamed statement: no formats, values or result formats.
    batch.extend_from_slice(&[b'B', 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]);
    frontend::execute("", 0, &mut batch).unwrap();
    frontend::sync(&mut batch);
    frontend::flush(&mut batch);
    raw.send(&batch).await;
    assert_eq!(
        raw.until_ready().await,
        [b'1', b'2', b'C', b'Z'],
        "parse, bind, command complete, ready"
    );
    assert_eq!(
        count_items(&other).await,
        1,
        "the other connection is served"
    );
    // And with psycopg's own executemany.
    let output = tokio::task::spawn_blocking({
        let url = url(&proxy);
        move || {
            python(
                r#"
import sys, psycopg
url = sys.argv[1]
first = psycopg.connect(url, autocommit=True)
second = psycopg.connect(url, autocommit=True)
first.cursor().executemany("insert into items(name) values (%s)", [("a",), ("b",)])
print(second.execute("select count(*) from items").fetchone()[0])
"#,
                &url,
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "3\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Bug 3 and its risk: `idle_in_transaction_session_timeout`, from a client or server-wide,
/// killed the shared backend (always idle in a transaction between statements).
#[tokio::test]
async fn idle_in_transaction_timeouts_do_not_kill_the_shared_backend() {
    let server = PgServer::start().await;
    server.create_database("sandboxdb").await;
    let admin = admin_of(&server, "sandboxdb").await;
    admin
        .batch_execute(
            "create table items(id serial primary key, name text unique not null); \
             alter database sandboxdb set idle_in_transaction_session_timeout = '200ms'",
        )
        .await
        .unwrap();
    let router = MapRouter::with([("k", server.unix_target("sandboxdb"))]);
    let config = ProxyConfig {
        default_isolation: Isolation::Rollback,
        ..ProxyConfig::default()
    };
    let proxy = TestProxy::start(config, router).await;
    let mut with_option = proxy.config("k");
    with_option.options("-c idle_in_transaction_session_timeout=300");
    let one = support::connect_with(&with_option).await.unwrap();
    let two = proxy.connect("k").await.unwrap();
    one.batch_execute("insert into items(name) values ('kept')")
        .await
        .unwrap();
    two.batch_execute("SET idle_in_transaction_session_timeout = '100ms'")
        .await
        .unwrap();
    let shown: String = two
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "100ms", "the client sees its own value");
    let shown: String = one
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "300ms");
    // Longer than every timeout above: the backend must still be there.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count_items(&one).await, 1);
    assert_eq!(count_items(&two).await, 1);
    two.batch_execute("RESET ALL").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(count_items(&two).await, 1);
}

/// Bug 4: a named Parse that failed was remembered; the DEALLOCATE at disconnect failed and
/// broke the key.
#[tokio::test]
async fn a_failed_named_parse_does_not_break_the_key_at_disconnect() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let stays = proxy.connect("k").await.unwrap();
    stays
        .batch_execute("insert into items(name) values ('kept')")
        .await
        .unwrap();
    let leaves = proxy.connect("k").await.unwrap();
    assert!(leaves.prepare("select * from no_such_table").await.is_err());
    leaves
        .batch_execute("PREPARE never AS selec 1")
        .await
        .unwrap_err();
    drop(leaves);
    support::wait_until_open_connections(&proxy, 1).await;
    assert_eq!(
        count_items(&stays).await,
        1,
        "the key works and kept its row"
    );
    assert!(proxy.connect("k").await.is_ok());
}

/// Bug 5: a client that left during COPY FROM STDIN made the proxy send SQL into the COPY.
#[tokio::test]
async fn a_client_gone_during_copy_in_leaves_the_key_working() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let stays = proxy.connect("k").await.unwrap();
    stays
        .batch_execute("insert into items(name) values ('kept')")
        .await
        .unwrap();
    let mut raw = raw_session(&proxy).await;
    raw.send(&query("COPY items(name) FROM STDIN")).await;
    assert_eq!(raw.recv().await, Some(Reply::Other(b'G')));
    let mut data = BytesMut::new();
    frontend::CopyData::new(&b"half\n"[..])
        .unwrap()
        .write(&mut data);
    raw.send(&data).await;
    drop(raw);
    assert_eq!(
        count_items(&stays).await,
        1,
        "the half-done COPY left nothing"
    );
    stays
        .batch_execute("insert into items(name) values ('after')")
        .await
        .unwrap();
    assert_eq!(count_items(&stays).await, 2);
}

/// Bug 6: a broken key was silently replaced by an empty sandbox; it must say so until reset.
/// (A key that keeps its state when its connections close, as API leases do; one that resets on
/// close is reset by the next connection once all of its connections have closed, see below.)
#[tokio::test]
async fn a_broken_key_says_so_until_it_is_reset_and_keeps_its_counters() {
    let server = PgServer::start().await;
    let config = ProxyConfig {
        reset_on_close: false,
        ..ProxyConfig::default()
    };
    let (proxy, _) = rollback_proxy(&server, config).await;
    let admin = admin_of(&server, "sandboxdb").await;
    let client = proxy.connect("k").await.unwrap();
    client
        .batch_execute("insert into items(name) values ('written')")
        .await
        .unwrap();
    let statements = proxy.sandboxes.stats_of("k").unwrap().statements;
    kill_sandbox_backend(&admin).await;
    for _ in 0..2 {
        let error = match proxy.connect("k").await {
            Err(e) => describe(&e),
            Ok(fresh) => match answered(&fresh, "select count(*) from items").await {
                Err(e) => describe(&e),
                Ok(n) => panic!("a broken key quietly answered (count {n})"),
            },
        };
        assert!(
            error.contains("key k is broken") && error.contains("dbsandbox reset k"),
            "{error}"
        );
        assert!(
            error.contains("administrator command"),
            "names the reason: {error}"
        );
    }
    // The daemon's status and API show it too (`stats.broken`).
    let broken = proxy.sandboxes.stats_of("k").unwrap().broken;
    assert!(
        broken
            .as_deref()
            .is_some_and(|reason| reason.contains("administrator command")),
        "{broken:?}"
    );
    assert!(proxy.sandboxes.reset("k").await.unwrap());
    let fresh = proxy.connect("k").await.unwrap();
    assert_eq!(
        count_items(&fresh).await,
        0,
        "a reset key is in the template's state"
    );
    let stats = proxy.sandboxes.stats_of("k").unwrap();
    assert!(stats.statements > statements, "counters go on: {stats:?}");
    assert!(stats.resets >= 1);
    assert_eq!(stats.broken, None, "a reset key is no longer broken");
}

/// Bug 7: a client that left while its query ran left it running; the key waited for it.
#[tokio::test]
async fn a_client_gone_mid_query_gets_its_query_cancelled() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let admin = admin_of(&server, "sandboxdb").await;
    let stays = proxy.connect("k").await.unwrap();
    let mut raw = raw_session(&proxy).await;
    raw.send(&query("select pg_sleep(600)")).await;
    wait_for("the sleep to run", || async {
        sandbox_backend(&admin)
            .await
            .is_some_and(|(_, state, query)| state == "active" && query.contains("pg_sleep"))
    })
    .await;
    drop(raw);
    assert_eq!(
        count_items(&stays).await,
        0,
        "answered long before the sleep ends"
    );
}

/// Bug 8: a client that terminates the shared backend (here through `pg_stat_activity`, a form
/// the proxy does not take for the client's own termination) gets 57P01, as in PostgreSQL, and
/// the key's other connections are told at once: the key's state is lost.
#[tokio::test]
async fn terminating_the_sandbox_session_ends_it_and_tells_the_other_connections() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let mut idle = raw_session(&proxy).await;
    let mut terminating = raw_session(&proxy).await;
    terminating
        .send(&query(
            "select pg_terminate_backend(pid) from pg_stat_activity where pid = pg_backend_pid()",
        ))
        .await;
    let fatal = loop {
        match terminating.recv().await {
            Some(Reply::Other(_)) => continue,
            other => break other,
        }
    };
    let Some(Reply::Error(severity, code, _)) = fatal else {
        panic!("expected FATAL 57P01, got {fatal:?}");
    };
    assert_eq!((severity.as_str(), code.as_str()), ("FATAL", "57P01"));
    assert_eq!(terminating.recv().await, None, "the connection is closed");
    let (code, message) = idle.expect_fatal().await;
    assert_eq!(code, "57P01", "{message}");
    assert!(message.contains("key k"), "{message}");
}

/// Bug 10: after the backend died with a connection of the key open, the first fresh
/// connection failed with a broken pipe.
#[tokio::test]
async fn the_first_connection_after_a_backend_death_gets_a_clear_answer() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let admin = admin_of(&server, "sandboxdb").await;
    let _open = proxy.connect("k").await.unwrap();
    kill_sandbox_backend(&admin).await;
    let outcome = match proxy.connect("k").await {
        Err(e) => Err(describe(&e)),
        Ok(fresh) => answered(&fresh, "select 1::int8")
            .await
            .map_err(|e| describe(&e)),
    };
    if let Err(message) = outcome {
        assert!(
            message.contains("key k is broken") && !message.contains("Broken pipe"),
            "{message}"
        );
    }
}

/// Risk: a client that never sends Sync made the proxy buffer everything it sent.
#[tokio::test]
async fn a_client_that_never_syncs_is_stopped_at_the_pending_bound() {
    let server = PgServer::start().await;
    let config = ProxyConfig {
        max_pending_bytes: 1 << 20,
        ..ProxyConfig::default()
    };
    let (proxy, _) = rollback_proxy(&server, config).await;
    let stays = proxy.connect("k").await.unwrap();
    let mut raw = raw_session(&proxy).await;
    let mut chunk = BytesMut::new();
    for _ in 0..1000 {
        frontend::parse("", "select 1", [], &mut chunk).unwrap();
    }
    // 1.5 MiB of Parse messages, none of which ends a unit of work.
    for _ in 0..(3 << 19) / chunk.len() + 1 {
        if tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &chunk)
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, message) = raw.expect_fatal().await;
    assert_eq!(code, "54000", "{message}");
    assert!(message.contains("Sync"), "{message}");
    assert_eq!(count_items(&stays).await, 0, "the key goes on");
}

/// The class of bug 1: one of the proxy's own statements fails (here the re-applied `SET ROLE`
/// of a connection whose role was dropped meanwhile). That connection is told why, in place of
/// its statement; the key's other connections go on.
#[tokio::test]
async fn a_failing_internal_statement_answers_its_client_and_the_key_goes_on() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let admin = admin_of(&server, "sandboxdb").await;
    admin
        .batch_execute("create role dbsb_doomed_role")
        .await
        .unwrap();
    let doomed = proxy.connect("k").await.unwrap();
    let other = proxy.connect("k").await.unwrap();
    doomed
        .batch_execute("SET ROLE dbsb_doomed_role")
        .await
        .unwrap();
    // The backend switches to the other connection (its role reset), then the role goes.
    assert_eq!(count_items(&other).await, 0);
    admin
        .batch_execute("drop role dbsb_doomed_role")
        .await
        .unwrap();
    // A statement that takes a lock makes the shared backend see the drop.
    assert_eq!(count_items(&other).await, 0);
    for _ in 0..2 {
        let error = answered(&doomed, "select 1::int8").await.unwrap_err();
        let message = describe(&error);
        assert!(
            message.contains("bookkeeping") && message.contains("dbsb_doomed_role"),
            "{message}"
        );
        assert_eq!(
            count_items(&other).await,
            0,
            "the other connection is served"
        );
    }
    other
        .batch_execute("insert into items(name) values ('fine')")
        .await
        .unwrap();
    assert_eq!(count_items(&other).await, 1);
}

/// A broken key whose connections have all closed is reset by the next connection when the key
/// resets on close (`dbsandbox run`'s default), as its last close would have reset a healthy
/// key: psycopg's own suite terminates its session in one test (`test_broken`), and every later
/// test was refused. A key that keeps its state on close stays broken until it is reset.
#[tokio::test]
async fn a_broken_key_whose_connections_all_closed_resets_on_close_like_any_key() {
    for reset_on_close in [true, false] {
        let server = PgServer::start().await;
        let config = ProxyConfig {
            reset_on_close,
            ..ProxyConfig::default()
        };
        let (proxy, _) = rollback_proxy(&server, config).await;
        let mut terminating = raw_session(&proxy).await;
        terminating
            .send(&query("select pg_terminate_backend(pid) from pg_stat_activity where pid = pg_backend_pid()"))
            .await;
        while terminating.recv().await.is_some() {}
        support::wait_until_no_open_connections(&proxy).await;
        let next = proxy.connect("k").await;
        if reset_on_close {
            let client = next.expect("a fresh sandbox for the next connection");
            assert_eq!(
                answered(&client, "select count(*) from items")
                    .await
                    .unwrap(),
                0
            );
        } else {
            let message = describe(&next.expect_err("the key stays broken"));
            assert!(message.contains("key k is broken"), "{message}");
        }
    }
}

/// When the session of `application_name` began the statement with which it waits for a lock.
async fn lock_wait_started(
    admin: &tokio_postgres::Client,
    application_name: &str,
) -> Option<String> {
    admin
        .query_opt(
            "select query_start::text from pg_stat_activity \
             where application_name = $1 and wait_event_type = 'Lock'",
            &[&application_name],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn until_lock_wait(admin: &tokio_postgres::Client, application_name: &str) -> String {
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        if let Some(started) = lock_wait_started(admin, application_name).await {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "{application_name} never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SANDBOX: &str = "dbsandbox sandbox k";

/// A client of key k whose `SELECT dbsandbox_reset()` is held up inside the proxy's own reset
/// SQL, restoring the table's sequence: a locker transaction queues for the sequence behind the
/// sandbox's transaction (which used it), gets it when the reset rolls back, and keeps it until
/// the returned locker rolls back. Returns the client, the locker, the running reset and when
/// the reset's wait began.
async fn a_reset_held_up_by_a_lock(
    server: &PgServer,
    proxy: &TestProxy,
    admin: &tokio_postgres::Client,
) -> (
    Arc<tokio_postgres::Client>,
    tokio_postgres::Client,
    tokio::task::JoinHandle<Result<Vec<tokio_postgres::SimpleQueryMessage>, tokio_postgres::Error>>,
    String,
) {
    let client = Arc::new(proxy.connect("k").await.unwrap());
    client
        .batch_execute("insert into items(name) values ('written')")
        .await
        .unwrap();
    let (locker, connection) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname=sandboxdb application_name=locker",
            server.socket_dir.display(),
            server.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let locking = tokio::spawn(async move {
        locker
            .batch_execute("BEGIN; ALTER SEQUENCE items_id_seq INCREMENT BY 1")
            .await
            .unwrap();
        locker
    });
    until_lock_wait(admin, "locker").await;
    let resetting = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.simple_query("SELECT dbsandbox_reset()").await })
    };
    let started = until_lock_wait(admin, SANDBOX).await;
    let locker = locking.await.unwrap();
    (client, locker, resetting, started)
}

/// A client's CancelRequest reaches its own statement only: while the proxy runs its own SQL in
/// the client's turn (here the reset of `SELECT dbsandbox_reset()`), the cancel used to be
/// forwarded at once and broke the key ("resetting the sandbox failed: canceling statement due
/// to user request (57014)", fuzzer seed 46813912; a cancel landing on the savepoint work in
/// front of a batch made the server skip it, "savepoint dbsb_c… does not exist" later, seed 777).
#[tokio::test]
async fn a_clients_cancel_never_lands_on_the_proxys_own_sql() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let admin = admin_of(&server, "sandboxdb").await;
    let (client, locker, resetting, _) = a_reset_held_up_by_a_lock(&server, &proxy, &admin).await;
    client
        .cancel_token()
        .cancel_query(tokio_postgres::NoTls)
        .await
        .unwrap();
    wait_for("the proxy to take the cancel", || async {
        proxy.stats.snapshot().cancels_forwarded == 1
    })
    .await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    let reset = tokio::time::timeout(ANSWER_WITHIN, resetting)
        .await
        .expect("the reset answers")
        .unwrap();
    if let Err(e) = reset {
        panic!("the reset failed: {}", describe(&e));
    }
    assert_eq!(
        count_items(&client).await,
        0,
        "the key was reset and answers"
    );
}

/// A cancel the proxy did not send (`pg_cancel_backend` of the shared backend, which any
/// connection of the key can run) that lands on the proxy's own SQL: that SQL runs again
/// instead of the key breaking.
#[tokio::test]
async fn the_proxys_own_sql_hit_by_a_foreign_cancel_runs_again() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let admin = admin_of(&server, "sandboxdb").await;
    let (client, locker, resetting, first_wait) =
        a_reset_held_up_by_a_lock(&server, &proxy, &admin).await;
    admin
        .execute(
            "select pg_cancel_backend(pid) from pg_stat_activity \
             where application_name = 'dbsandbox sandbox k'",
            &[],
        )
        .await
        .unwrap();
    // Cancelled: either waiting again (run again) or done (failed).
    wait_for("the cancel to be taken", || async {
        resetting.is_finished()
            || lock_wait_started(&admin, SANDBOX)
                .await
                .is_some_and(|started| started != first_wait)
    })
    .await;
    locker.batch_execute("ROLLBACK").await.unwrap();
    let reset = tokio::time::timeout(ANSWER_WITHIN, resetting)
        .await
        .expect("the reset answers")
        .unwrap();
    if let Err(e) = reset {
        panic!("the reset failed: {}", describe(&e));
    }
    assert_eq!(
        count_items(&client).await,
        0,
        "the key was reset and answers"
    );
}

/// Another connection's `statement_timeout` never applies to the proxy's own SQL: the backend
/// kept the last client's value between batches, so the savepoint work and guard of the next
/// connection's batch (sent before that connection's own settings) ran under it, and a slow one
/// failed with 57014 ("could not run its own bookkeeping statement … statement timeout", the
/// 10⁶-message fuzz run, seed 20261202). The proxy's own SQL between batches sees the server's
/// value; the client keeps its own for its own statements.
#[tokio::test]
async fn another_connections_statement_timeout_never_applies_to_the_proxys_own_sql() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let impatient = proxy.connect("k").await.unwrap();
    impatient
        .batch_execute("SET statement_timeout = '100ms'; SELECT 1")
        .await
        .unwrap();
    let between_batches = proxy
        .sandboxes
        .query("k", "SHOW statement_timeout")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(between_batches, [[Some("0".to_string())]]);
    // The impatient connection keeps its own timeout for its own statements.
    let row = impatient
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "100ms");
    let slow = impatient
        .batch_execute("SELECT pg_sleep(1)")
        .await
        .unwrap_err();
    assert_eq!(support::sqlstate(&slow), "57014", "{}", describe(&slow));
    let patient = proxy.connect("k").await.unwrap();
    patient.batch_execute("SELECT pg_sleep(0.3)").await.unwrap();
}

/// `SELECT pg_terminate_backend(pg_backend_pid())` (or of the pid the client was given): as in
/// PostgreSQL, only the terminating connection ends (57P01); the key and its state stay.
#[tokio::test]
async fn terminating_the_own_backend_ends_only_that_connection() {
    let server = PgServer::start().await;
    let proxy = default_proxy(&server).await;
    let stays = proxy.connect("k").await.unwrap();
    stays
        .batch_execute("insert into items(name) values ('kept')")
        .await
        .unwrap();
    let mut terminating = raw_session(&proxy).await;
    terminating
        .send(&query("select pg_terminate_backend(pg_backend_pid())"))
        .await;
    let (code, message) = terminating.expect_fatal().await;
    assert_eq!(code, "57P01", "{message}");
    assert_eq!(count_items(&stays).await, 1, "the key and its state stay");
}
