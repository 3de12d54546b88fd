//! Statement and portal names, and text, as the client sees them through a rollback key: each
//! sequence runs once through a pass-through key (what PostgreSQL itself answers) and once
//! through a rollback key of the same database, and the replies must be the same. The rollback
//! engine renames protocol names to `dbsb_c<conn>_…` on the shared backend; none of that may show
//! (psycopg's own suite: server-side cursors, `pg_prepared_statements`, encodings). Startup
//! settings too: the greeting's values, and the refusal of a bad one.

mod support;

use bytes::{Buf, BufMut, BytesMut};
use dbsandbox_proxy::{Isolation, ProxyConfig};
use postgres_protocol::message::frontend;
use std::time::Duration;
use support::{MapRouter, PgServer, RawConnection, TestProxy};
use tokio::io::AsyncReadExt;

/// A raw protocol connection that reads whole messages.
struct Wire {
    raw: RawConnection,
    buf: BytesMut,
}

impl Wire {
    /// Connects to `key` with extra startup parameters; returns the greeting's ParameterStatus
    /// pairs too.
    async fn open(proxy: &TestProxy, key: &str, extra: &[(&str, &str)]) -> (Wire, Vec<String>) {
        let (wire, greeting) = Wire::start(proxy, key, extra).await;
        let mut statuses = Vec::new();
        for (tag, text) in greeting {
            match tag {
                b'S' => statuses.push(text),
                b'E' => panic!("startup failed: {text}"),
                _ => {}
            }
        }
        (wire, statuses)
    }

    /// Sends the startup packet; returns every message up to ReadyForQuery or the first error.
    async fn start(
        proxy: &TestProxy,
        key: &str,
        extra: &[(&str, &str)],
    ) -> (Wire, Vec<(u8, String)>) {
        let mut wire = Wire {
            raw: RawConnection::open(proxy.addr).await,
            buf: BytesMut::new(),
        };
        let mut params = vec![("user", "tester"), ("database", key)];
        params.extend_from_slice(extra);
        let mut startup = BytesMut::new();
        frontend::startup_message(params, &mut startup).unwrap();
        wire.raw.send(&startup).await;
        let greeting = wire.until_one_of(b"ZE").await;
        (wire, greeting)
    }

    async fn next(&mut self) -> (u8, BytesMut) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if self.buf.len() >= 5 {
                    let len =
                        u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                            as usize;
                    if self.buf.len() > len {
                        let tag = self.buf[0];
                        self.buf.advance(5);
                        return (tag, self.buf.split_to(len - 4));
                    }
                }
                let read = self.raw.stream.read_buf(&mut self.buf).await.unwrap_or(0);
                assert!(read > 0, "the proxy closed the connection");
            }
        })
        .await
        .expect("timed out waiting for the proxy")
    }

    /// Every message up to ReadyForQuery, each as its tag and a readable text of what matters.
    async fn until_ready(&mut self) -> Vec<(u8, String)> {
        self.until_one_of(b"Z").await
    }

    /// Every message up to and including the first with tag `last`.
    async fn until(&mut self, last: u8) -> Vec<(u8, String)> {
        self.until_one_of(&[last]).await
    }

    /// Every message up to and including the first with one of the tags `last`.
    async fn until_one_of(&mut self, last: &[u8]) -> Vec<(u8, String)> {
        let mut replies = Vec::new();
        loop {
            let (tag, body) = self.next().await;
            replies.push((tag, describe(tag, body)));
            if last.contains(&tag) {
                return replies;
            }
        }
    }

    async fn exchange(&mut self, messages: &[u8]) -> Vec<(u8, String)> {
        self.raw.send(messages).await;
        self.until_ready().await
    }

    async fn query(&mut self, sql: &[u8]) -> Vec<(u8, String)> {
        let mut message = BytesMut::new();
        message.put_u8(b'Q');
        message.put_i32(4 + sql.len() as i32 + 1);
        message.put_slice(sql);
        message.put_u8(0);
        self.exchange(&message).await
    }
}

