//! The fuzzer's corpus: hostile sequences written out by hand, each run on a key of its own with
//! an idle bystander connection of the same key open throughout, so a failure names the exact
//! sequence (the random sessions of `scenarios` find such sequences; this replays the known
//! ones, issue 11's among them, deterministically). After each sequence the bystander and two
//! fresh connections of the key must answer; after a sequence that ends the key's server session
//! in a rollback sandbox, the open connections must instead be told the key is broken, and the
//! key must answer again once they are closed (it resets on close).

use super::checks::{answering, check_key, select_one};
use super::*;
use crate::support::TestProxy;

/// One step of a sequence.
pub enum Step {
    Send(Vec<Vec<u8>>),
    /// Read until this many ReadyForQuery (errors on the way are fine).
    Ready(usize),
    /// Read until CopyInResponse.
    CopyIn,
    Pause(Duration),
    /// The key's idle bystander connection must answer SELECT 1 now.
    Bystander,
    /// Close this sequence's connection and open a new one (startup included).
    Reconnect,
}

pub struct Sequence {
    pub name: &'static str,
    /// The issue-11 bug it reproduces, if any.
    pub bug: &'static str,
    pub steps: Vec<Step>,
    /// It ends the server session it runs in (see `sql::ends_the_session`).
    pub ends_the_session: bool,
}

fn seq(name: &'static str, bug: &'static str, steps: Vec<Step>) -> Sequence {
    Sequence {
        name,
        bug,
        steps,
        ends_the_session: false,
    }
}

use Step::*;

