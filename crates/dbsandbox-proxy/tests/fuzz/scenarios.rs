//! Session scripts of the protocol fuzzer: one client connection from its first byte to its
//! hang-up, chosen by the PRNG. Openings are valid startups (after SSLRequest or GSSENCRequest
//! sometimes) or broken ones (truncated, wrong versions, lying or huge lengths, stray cancel
//! requests); a session then runs steps of every frontend message type, mutated extended-protocol
//! sequences, SQL that is hostile to a rollback sandbox, lying lengths and garbage, and ends by
//! Terminate, an abrupt close (mid-message, mid-query, mid-COPY) or garbage.

use super::sql::*;
use super::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where the sessions go.
pub struct Target {
    pub addr: SocketAddr,
    pub keys: Vec<String>,
    pub rollback: bool,
    pub read_timeout: Duration,
    /// Start of the run; session logs say when they began, relative to it.
    pub started: std::time::Instant,
    /// Leave out what triggers issue 11's known bugs (named Parse failures, Sync+Flush, COPY
    /// or query abandoned by a hang-up, idle_in_transaction_session_timeout, self-termination),
    /// to explore past them while they are not fixed yet.
    pub skip_known: bool,
}

/// What the sessions saw, shared by all clients.
#[derive(Default)]
pub struct Tally {
    pub messages: AtomicU64,
    pub sessions: AtomicU64,
    pub ready_sessions: AtomicU64,
    pub timeouts: AtomicU64,
    pub closed_by_proxy: AtomicU64,
    pub malformed: Mutex<Vec<String>>,
    pub sqlstates: Mutex<BTreeMap<String, u64>>,
    /// The first [`INTERNAL_ERRORS_KEPT`] errors the proxy made up itself (XX000, one of its
    /// own statements failed), each with the session that got it, for minimising.
    pub internal_errors: Mutex<Vec<String>>,
    /// BackendKeyData the proxy handed out, for cancel requests of other sessions.
    pub backend_keys: Mutex<VecDeque<(u32, u32)>>,
    /// The sessions of each key as they ended (when each began, its log), newest last.
    pub history: Mutex<HashMap<String, VecDeque<(Duration, String)>>>,
}

const HISTORY_PER_KEY: usize = 400;
pub const INTERNAL_ERRORS_KEPT: usize = 20;

impl Tally {
    /// Keeps a session's log, unless it never reached the key's sandbox (its startup packet was
    /// refused) or was only refused with the key's breakage: once a key breaks, those come by
    /// the hundred and would push the session that broke it out of the history.
    fn remember(&self, key: &str, began: Duration, log: String) {
        let reached_key = log.contains(&format!("startup {key};"));
        if !reached_key || refused_as_broken(&log) {
            return;
        }
        let mut history = self.history.lock().unwrap();
        let entries = history.entry(key.to_owned()).or_default();
        if entries.len() == HISTORY_PER_KEY {
            entries.pop_front();
        }
        entries.push_back((began, log));
    }

    /// The last `count` sessions of `key` that began before `before`, oldest first.
    pub fn recent(&self, key: &str, before: Duration, count: usize) -> String {
        let history = self.history.lock().unwrap();
        let Some(entries) = history.get(key) else {
            return "(none)".into();
        };
        let mut lines: Vec<&(Duration, String)> = entries
            .iter()
            .filter(|(began, _)| *began < before)
            .collect();
        lines.sort_by_key(|(began, _)| *began);
        let skip = lines.len().saturating_sub(count);
        lines[skip..]
            .iter()
            .map(|(_, line)| line.as_str())
            .collect::<Vec<_>>()
            .join("\n    ")
    }

    fn sqlstate(&self, code: String) {
        *self.sqlstates.lock().unwrap().entry(code).or_default() += 1;
    }

    fn internal_error(&self, body: &[u8], log: &Log) {
        let mut kept = self.internal_errors.lock().unwrap();
        if kept.len() < INTERNAL_ERRORS_KEPT {
            kept.push(format!("{}\n      in {}", error_message(body), log.line()));
        }
    }
}