/// A message's text for comparison: an error's severity, code, message, detail and hint; a
/// row's values (bytes as sent, escaped); a ParameterStatus's pair; else nothing.
fn describe(tag: u8, mut body: BytesMut) -> String {
    match tag {
        b'E' | b'N' => {
            let mut fields = Vec::new();
            while body.first().is_some_and(|&t| t != 0) {
                let kind = body.get_u8();
                let end = body.iter().position(|&b| b == 0).unwrap();
                if matches!(kind, b'V' | b'C' | b'M' | b'D' | b'H') {
                    fields.push(String::from_utf8_lossy(&body[..end]).into_owned());
                }
                body.advance(end + 1);
            }
            fields.join(" | ")
        }
        b'D' => {
            let count = body.get_i16();
            (0..count)
                .map(|_| match body.get_i32() {
                    -1 => "NULL".to_string(),
                    len => {
                        let value = body.split_to(len as usize);
                        value.escape_ascii().to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        b'S' => body[..]
            .split(|&b| b == 0)
            .take(2)
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<Vec<_>>()
            .join("="),
        b'Z' => (body[0] as char).to_string(),
        _ => String::new(),
    }
}

/// One proxy, two keys on one database: `direct` passes through, `rb` is a rollback sandbox.
async fn proxy(server: &PgServer) -> TestProxy {
    server.create_database("namesdb").await;
    let mut direct = server.tcp_target("namesdb");
    direct.isolation = Some(Isolation::Database);
    let mut rollback = server.tcp_target("namesdb");
    rollback.isolation = Some(Isolation::Rollback);
    let router = MapRouter::with([("direct", direct), ("rb", rollback)]);
    TestProxy::start(ProxyConfig::default(), router).await
}

fn sequence(build: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::new();
    build(&mut out);
    frontend::sync(&mut out);
    out
}

/// Parse, Bind and Execute of the unnamed statement and portal (no Sync).
fn run_unnamed(sql: &str, out: &mut BytesMut) {
    run_statement("", sql, out)
}

/// Bind and Execute of the unnamed statement in the unnamed portal (no Sync).
fn execute_unnamed(out: &mut BytesMut) {
    bind("", "", out);
    frontend::execute("", 0, out).unwrap();
}

/// Parse of the statement `name`, Bind and Execute of it in the unnamed portal (no Sync).
fn run_statement(name: &str, sql: &str, out: &mut BytesMut) {
    frontend::parse(name, sql, [], out).unwrap();
    bind("", name, out);
    frontend::execute("", 0, out).unwrap();
}

/// A frontend message of `tag` whose body is `parts`, each a name (terminated here) or raw bytes.
fn message(tag: u8, parts: &[(&[u8], bool)], out: &mut BytesMut) {
    let len: usize = parts.iter().map(|(p, name)| p.len() + *name as usize).sum();
    out.put_u8(tag);
    out.put_i32(4 + len as i32);
    for (part, name) in parts {
        out.put_slice(part);
        if *name {
            out.put_u8(0);
        }
    }
}

/// A Bind's body after its two names when it has no parameters or result formats.
const NO_PARAMETERS: &[u8] = &[0, 0, 0, 0, 0, 0];

/// A Bind without parameters or result formats.
fn bind(portal: &str, statement: &str, out: &mut BytesMut) {
    let parts = [
        (portal.as_bytes(), true),
        (statement.as_bytes(), true),
        (NO_PARAMETERS, false),
    ];
    message(b'B', &parts, out);
}

/// psycopg 3's server-side cursors: `DECLARE "c" CURSOR …` in SQL, then Describe and Execute of
/// the portal "c" over the protocol. The proxy renamed the portal and the server answered 34000
/// `portal "dbsb_c1_c" does not exist` (148 of psycopg's tests; Django's `QuerySet.iterator()`).
#[tokio::test]
async fn a_cursor_declared_in_sql_is_usable_through_the_protocol() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire
            .query(b"BEGIN; DECLARE \"c\" CURSOR FOR SELECT generate_series(1, 3)")
            .await;
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::describe(b'P', "c", b).unwrap();
                frontend::execute("c", 2, b).unwrap();
            }))
            .await,
        );
        seen.extend(wire.query(b"FETCH ALL FROM \"c\"").await);
        // A portal the client bound over the protocol keeps its own (private) name beside it.
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::parse("s", "SELECT 42", [], b).unwrap();
                bind("p", "s", b);
                frontend::execute("p", 0, b).unwrap();
                frontend::close(b'P', "p", b).unwrap();
                frontend::close(b'P', "c", b).unwrap();
            }))
            .await,
        );
        seen.extend(wire.query(b"FETCH ALL FROM \"c\"").await);
        seen.extend(wire.query(b"ROLLBACK").await);
        outcomes.push(seen);
    }
    assert!(
        outcomes[0]
            .iter()
            .any(|(tag, text)| *tag == b'E' && text.contains("\"c\" does not exist")),
        "the last FETCH finds the cursor closed: {:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// An unnamed portal read in parts (Execute with a row limit, then Flush: no Sync), while
/// another connection of the key runs its own unnamed statement and portal. In PostgreSQL the two
/// are separate sessions; through a rollback key they share one backend: the reader must give
/// the key's turn up (it held it until its Sync, and the other connection waited for ever), and
/// the other connection's Bind must not replace the reader's portal.
#[tokio::test]
async fn an_unnamed_portal_read_in_parts_neither_holds_the_key_nor_is_replaced() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut reader, _) = Wire::open(&proxy, key, &[]).await;
        let (mut other, _) = Wire::open(&proxy, key, &[]).await;
        let part = |rows: i32| {
            let mut b = BytesMut::new();
            frontend::execute("", rows, &mut b).unwrap();
            frontend::flush(&mut b);
            b
        };
        let mut first = BytesMut::new();
        frontend::parse("", "SELECT generate_series(1, 6)", [], &mut first).unwrap();
        bind("", "", &mut first);
        first.extend_from_slice(&part(2));
        reader.raw.send(&first).await;
        let mut seen = reader.until(b's').await;
        seen.extend(
            other
                .exchange(&sequence(|b| {
                    frontend::parse("", "SELECT 'other'", [], b).unwrap();
                    bind("", "", b);
                    frontend::execute("", 0, b).unwrap();
                }))
                .await,
        );
        reader.raw.send(&part(2)).await;
        seen.extend(reader.until(b's').await);
        seen.extend(
            reader
                .exchange(&sequence(|b| {
                    frontend::execute("", 0, b).unwrap();
                }))
                .await,
        );
        outcomes.push(seen);
    }
    assert_eq!(
        outcomes[0].iter().filter(|(tag, _)| *tag == b'D').count(),
        7,
        "six rows in three parts and the other's one: {:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// Error texts name the client's own statements and portals: the server's
/// `prepared statement "dbsb_c3_s1" does not exist` reaches the client as PostgreSQL says it.
#[tokio::test]
async fn errors_name_the_clients_own_statements_and_portals() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire.query(b"EXECUTE nosuch").await;
        seen.extend(wire.query(b"PREPARE twice AS SELECT 1").await);
        seen.extend(wire.query(b"PREPARE twice AS SELECT 1").await);
        seen.extend(wire.query(b"DEALLOCATE nosuch").await);
        seen.extend(
            wire.exchange(&sequence(|b| bind("", "missing_stmt", b)))
                .await,
        );
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::describe(b'S', "missing_stmt", b).unwrap()
            }))
            .await,
        );
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::parse("s1", "SELECT 1", [], b).unwrap();
                bind("p1", "s1", b);
                frontend::execute("p1", 0, b).unwrap();
                frontend::execute("p1", 0, b).unwrap();
            }))
            .await,
        );
        // Outside a transaction the portal is gone after the Sync.
        seen.extend(
            wire.exchange(&sequence(|b| frontend::execute("p1", 0, b).unwrap()))
                .await,
        );
        outcomes.push(seen);
    }
    let errors: Vec<&String> = outcomes[1]
        .iter()
        .filter(|(tag, _)| *tag == b'E')
        .map(|(_, text)| text)
        .collect();
    assert!(
        errors.iter().all(|text| !text.contains("dbsb")),
        "{errors:?}"
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// `pg_prepared_statements` shows the connection's own statements under its own names, as in
/// PostgreSQL: not the proxy's guard statements (`SAVEPOINT dbsb_g`, `RELEASE SAVEPOINT
/// dbsb_g`), not the key's other connections' (psycopg's test_prepared counts its rows).
#[tokio::test]
async fn pg_prepared_statements_lists_only_the_connections_own_statements() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let list = b"SELECT name, statement, from_sql, parameter_types::text \
                 FROM pg_prepared_statements ORDER BY name";
    let qualified = b"SELECT p.name FROM pg_catalog.pg_prepared_statements AS p \
                      WHERE p.name <> '' ORDER BY 1";
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut other, _) = Wire::open(&proxy, key, &[]).await;
        other
            .exchange(&sequence(|b| {
                frontend::parse("theirs", "SELECT 2", [], b).unwrap()
            }))
            .await;
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire.query(list).await;
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::parse("mine", "SELECT $1::int", [23], b).unwrap()
            }))
            .await,
        );
        seen.extend(wire.query(b"PREPARE sq AS SELECT 1").await);
        seen.extend(wire.query(list).await);
        seen.extend(wire.query(qualified).await);
        // Through the extended protocol too.
        seen.extend(
            wire.exchange(&sequence(|b| {
                run_unnamed(std::str::from_utf8(qualified).unwrap(), b)
            }))
            .await,
        );
        outcomes.push(seen);
    }
    assert!(
        outcomes[0]
            .iter()
            .any(|(tag, text)| *tag == b'D' && text.starts_with("mine,")),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// A Bind of the unnamed statement after its Parse failed: PostgreSQL drops the unnamed
/// statement before it parses, so the Bind gets 26000; the proxy re-sent the failed Parse as its
/// own and answered XX000 ("could not run its own bookkeeping statement").
#[tokio::test]
async fn a_failed_unnamed_parse_leaves_no_unnamed_statement() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire
            .exchange(&sequence(|b| {
                frontend::parse("", "SELECT 1", [], b).unwrap()
            }))
            .await;
        seen.extend(
            wire.exchange(&sequence(|b| {
                frontend::parse("", "SELEC 1", [], b).unwrap()
            }))
            .await,
        );
        seen.extend(
            wire.exchange(&sequence(|b| {
                bind("", "", b);
                frontend::execute("", 0, b).unwrap();
            }))
            .await,
        );
        seen.extend(
            wire.exchange(&sequence(|b| frontend::describe(b'S', "", b).unwrap()))
                .await,
        );
        outcomes.push(seen);
    }
    assert!(
        outcomes[0].iter().any(|(_, text)| text.contains("26000")),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// A client encoding other than UTF-8 (psycopg's encoding tests): text in LATIN9 reaches the
/// server as the client's bytes, and the greeting names the encoding as the server spells it.
/// The proxy ended the connection ("the query string is not valid UTF-8") and echoed `latin9`.
#[tokio::test]
async fn a_latin9_client_encoding_works_as_in_postgresql() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    // 'é' and '€' in LATIN9.
    let latin9_query = b"SELECT '\xe9\xa4', length('\xe9\xa4'), current_setting('client_encoding')";
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, statuses) = Wire::open(&proxy, key, &[("client_encoding", "latin9")]).await;
        let mut seen: Vec<(u8, String)> = statuses
            .into_iter()
            .filter(|s| s.starts_with("client_encoding="))
            .map(|s| (b'S', s))
            .collect();
        seen.extend(wire.query(latin9_query).await);
        // Through the extended protocol, a parameter and a statement name in LATIN9 too.
        seen.extend(
            wire.exchange(&sequence(|b| {
                b.put_u8(b'P');
                let body: &[u8] = b"st\xe9\0SELECT '\xe9' || $1::text\0\0\0";
                b.put_i32(4 + body.len() as i32);
                b.put_slice(body);
                b.put_u8(b'B');
                let body: &[u8] = b"\0st\xe9\0\0\0\0\x01\0\0\0\x01\xa4\0\0";
                b.put_i32(4 + body.len() as i32);
                b.put_slice(body);
                frontend::execute("", 0, b).unwrap();
            }))
            .await,
        );
        seen.extend(wire.query(b"EXECUTE nosuch\xe9").await);
        outcomes.push(seen);
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire.query(b"SET client_encoding TO 'LATIN9'").await;
        seen.extend(wire.query(latin9_query).await);
        seen.extend(wire.query(b"RESET client_encoding").await);
        outcomes.push(seen);
    }
    assert!(
        outcomes[0].contains(&(b'S', "client_encoding=LATIN9".to_string())),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[2], outcomes[0]);
    assert_eq!(outcomes[3], outcomes[1]);
}