pub fn sequences() -> Vec<Sequence> {
    let failing_parse = |sql: &str| {
        Send(vec![
            parse("dbsb_fuzz_s1", sql, &[]),
            bind("", "dbsb_fuzz_s1", &[], &[]),
            execute("", 0),
            sync(),
        ])
    };
    vec![
        seq(
            "failed named Parse (missing table), then DISCARD ALL",
            "bug 1",
            vec![
                failing_parse("select * from nosuch"),
                Ready(1),
                Send(vec![query("DISCARD ALL")]),
                Ready(1),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "failed named Parse (syntax error), then DISCARD ALL",
            "bug 1",
            vec![
                failing_parse("selec 1"),
                Ready(1),
                Send(vec![query("DISCARD ALL")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "failed named Parse, then DEALLOCATE ALL",
            "bug 1 (variant)",
            vec![
                failing_parse("select * from nosuch"),
                Ready(1),
                Send(vec![query("DEALLOCATE ALL")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "executemany's batch end: Parse/Bind/Execute x2, Sync, Flush; connection stays open",
            "bug 2",
            vec![
                Send(vec![
                    parse("", "insert into items(name) values ($1)", &[25]),
                    bind("", "", &[Some(b"em1")], &[]),
                    execute("", 0),
                    bind("", "", &[Some(b"em2")], &[]),
                    execute("", 0),
                    sync(),
                    flush(),
                ]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "SET idle_in_transaction_session_timeout = '1s', then idle 1.5 s",
            "bug 3",
            vec![
                Send(vec![query(
                    "SET idle_in_transaction_session_timeout = '1s'",
                )]),
                Ready(1),
                Pause(Duration::from_millis(1500)),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "a prepared SET idle_in_transaction_session_timeout executed in a later unit, then idle 1.5 s",
            "bug 3",
            vec![
                Send(vec![
                    parse("dbsb_fuzz_idle", "SET idle_in_transaction_session_timeout = '1s'", &[]),
                    sync(),
                ]),
                Ready(1),
                Send(vec![bind("", "dbsb_fuzz_idle", &[], &[]), execute("", 0), sync()]),
                Ready(1),
                Pause(Duration::from_millis(1500)),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "SQL PREPARE of set_config(idle_in_transaction_session_timeout), EXECUTE later, then idle 1.5 s",
            "bug 3",
            vec![
                Send(vec![query(
                    "PREPARE idle AS SELECT set_config('idle_in_transaction_session_timeout', '1s', false)",
                )]),
                Ready(1),
                Send(vec![query("EXECUTE idle")]),
                Ready(1),
                Pause(Duration::from_millis(1500)),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "a function that sets idle_in_transaction_session_timeout, called later, then idle 1.5 s",
            "bug 3",
            vec![
                Send(vec![query(
                    "CREATE FUNCTION fuzz_idle() RETURNS text LANGUAGE sql AS \
                     $$ SELECT set_config('idle_in_transaction_session_timeout', '1s', false) $$",
                )]),
                Ready(1),
                Send(vec![query("SELECT fuzz_idle()")]),
                Ready(1),
                Pause(Duration::from_millis(1500)),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "a DECLARE whose name is not UTF-8 fails, then its transaction ends",
            "",
            vec![
                Send(vec![frame(
                    b'Q',
                    b"BEGIN; DECLARE \"\xd8\xeb\" CURSOR FOR SELECT 1\0",
                )]),
                Ready(1),
                Send(vec![query("ROLLBACK")]),
                Ready(1),
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "failed named Parse, then disconnect",
            "bug 4",
            vec![
                Send(vec![parse("dbsb_fuzz_bad", "selec 1", &[]), sync()]),
                Ready(1),
                Reconnect,
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "COPY FROM STDIN, half a row, then disconnect",
            "bug 5",
            vec![
                Send(vec![query("COPY items(name) FROM STDIN")]),
                CopyIn,
                Send(vec![copy_data(b"half a ro")]),
                Reconnect,
                Send(vec![query("select 1")]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "pg_sleep(30), then disconnect without waiting",
            "bug 7",
            vec![
                Send(vec![query("select pg_sleep(30)")]),
                Pause(Duration::from_millis(200)),
                Reconnect,
                Bystander,
            ],
        ),
        Sequence {
            ends_the_session: true,
            ..seq(
                "pg_terminate_backend(pg_backend_pid())",
                "bugs 8 and 10",
                vec![
                    Send(vec![query("select pg_terminate_backend(pid) from pg_stat_activity where pid = pg_backend_pid()")]),
                    Pause(Duration::from_millis(300)),
                    Bystander,
                    Reconnect,
                    Send(vec![query("select 1")]),
                    Ready(1),
                ],
            )
        },
        seq(
            "Parse/Bind/Execute without Sync, then disconnect",
            "",
            vec![
                Send(vec![
                    parse("", "select 1", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    flush(),
                ]),
                Pause(Duration::from_millis(200)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "BEGIN; SAVEPOINT nest; error; disconnect inside the failed transaction",
            "",
            vec![
                Send(vec![query("BEGIN; SAVEPOINT a; SAVEPOINT b; select 1/0")]),
                Ready(1),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "LISTEN, NOTIFY, then disconnect while listening",
            "",
            vec![
                Send(vec![query("LISTEN fuzz"), query("NOTIFY fuzz, 'x'")]),
                Ready(2),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "named statement, then DEALLOCATE ALL through the extended protocol, then disconnect",
            "",
            vec![
                Send(vec![parse("keep", "select 1", &[]), sync()]),
                Ready(1),
                Send(vec![
                    parse("", "DEALLOCATE ALL", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    sync(),
                ]),
                Ready(1),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "named statement, then DISCARD ALL through the extended protocol, then disconnect",
            "",
            vec![
                Send(vec![parse("keep", "select 1", &[]), sync()]),
                Ready(1),
                Send(vec![
                    parse("", "DISCARD ALL", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    sync(),
                ]),
                Ready(1),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "named statement, then SQL DEALLOCATE of its name, then disconnect",
            "",
            vec![
                Send(vec![parse("keep", "select 1", &[]), sync()]),
                Ready(1),
                Send(vec![query("DEALLOCATE keep")]),
                Ready(1),
                Reconnect,
                Bystander,
            ],
        ),
        // PostgreSQL answers the next two with FATAL 08P01 and ends that session only.
        seq(
            "PasswordMessage after startup",
            "",
            vec![
                Send(vec![password("hunter2"), sync()]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "unknown message type 'z'",
            "",
            vec![
                Send(vec![frame(b'z', b"??"), sync()]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        // PostgreSQL: ERROR 08P01 "invalid string in message", and the session goes on.
        seq(
            "Query without its string terminator",
            "",
            vec![
                Send(vec![frame(b'Q', b"select 1"), sync()]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "COPY FROM STDIN (simple), then a Query inside the COPY",
            "",
            vec![
                Send(vec![query("COPY items(name) FROM STDIN")]),
                CopyIn,
                // PostgreSQL ends this session (FATAL 08P01, protocol synchronization lost);
                // only this one.
                Send(vec![copy_data(b"inside\n"), query("select 1")]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "COPY FROM STDIN (extended), Sync sent before the data, then CopyDone",
            "",
            vec![
                Send(vec![
                    parse("", "COPY items(name) FROM STDIN", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    sync(),
                ]),
                CopyIn,
                Send(vec![copy_data(b"extended\n"), copy_done(), sync()]),
                Ready(1),
                Bystander,
            ],
        ),
        seq(
            "COPY FROM STDIN (extended), then Parse/Bind inside the COPY",
            "",
            vec![
                Send(vec![
                    parse("", "COPY items(name) FROM STDIN", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    sync(),
                ]),
                CopyIn,
                Send(vec![
                    copy_data(b"x\n"),
                    parse("", "select 1", &[]),
                    bind("", "", &[], &[]),
                    execute("", 0),
                    sync(),
                ]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        // Found by the random fuzz: the messages were held with the COPY data and written to
        // the shared server with the CopyDone/CopyFail, which ended the key's session (FATAL
        // 08P01). PostgreSQL ends only this client's session.
        seq(
            "COPY FROM STDIN (extended), a pipelined Parse/Bind/Execute/Sync, then CopyFail",
            "",
            vec![
                Send(vec![
                    parse("", "COPY items(name) FROM STDIN", &[]),
                    bind("", "", &[], &[]),
                    execute("", 1),
                    sync(),
                    parse("dbsb_fuzz_s1", "select 1; select 2", &[]),
                    bind("", "dbsb_fuzz_s1", &[], &[]),
                    execute("", 0),
                    sync(),
                    flush(),
                ]),
                CopyIn,
                Send(vec![
                    copy_data(b"a\n"),
                    copy_data(b"b\n"),
                    copy_fail("fuzz"),
                ]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "COPY FROM STDIN (simple), a Query inside the COPY, then CopyDone",
            "",
            vec![
                Send(vec![query("COPY items(name) FROM STDIN")]),
                CopyIn,
                Send(vec![copy_data(b"inside\n"), query("select 1"), copy_done()]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        // Found by the random fuzz: the client's own idle-in-transaction timeout is set back
        // to 0 before its batch ends, and that SET was pipelined after the COPY's Query, which
        // the server got during the COPY and ended the key's session for (FATAL 08P01).
        seq(
            "SET idle_in_transaction_session_timeout = 0, then COPY FROM STDIN (simple)",
            "",
            vec![
                Send(vec![query("SET idle_in_transaction_session_timeout = 0")]),
                Ready(1),
                Send(vec![query("COPY items(name) FROM STDIN")]),
                CopyIn,
                Send(vec![copy_data(b"a\n"), copy_data(b"b\n"), copy_done()]),
                Ready(1),
                Send(vec![query("BEGIN; COPY items(name) FROM STDIN; COMMIT")]),
                CopyIn,
                Send(vec![copy_data(b"c\n"), copy_done()]),
                Ready(1),
                Bystander,
            ],
        ),
        // Found by the random fuzz: the failed Parse of a name the server still held for a
        // COPY left the proxy planning a plain Execute (Sync and more pipelined after it) of
        // what the server ran as the old COPY: the key hung or lost its session.
        seq(
            "named Parse of a COPY, the same name re-Parsed with a syntax error, then Bind/Execute",
            "",
            vec![
                Send(vec![
                    parse("dbsb_fuzz_s2", "COPY items(name) FROM STDIN", &[]),
                    sync(),
                ]),
                Ready(1),
                Send(vec![parse("dbsb_fuzz_s2", "selec", &[]), sync()]),
                Ready(1),
                // PostgreSQL runs the old COPY and ends this session for the Query inside it;
                // only this one.
                Send(vec![
                    bind("", "dbsb_fuzz_s2", &[], &[]),
                    execute("", 10),
                    sync(),
                    query("select 1"),
                ]),
                Pause(Duration::from_millis(300)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "named portal of a COPY, the same portal re-bound to a plain statement, then Execute",
            "",
            vec![
                Send(vec![
                    parse("", "COPY items(name) FROM STDIN", &[]),
                    bind("dbsb_fuzz_p1", "", &[], &[]),
                    sync(),
                ]),
                Ready(1),
                Send(vec![
                    parse("", "select 1", &[]),
                    bind("dbsb_fuzz_p1", "", &[], &[]),
                    sync(),
                ]),
                Ready(1),
                Send(vec![execute("dbsb_fuzz_p1", 0), sync(), query("select 1")]),
                Ready(2),
                Bystander,
            ],
        ),
        seq(
            "message longer than the proxy's limit",
            "",
            vec![
                Send(vec![with_length(query("select 1"), 64 * 1024 * 1024 + 1)]),
                Pause(Duration::from_millis(200)),
                Reconnect,
                Bystander,
            ],
        ),
        seq(
            "message length that lies by +8, then garbage",
            "",
            vec![
                Send(vec![
                    with_length(query("select 1"), 21),
                    b"garbage!".to_vec(),
                    sync(),
                ]),
                Pause(Duration::from_millis(200)),
                Reconnect,
                Bystander,
            ],
        ),
    ]
}

const STEP_TIMEOUT: Duration = Duration::from_secs(5);

async fn open(proxy: &TestProxy, key: &str) -> Result<Wire, String> {
    let mut wire = Wire::open(proxy.addr, STEP_TIMEOUT)
        .await
        .ok_or("could not connect to the proxy")?;
    wire.send(&[startup(
        PROTOCOL_3_0,
        &[("user", "fuzzer"), ("database", key)],
    )])
    .await;
    ready(&mut wire, 1)
        .await
        .map_err(|e| format!("startup: {e}"))?;
    Ok(wire)
}

async fn ready(wire: &mut Wire, count: usize) -> Result<(), String> {
    let mut seen = 0;
    while seen < count {
        match wire.recv().await {
            Received::Message { tag: b'Z', .. } => seen += 1,
            Received::Message { .. } => {}
            other => return Err(format!("expected ReadyForQuery, got {other:?}")),
        }
    }
    Ok(())
}

/// Runs `sequence` on `key`; every problem, in order, with the step it happened at.
pub async fn run(proxy: &TestProxy, key: &str, sequence: &Sequence, rollback: bool) -> Vec<String> {
    if rollback && sequence.ends_the_session {
        return run_ending_the_session(proxy, key, sequence).await;
    }
    let mut problems = Vec::new();
    let bystander = match answering(proxy, key).await {
        Ok(client) => client,
        Err(e) => return vec![format!("before the sequence, the bystander: {e}")],
    };
    let mut wire = match open(proxy, key).await {
        Ok(wire) => Some(wire),
        Err(e) => return vec![format!("before the sequence: {e}")],
    };
    for (index, step) in sequence.steps.iter().enumerate() {
        let at = format!("step {}", index + 1);
        let outcome = match step {
            Send(messages) => match wire.as_mut() {
                Some(w) => match w.send(messages).await {
                    true => Ok(()),
                    false => Err("the proxy had closed the connection".to_string()),
                },
                None => Err("no connection".into()),
            },
            Ready(count) => match wire.as_mut() {
                Some(w) => ready(w, *count).await,
                None => Err("no connection".into()),
            },
            CopyIn => match wire.as_mut() {
                Some(w) => loop {
                    match w.recv().await {
                        Received::Message { tag: b'G', .. } => break Ok(()),
                        Received::Message { .. } => {}
                        other => break Err(format!("expected CopyInResponse, got {other:?}")),
                    }
                },
                None => Err("no connection".into()),
            },
            Pause(duration) => {
                tokio::time::sleep(*duration).await;
                Ok(())
            }
            Bystander => select_one(&bystander)
                .await
                .map_err(|e| format!("the bystander connection: {e}")),
            Reconnect => {
                if let Some(w) = wire.take() {
                    w.hang_up().await;
                }
                open(proxy, key).await.map(|w| wire = Some(w))
            }
        };
        if let Err(e) = outcome {
            problems.push(format!("{at}: {e}"));
        }
    }
    if let Some(w) = wire.take() {
        w.hang_up().await;
    }
    if let Err(e) = select_one(&bystander).await {
        problems.push(format!("after the sequence, the bystander connection: {e}"));
    }
    if let Err(e) = check_key(proxy, key).await {
        problems.push(format!("after the sequence: {e}"));
    }
    problems
}

/// A rollback key whose shared server session a client ended: the client's own connection ends
/// with the server's FATAL 57P01, the idle bystander is told the key is broken (never a silent
/// fresh sandbox, never a hang), and once both are closed the key resets on close like any key.
async fn run_ending_the_session(proxy: &TestProxy, key: &str, sequence: &Sequence) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut bystander, mut wire) = match (open(proxy, key).await, open(proxy, key).await) {
        (Ok(bystander), Ok(wire)) => (bystander, wire),
        (Err(e), _) | (_, Err(e)) => return vec![format!("before the sequence: {e}")],
    };
    if let Some(Send(messages)) = sequence.steps.iter().find(|s| matches!(s, Send(_))) {
        wire.send(messages).await;
    }
    /// The errors a connection gets until it closes (or times out).
    async fn errors_until_closed(wire: &mut Wire) -> String {
        let mut errors = String::new();
        while let Received::Message { tag, body } = wire.recv().await {
            if tag == b'E' {
                errors.push_str(&String::from_utf8_lossy(&body));
            }
        }
        errors
    }
    let own = errors_until_closed(&mut wire).await;
    if !own.contains("57P01") {
        problems.push(format!(
            "the terminating client was not told FATAL 57P01: {own:?}"
        ));
    }
    let idle = errors_until_closed(&mut bystander).await;
    if !idle.contains("is broken") {
        problems.push(format!(
            "the idle bystander was not told the key is broken: {idle:?}"
        ));
    }
    // Every connection that shared the lost state was told and is closed; the key resets on
    // close (the fuzzer's proxy, like `dbsandbox run`), so the next connection gets a fresh one.
    if let Err(e) = check_key(proxy, key).await {
        problems.push(format!("after every told connection closed: {e}"));
    }
    problems
}