/// A session that only started up and was refused with a broken key's 08006.
fn refused_as_broken(line: &str) -> bool {
    let script = line.split_once(": ").map_or(line, |(_, script)| script);
    script
        .strip_suffix("<E 08006; <closed")
        .is_some_and(|start| {
            start.split("; ").all(|part| {
                part.is_empty()
                    || part == "SSLRequest"
                    || part == "GSSENCRequest"
                    || part.starts_with("startup ")
            })
        })
}

/// One session's script and what happened, as a line of the failure report.
struct Log {
    began: Duration,
    client: usize,
    number: u64,
    steps: Vec<String>,
}

impl Log {
    fn step(&mut self, text: impl Into<String>) {
        self.steps.push(text.into());
    }

    fn line(&self) -> String {
        let mut line = format!(
            "t={:.2}s client {} session {}: ",
            self.began.as_secs_f64(),
            self.client,
            self.number
        );
        line.push_str(&self.steps.join("; "));
        if line.len() > 2000 {
            let mut end = 2000;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        line
    }
}

/// How a request cycle ended.
#[derive(Debug, PartialEq)]
enum Cycle {
    Ready,
    CopyIn,
    Closed,
    TimedOut,
}

/// Reads until ReadyForQuery (or CopyInResponse), recording errors, cancel keys and
/// malformed messages.
async fn until_ready(wire: &mut Wire, tally: &Tally, log: &mut Log) -> Cycle {
    loop {
        match wire.recv().await {
            Received::Message { tag: b'Z', .. } => return Cycle::Ready,
            Received::Message { tag: b'G', .. } => return Cycle::CopyIn,
            Received::Message { tag: b'E', body } => {
                let code = error_code(&body);
                log.step(format!("<E {code}"));
                if code == "XX000" {
                    tally.internal_error(&body, log);
                }
                tally.sqlstate(code);
            }
            Received::Message { tag: b'K', body } if body.len() == 8 => {
                let pid = u32::from_be_bytes(body[0..4].try_into().unwrap());
                let secret = u32::from_be_bytes(body[4..8].try_into().unwrap());
                let mut keys = tally.backend_keys.lock().unwrap();
                if keys.len() == 64 {
                    keys.pop_front();
                }
                keys.push_back((pid, secret));
            }
            Received::Message { .. } => {}
            Received::Closed => {
                log.step("<closed");
                tally.closed_by_proxy.fetch_add(1, Ordering::Relaxed);
                return Cycle::Closed;
            }
            Received::TimedOut => {
                log.step("<timeout");
                tally.timeouts.fetch_add(1, Ordering::Relaxed);
                return Cycle::TimedOut;
            }
            Received::Malformed(what) => {
                log.step(format!("<MALFORMED {what}"));
                tally
                    .malformed
                    .lock()
                    .unwrap()
                    .push(format!("{what} (after: {})", log.line()));
                return Cycle::Closed;
            }
        }
    }
}

/// Reads whatever comes within a short time (after messages that need no answer).
async fn drain(wire: &mut Wire, tally: &Tally, log: &mut Log) -> Cycle {
    let normal = wire.read_timeout;
    wire.read_timeout = Duration::from_millis(150);
    let cycle = until_ready(wire, tally, log).await;
    wire.read_timeout = normal;
    if cycle == Cycle::TimedOut {
        // Nothing to say is the expected answer to a Flush; not a timeout of the proxy.
        tally.timeouts.fetch_sub(1, Ordering::Relaxed);
        log.steps.pop();
    }
    cycle
}

/// Runs one session. Returns the frontend messages it sent.
pub async fn session(target: &Target, tally: &Tally, rng: &mut Rng, client: usize, number: u64) {
    let mut log = Log {
        began: target.started.elapsed(),
        client,
        number,
        steps: Vec::new(),
    };
    let key = if rng.percent(92) {
        rng.pick(&target.keys).clone()
    } else {
        let strangers = [
            "unrouted".to_owned(),
            "bad key!".into(),
            String::new(),
            "x".repeat(60),
        ];
        rng.pick(&strangers).clone()
    };
    tally.sessions.fetch_add(1, Ordering::Relaxed);
    let Some(mut wire) = Wire::open(target.addr, target.read_timeout).await else {
        log.step("connect failed");
        tally.remember(&key, log.began, log.line());
        return;
    };
    let opened = if rng.percent(75) {
        valid_opening(&mut wire, tally, rng, &mut log, &key).await
    } else {
        broken_opening(&mut wire, tally, rng, &mut log, &key).await;
        false
    };
    if opened {
        tally.ready_sessions.fetch_add(1, Ordering::Relaxed);
        let steps = 1 + rng.below(25);
        for _ in 0..steps {
            if !step(&mut wire, target, tally, rng, &mut log).await {
                break;
            }
        }
        if !wire.broken {
            ending(&mut wire, tally, rng, &mut log).await;
        }
    }
    tally.messages.fetch_add(wire.sent, Ordering::Relaxed);
    tally.remember(&key, log.began, log.line());
    wire.hang_up().await;
}

async fn valid_opening(
    wire: &mut Wire,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
    key: &str,
) -> bool {
    for (percent, code, name) in [
        (10, SSL_REQUEST, "SSLRequest"),
        (5, GSSENC_REQUEST, "GSSENCRequest"),
    ] {
        if rng.percent(percent) {
            log.step(name);
            wire.send(&[untagged(code, &[])]).await;
            match wire.read_byte().await {
                Received::Message { tag: b'N', .. } => {}
                other => {
                    log.step(format!("<{other:?}"));
                    return false;
                }
            }
        }
    }
    let mut params = vec![("user", "fuzzer"), ("database", key)];
    if rng.percent(20) {
        params.push(("application_name", "fuzz"));
    }
    if rng.percent(10) {
        params.push(("options", "-c statement_timeout=2s -c search_path=public"));
    }
    log.step(format!("startup {key}"));
    wire.send(&[startup(PROTOCOL_3_0, &params)]).await;
    until_ready(wire, tally, log).await == Cycle::Ready
}

async fn broken_opening(wire: &mut Wire, tally: &Tally, rng: &mut Rng, log: &mut Log, key: &str) {
    let valid = startup(PROTOCOL_3_0, &[("user", "fuzzer"), ("database", key)]);
    let (name, bytes) = match rng.below(12) {
        0 => (
            "truncated startup",
            valid[..1 + rng.below(valid.len() - 1)].to_vec(),
        ),
        1 => (
            "startup 2.0",
            startup(0x0002_0000, &[("user", "u"), ("database", key)]),
        ),
        2 => (
            "startup 3.1",
            startup(0x0003_0001, &[("user", "u"), ("database", key)]),
        ),
        3 => ("startup 9.9", startup(0x0009_0009, &[("user", "u")])),
        4 => (
            "huge startup length",
            untagged_length(valid.clone(), 0x7fff_fff0),
        ),
        5 => ("startup length 4", untagged_length(valid.clone(), 4)),
        6 => ("startup without terminator", {
            let shorter = valid[..valid.len() - 1].to_vec();
            let length = shorter.len() as u32;
            untagged_length(shorter, length)
        }),
        7 => (
            "startup without database",
            startup(PROTOCOL_3_0, &[("user", "u")]),
        ),
        8 => (
            "odd startup parameters",
            untagged(PROTOCOL_3_0, b"user\0u\0database\0"),
        ),
        9 => {
            let known = tally.backend_keys.lock().unwrap().back().copied();
            let (pid, secret) = known.unwrap_or((rng.next_u64() as u32, 7));
            ("CancelRequest", cancel_request(pid, secret))
        }
        10 => ("short CancelRequest", untagged(CANCEL_REQUEST, &[1, 2, 3])),
        _ => ("garbage opening", rng.bytes(64)),
    };
    log.step(name);
    wire.send(&[bytes]).await;
    // The proxy refuses or closes; read its answer briefly, then go.
    drain(wire, tally, log).await;
}

/// One step of an established session; false when the session is over.
async fn step(
    wire: &mut Wire,
    target: &Target,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
) -> bool {
    let weights = [30, 25, 4, 3, 3, 3, 4, 4, 3, 3, 3, 2, 2, 2];
    let mut choice = rng.weighted(&weights);
    if target.skip_known && (2..=4).contains(&choice) {
        choice = 0;
    }
    match choice {
        0 => simple(wire, target, tally, rng, log).await,
        1 => extended(wire, target, tally, rng, log).await,
        2 => failed_prepare_then_reset(wire, tally, rng, log).await,
        3 => {
            log.step("COPY FROM STDIN then hang up");
            wire.send(&[query("COPY items(name) FROM STDIN")]).await;
            if until_ready(wire, tally, log).await == Cycle::CopyIn {
                wire.send(&[copy_data(b"half a ro")]).await;
            }
            false
        }
        4 => {
            log.step("pg_sleep then hang up");
            wire.send(&[query("select pg_sleep(0.5)")]).await;
            false
        }
        5 => cancel_own_query(wire, target, tally, log).await,
        6 => {
            let message = random_message(rng);
            log.step(format!("random {:?}", message[0] as char));
            let sync_after = rng.percent(70);
            if sync_after {
                wire.send(&[message, sync()]).await;
                until_ready(wire, tally, log).await == Cycle::Ready
            } else {
                wire.send(&[message]).await;
                drain(wire, tally, log).await != Cycle::Closed
            }
        }
        7 => lying_length(wire, tally, rng, log).await,
        8 => {
            log.step("FunctionCall");
            let oid = *rng.pick(&[1397u32, 0, 1, 0xffff_ffff, 2101]);
            let args: &[&[u8]] = if rng.percent(50) { &[b"-5"] } else { &[] };
            wire.send(&[function_call(oid, args)]).await;
            until_ready(wire, tally, log).await == Cycle::Ready
        }
        9 => {
            log.step("PasswordMessage");
            wire.send(&[password("hunter2"), sync()]).await;
            until_ready(wire, tally, log).await == Cycle::Ready
        }
        10 => {
            let (name, message) = match rng.below(3) {
                0 => ("stray CopyData", copy_data(b"1\n")),
                1 => ("stray CopyDone", copy_done()),
                _ => ("stray CopyFail", copy_fail("no copy")),
            };
            log.step(name);
            wire.send(&[message, sync()]).await;
            until_ready(wire, tally, log).await == Cycle::Ready
        }
        11 => {
            log.step("Flush");
            wire.send(&[flush()]).await;
            drain(wire, tally, log).await != Cycle::Closed
        }
        12 => {
            log.step("Sync");
            wire.send(&[sync()]).await;
            until_ready(wire, tally, log).await == Cycle::Ready
        }
        _ => {
            let kind = if rng.percent(50) { b'S' } else { b'P' };
            log.step(format!("Close {} nosuch", kind as char));
            wire.send(&[named(b'C', kind, "nosuch"), sync()]).await;
            until_ready(wire, tally, log).await == Cycle::Ready
        }
    }
}

async fn simple(
    wire: &mut Wire,
    target: &Target,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
) -> bool {
    let mut sql = if target.rollback && rng.percent(3) {
        *rng.pick(ROLLBACK_ONLY_SQL)
    } else {
        *rng.pick(SIMPLE_SQL)
    };
    while (target.skip_known && known_trigger(sql)) || (target.rollback && ends_the_session(sql)) {
        sql = *rng.pick(SIMPLE_SQL);
    }
    log.step(format!("Q {sql:?}"));
    wire.send(&[query(sql)]).await;
    match until_ready(wire, tally, log).await {
        Cycle::Ready => true,
        Cycle::CopyIn => copy_in(wire, target.skip_known, tally, rng, log).await,
        _ => false,
    }
}

/// Inside COPY FROM STDIN: rows, then CopyDone, CopyFail, a stray message or a hang-up.
async fn copy_in(
    wire: &mut Wire,
    skip_known: bool,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
) -> bool {
    let rows = rng.below(4);
    let mut messages: Vec<Vec<u8>> = (0..rows)
        .map(|i| copy_data(format!("copied-{}-{i}\n", rng.next_u64()).as_bytes()))
        .collect();
    // Without Sync, "Query" and "hang-up" end the COPY in ways that break a rollback key today
    // (a Sync inside a simple-query COPY is ignored, so it ends in a hang-up too).
    let end = rng.below(if skip_known { 2 } else { 5 });
    log.step(format!(
        "{rows} CopyData then {}",
        ["CopyDone", "CopyFail", "Query", "Sync", "hang-up"][end]
    ));
    messages.push(match end {
        0 => copy_done(),
        1 => copy_fail("fuzz"),
        2 => query("select 1"),
        3 => sync(),
        _ => {
            wire.send(&messages).await;
            return false;
        }
    });
    wire.send(&messages).await;
    until_ready(wire, tally, log).await == Cycle::Ready
}

/// A pipeline of Parse/Bind/Describe/Execute units with names that may not exist, row limits,
/// and a Sync, a Flush, both, or nothing at the end.
async fn extended(
    wire: &mut Wire,
    target: &Target,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
) -> bool {
    let skip_known = target.skip_known;
    let units = 1 + rng.below(4);
    let mut messages = Vec::new();
    let mut syncs = 0;
    let mut shape = Vec::new();
    for _ in 0..units {
        let (mut sql, mut types) = *rng.pick(EXTENDED_SQL);
        while (skip_known && (known_trigger(sql) || sql.starts_with("COPY")))
            || (target.rollback && ends_the_session(sql))
        {
            (sql, types) = *rng.pick(EXTENDED_SQL);
        }
        let statement = if rng.percent(60) || (skip_known && parse_fails(sql)) {
            String::new()
        } else {
            format!("s{}", rng.below(3))
        };
        let portal = if rng.percent(70) {
            String::new()
        } else {
            format!("p{}", rng.below(2))
        };
        if rng.percent(85) {
            messages.push(parse(&statement, sql, types));
            shape.push(format!("P({statement:?},{sql:?})"));
        }
        if rng.percent(85) {
            let bound_statement = if rng.percent(8) {
                "unknown"
            } else {
                &statement
            };
            let count = if rng.percent(90) {
                sql.matches('$').count()
            } else {
                rng.below(3)
            };
            let params: Vec<Option<&[u8]>> = (0..count).map(|_| *rng.pick(PARAMS)).collect();
            let formats: &[&[u16]] = &[&[], &[0], &[1], &[7]];
            let result_formats = *rng.pick(formats);
            messages.push(bind(&portal, bound_statement, &params, result_formats));
            shape.push(format!("B({portal:?},{bound_statement:?})"));
        }
        if rng.percent(40) {
            let (kind, name) = if rng.percent(50) {
                (b'S', statement.as_str())
            } else {
                (b'P', portal.as_str())
            };
            messages.push(named(b'D', kind, name));
            shape.push(format!("D{}", kind as char));
        }
        if rng.percent(90) {
            let executed = if rng.percent(8) { "nosuch" } else { &portal };
            let max_rows = *rng.pick(&[0u32, 0, 1, 2, 10]);
            messages.push(execute(executed, max_rows));
            shape.push(format!("E({executed:?},{max_rows})"));
        }
        if rng.percent(15) {
            let kind = if rng.percent(50) { b'S' } else { b'P' };
            messages.push(named(b'C', kind, &statement));
            shape.push(format!("C{}", kind as char));
        }
        if rng.percent(50) {
            messages.push(sync());
            shape.push("S".into());
            syncs += 1;
        }
    }
    let sync_then_flush = if skip_known { 0 } else { 14 };
    let end = rng.weighted(&[60, 12, sync_then_flush, 14]);
    match end {
        0 => {
            messages.push(sync());
            shape.push("S".into());
            syncs += 1;
        }
        1 => {
            messages.push(flush());
            shape.push("H".into());
        }
        2 => {
            // psycopg's executemany ends its batch like this (issue 11, bug 2).
            messages.push(sync());
            messages.push(flush());
            shape.push("S H".into());
            syncs += 1;
        }
        _ => shape.push("(no Sync)".into()),
    }
    log.step(shape.join(" "));
    wire.send(&messages).await;
    for _ in 0..syncs {
        match until_ready(wire, tally, log).await {
            Cycle::Ready => {}
            Cycle::CopyIn => return copy_in(wire, skip_known, tally, rng, log).await,
            _ => return false,
        }
    }
    if syncs == 0 || end != 0 {
        return drain(wire, tally, log).await != Cycle::Closed;
    }
    true
}

/// Issue 11, bugs 1 and 4: a named Parse that fails, then a reset of the connection's
/// statements, then more work on the key.
async fn failed_prepare_then_reset(
    wire: &mut Wire,
    tally: &Tally,
    rng: &mut Rng,
    log: &mut Log,
) -> bool {
    let sql = *rng.pick(&["select * from nosuch", "selec 1"]);
    let reset = *rng.pick(&[
        "DISCARD ALL",
        "DEALLOCATE ALL",
        "DEALLOCATE dbsb_none",
        "select 1",
    ]);
    log.step(format!("failing named Parse {sql:?} then {reset:?}"));
    wire.send(&[
        parse("fuzz_s1", sql, &[]),
        bind("", "fuzz_s1", &[], &[]),
        execute("", 0),
        sync(),
    ])
    .await;
    if until_ready(wire, tally, log).await != Cycle::Ready {
        return false;
    }
    wire.send(&[query(reset)]).await;
    if until_ready(wire, tally, log).await != Cycle::Ready {
        return false;
    }
    wire.send(&[query("select 1")]).await;
    until_ready(wire, tally, log).await == Cycle::Ready
}

/// A query, and a CancelRequest for it on a second connection with this session's key data.
async fn cancel_own_query(wire: &mut Wire, target: &Target, tally: &Tally, log: &mut Log) -> bool {
    log.step("pg_sleep + CancelRequest");
    let keys = tally.backend_keys.lock().unwrap().back().copied();
    wire.send(&[query("select pg_sleep(0.3)")]).await;
    if let (Some((pid, secret)), Some(mut canceller)) =
        (keys, Wire::open(target.addr, target.read_timeout).await)
    {
        canceller.send(&[cancel_request(pid, secret)]).await;
        tally.messages.fetch_add(canceller.sent, Ordering::Relaxed);
        canceller.hang_up().await;
    }
    until_ready(wire, tally, log).await == Cycle::Ready
}

fn untagged_length(mut packet: Vec<u8>, length: u32) -> Vec<u8> {
    packet[0..4].copy_from_slice(&length.to_be_bytes());
    packet
}

/// Any frontend tag (and unknown ones) with a random or empty body.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    let tag = *rng.pick(b"QPBDESHCdcfFXpz\0\xff");
    let body = if rng.percent(30) {
        Vec::new()
    } else {
        rng.bytes(40)
    };
    frame(tag, &body)
}