/// A cursor ends with the transaction that declared it, or with its connection: the key's
/// shared backend never ends either, so the next test's `DECLARE` of the same name found the
/// cursor there (42P03 `cursor "c" already exists`). WITH HOLD cursors outlive the transaction.
#[tokio::test]
async fn cursors_end_with_their_transaction_or_connection() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        // Open throughout, so the key is not reset when the first connection closes.
        let (_keeper, _) = Wire::open(&proxy, key, &[]).await;
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire
            .query(b"BEGIN; DECLARE c CURSOR FOR SELECT 1; DECLARE h CURSOR WITH HOLD FOR SELECT 2")
            .await;
        seen.extend(wire.query(b"COMMIT").await);
        seen.extend(wire.query(b"FETCH c").await);
        seen.extend(wire.query(b"FETCH h").await);
        seen.extend(
            wire.query(b"BEGIN; DECLARE left_open CURSOR FOR SELECT 3")
                .await,
        );
        drop(wire);
        let (mut next, _) = Wire::open(&proxy, key, &[]).await;
        seen.extend(
            next.query(
                b"BEGIN; DECLARE left_open CURSOR FOR SELECT 4; DECLARE h CURSOR FOR SELECT 5",
            )
            .await,
        );
        seen.extend(next.query(b"FETCH left_open").await);
        seen.extend(next.query(b"ROLLBACK").await);
        outcomes.push(seen);
    }
    assert_eq!(outcomes[1], outcomes[0]);
}

/// `DEALLOCATE ALL` drops the connection's protocol statements too, as in PostgreSQL (psycopg
/// sends it after DDL and counts `pg_prepared_statements`); the proxy dropped only the ones
/// made with SQL `PREPARE`.
#[tokio::test]
async fn deallocate_all_drops_protocol_statements_too() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire
            .exchange(&sequence(|b| {
                frontend::parse("mine", "SELECT 1", [], b).unwrap()
            }))
            .await;
        seen.extend(wire.query(b"PREPARE sq AS SELECT 2; DEALLOCATE ALL").await);
        seen.extend(
            wire.query(b"SELECT count(*) FROM pg_prepared_statements")
                .await,
        );
        seen.extend(wire.exchange(&sequence(|b| bind("", "mine", b))).await);
        outcomes.push(seen);
    }
    assert_eq!(outcomes[1], outcomes[0]);
}

/// Startup settings as PostgreSQL answers them: the greeting reports each in the server's own
/// spelling (`DateStyle=sql,dmy` → `SQL, DMY`, a startup parameter winning over `options`), and
/// a value the server rejects refuses the connection with its FATAL. Through a rollback key
/// the greeting echoed the client's spelling, and `DateStyle=bogus` opened a connection whose
/// every statement then failed ("dbsandbox could not run its own bookkeeping statement").
#[tokio::test]
async fn startup_settings_are_greeted_and_refused_as_in_postgresql() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let reported = |greeting: Vec<(u8, String)>| -> Vec<(u8, String)> {
        greeting
            .into_iter()
            .filter(|(tag, text)| {
                *tag == b'E'
                    || [
                        "DateStyle=",
                        "IntervalStyle=",
                        "TimeZone=",
                        "standard_conforming_strings=",
                        "application_name=",
                        "client_encoding=",
                    ]
                    .iter()
                    .any(|name| text.starts_with(name))
            })
            .collect()
    };
    let long_name = "n".repeat(70);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("DateStyle", "sql,dmy")],
        vec![("datestyle", "german"), ("IntervalStyle", "SQL_STANDARD")],
        vec![("TimeZone", "europe/paris"), ("client_encoding", "latin9")],
        vec![("options", "-c DateStyle=SQL"), ("DateStyle", "postgres")],
        vec![("DateStyle", "postgres"), ("options", "-c DateStyle=SQL")],
        vec![(
            "options",
            "-c standard_conforming_strings=yes -c DateStyle=dmy",
        )],
        vec![("application_name", long_name.as_str())],
        vec![("DateStyle", "bogus")],
        vec![("no_such_setting", "1")],
        vec![("client_encoding", "klingon")],
    ];
    // A rollback connection open throughout with its own DateStyle applied on the shared
    // backend: the checks start from PostgreSQL's defaults, not from its settings, and leave
    // them alone.
    let (mut keeper, _) = Wire::open(&proxy, "rb", &[]).await;
    keeper.query(b"SET DateStyle TO 'Postgres, YMD'").await;
    for case in &cases {
        let (_, direct) = Wire::start(&proxy, "direct", case).await;
        let (mut wire, through_rollback) = Wire::start(&proxy, "rb", case).await;
        let (direct, through_rollback) = (reported(direct), reported(through_rollback));
        assert_eq!(through_rollback, direct, "{case:?}");
        if direct.iter().all(|(tag, _)| *tag != b'E') {
            // Each connection then runs with its settings, as it was told.
            let shown = wire.query(b"SHOW DateStyle").await;
            let (mut plain, _) = Wire::start(&proxy, "direct", case).await;
            assert_eq!(shown, plain.query(b"SHOW DateStyle").await, "{case:?}");
        }
    }
    let (_, first) = Wire::start(&proxy, "rb", &cases[0]).await;
    assert!(
        first.contains(&(b'S', "DateStyle=SQL, DMY".to_string())),
        "{first:?}"
    );
    let (_, refused) = Wire::start(&proxy, "rb", &cases[7]).await;
    assert!(
        refused.iter().any(|(tag, text)| *tag == b'E'
            && text.starts_with("FATAL | 22023 | invalid value for parameter \"DateStyle\"")),
        "{refused:?}"
    );
    let kept = keeper.query(b"SHOW DateStyle").await;
    assert!(
        kept.contains(&(b'D', "Postgres, YMD".to_string())),
        "{kept:?}"
    );
}