/// A message whose length field lies: too long (the next message is swallowed), too short
/// (the rest is read as the next message), below 4, past the proxy's limit, or huge; then a
/// Sync, a brief read, and the session is over.
async fn lying_length(wire: &mut Wire, tally: &Tally, rng: &mut Rng, log: &mut Log) -> bool {
    let message = match rng.below(3) {
        0 => query("select 42"),
        1 => parse("", "select 42", &[]),
        _ => bind("", "", &[], &[]),
    };
    let honest = message.len() as u32 - 1;
    let length = match rng.below(6) {
        0 => honest + 1 + rng.below(8) as u32,
        1 => honest.saturating_sub(1 + rng.below(4) as u32),
        2 => rng.below(4) as u32,
        3 => 64 * 1024 * 1024 + 1,
        4 => 0x7fff_ffff,
        _ => 60 * 1024 * 1024,
    };
    log.step(format!(
        "{:?} with length {length} (honest {honest})",
        message[0] as char
    ));
    wire.send(&[with_length(message, length), sync()]).await;
    drain(wire, tally, log).await;
    false
}

async fn ending(wire: &mut Wire, tally: &Tally, rng: &mut Rng, log: &mut Log) {
    match rng.below(5) {
        0 | 1 => {
            log.step("Terminate");
            wire.send(&[terminate()]).await;
        }
        2 => log.step("hang-up"),
        3 => {
            log.step("hang-up mid-message");
            let message = query("select 'never finished'");
            let cut = 1 + rng.below(message.len() - 2);
            wire.send(&[message[..cut].to_vec()]).await;
        }
        _ => {
            log.step("garbage then hang-up");
            let garbage = rng.bytes(32);
            wire.send(&[garbage]).await;
            drain(wire, tally, log).await;
        }
    }
}