/// An unnamed Parse the server skipped (it came after an error, before Sync) never replaced the
/// unnamed statement: a later Bind of "" runs the statement parsed before it. The proxy took the
/// skipped Parse for the client's unnamed statement and, once another connection of the key had
/// parsed its own, re-parsed the skipped one for the client: here `selec` became XX000 "could not
/// run its own bookkeeping statement" (the protocol fuzzer's seed 20261203), and a valid
/// statement would have run in place of the one PostgreSQL runs.
#[tokio::test]
async fn an_unnamed_parse_skipped_after_an_error_does_not_replace_the_unnamed_statement() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let (mut other, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = Vec::new();
        for skipped in ["selec 1", "SELECT 2"] {
            seen.extend(
                wire.exchange(&sequence(|b| {
                    run_unnamed("SELECT 1/0", b);
                    frontend::parse("", skipped, [], b).unwrap();
                }))
                .await,
            );
            // Another connection's unnamed statement, on the shared backend of a rollback key.
            other
                .exchange(&sequence(|b| run_unnamed("SELECT 3", b)))
                .await;
            seen.extend(wire.exchange(&sequence(execute_unnamed)).await);
        }
        outcomes.push(seen);
    }
    assert!(
        outcomes[0]
            .iter()
            .filter(|(_, text)| text.contains("22012"))
            .count()
            == 4,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// The unnamed statement outlives the table it reads: PostgreSQL's Bind then fails with 42P01
/// (the statement is analysed again). Once another connection of the key had parsed its own, the
/// proxy's re-parse of the client's statement failed instead, and the client got XX000 "could
/// not run its own bookkeeping statement" (the protocol fuzzer, seed 20261203).
#[tokio::test]
async fn an_unnamed_statement_whose_table_is_gone_fails_its_bind_as_in_postgresql() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let (mut other, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = wire.query(b"BEGIN; CREATE TABLE items (id int)").await;
        seen.extend(
            wire.exchange(&sequence(|b| run_unnamed("SELECT count(*) FROM items", b)))
                .await,
        );
        // Not a simple Query: that would drop the unnamed statement.
        seen.extend(
            wire.exchange(&sequence(|b| run_statement("undo", "ROLLBACK", b)))
                .await,
        );
        other
            .exchange(&sequence(|b| run_unnamed("SELECT 3", b)))
            .await;
        for _ in 0..2 {
            seen.extend(wire.exchange(&sequence(execute_unnamed)).await);
        }
        seen.extend(wire.query(b"SELECT 1").await);
        outcomes.push(seen);
    }
    assert!(
        outcomes[0]
            .iter()
            .any(|(_, text)| text.contains("42P01 | relation \"items\" does not exist")),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// Statement and portal names that are not valid in the client encoding (UTF8): PostgreSQL
/// reads each name, and fails its message with 22021. The proxy's Close of the name, sent
/// ahead of a client's Bind or named Parse, failed first, and the client got XX000 "could not
/// run its own bookkeeping statement" instead (the protocol fuzzer, seed 20261203).
#[tokio::test]
async fn names_not_valid_in_the_client_encoding_fail_as_in_postgresql() {
    let server = PgServer::start().await;
    let proxy = proxy(&server).await;
    let bad: &[u8] = b"n\xbc";
    let sequences: Vec<BytesMut> = vec![
        // A Bind into a portal of that name.
        sequence(|b| {
            frontend::parse("", "SELECT 1", [], b).unwrap();
            message(b'B', &[(bad, true), (b"", true), (NO_PARAMETERS, false)], b);
            frontend::execute("", 0, b).unwrap();
        }),
        // A Bind of a statement of that name.
        sequence(|b| message(b'B', &[(b"", true), (bad, true), (NO_PARAMETERS, false)], b)),
        // A Parse of a statement of that name.
        sequence(|b| {
            message(
                b'P',
                &[(bad, true), (b"SELECT 1", true), (&[0, 0], false)],
                b,
            )
        }),
        // Describe, Execute and Close of that name.
        sequence(|b| message(b'D', &[(b"P", false), (bad, true)], b)),
        sequence(|b| message(b'D', &[(b"S", false), (bad, true)], b)),
        sequence(|b| message(b'E', &[(bad, true), (&[0, 0, 0, 0], false)], b)),
        sequence(|b| message(b'C', &[(b"P", false), (bad, true)], b)),
        sequence(|b| message(b'C', &[(b"S", false), (bad, true)], b)),
    ];
    let mut outcomes = Vec::new();
    for key in ["direct", "rb"] {
        let (mut wire, _) = Wire::open(&proxy, key, &[]).await;
        let mut seen = Vec::new();
        for sequence in &sequences {
            seen.push(wire.exchange(sequence).await);
        }
        seen.push(wire.query(b"SELECT 1").await);
        outcomes.push(seen);
    }
    assert!(
        outcomes[0][..3].iter().all(|replies| replies
            .iter()
            .any(|(_, text)| text.contains("22021 | invalid byte sequence"))),
        "{:?}",
        outcomes[0]
    );
    for (index, (rollback, direct)) in outcomes[1].iter().zip(&outcomes[0]).enumerate() {
        assert_eq!(rollback, direct, "sequence {index}");
    }
}
