//! Chaos under a running suite (issue 11): while a psycopg suite writes and checks rows on
//! several keys under `dbsandbox run`, one key's sandbox backend is terminated, `dbsandbox gc`
//! and `gc --force` run from another directory, and the daemon is killed with SIGKILL. The
//! suite's other keys must keep working through the backend kill and the `gc`, new keys must
//! still be served, the next start must reclaim everything (no clones of the dead daemon, no
//! orphan postmaster or daemon), and a user database on the same server must be untouched
//! (same checksum of its ordered contents) through all of it.

mod common;
use common::{client, kill_with_children, pid_alive, text};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbsandbox_control::ApiClient;
use serde_json::Value;

/// The suite: one thread per key (so a frozen key cannot stop the others) holds a connection,
/// inserts a row, checks the count on it and on a second, fresh connection (the code under
/// test), and appends `ROUND ok` or `ROUND <what went wrong>` to `status/KEY.log`. It ends
/// when the file `stop` appears.
const SUITE: &str = r#"
import os, sys, threading, time, psycopg

host, port = os.environ["DBSANDBOX_HOST"], os.environ["DBSANDBOX_PORT"]
os.makedirs("status", exist_ok=True)

def url(key):
    return f"postgresql://suite@{host}:{port}/{key}?connect_timeout=5"

def worker(key):
    log = open(f"status/{key}.log", "a", buffering=1)
    conn, expected, round_ = None, None, 0
    while not os.path.exists("stop"):
        round_ += 1
        try:
            if conn is None:
                conn = psycopg.connect(url(key), autocommit=True)
                expected = conn.execute("select count(*) from items").fetchone()[0]
            conn.execute("insert into items(name) values (%s)", (f"{key}-{round_}",))
            expected += 1
            held = conn.execute("select count(*) from items").fetchone()[0]
            with psycopg.connect(url(key), autocommit=True) as other:
                fresh = other.execute("select count(*) from items").fetchone()[0]
            if held == expected and fresh == expected:
                log.write(f"{round_} ok\n")
            else:
                log.write(f"{round_} wrong count: held connection {held}, fresh {fresh}, expected {expected}\n")
        except Exception as e:
            log.write(f"{round_} {type(e).__name__}: {' '.join(str(e).split())}\n")
            try:
                conn.close()
            except Exception:
                pass
            conn = None
        time.sleep(0.05)

threads = [threading.Thread(target=worker, args=(k,)) for k in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
"#;

const KEYS: [&str; 4] = ["chaos0", "chaos1", "chaos2", "chaos3"];
/// The key whose backend is terminated; the others must not notice.
const VICTIM: &str = "chaos0";

struct Project {
    dir: tempfile::TempDir,
    elsewhere: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
        std::fs::write(
            dir.path().join("dbsandbox.toml"),
            "migrations = \"migrations\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("migrations/0001_items.sql"),
            "create table items(id serial primary key, name text unique not null);\n\
             insert into items(name) values ('seed');",
        )
        .unwrap();
        std::fs::write(dir.path().join("suite.py"), SUITE).unwrap();
        Project {
            dir,
            elsewhere: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn dbsandbox_in(&self, dir: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbsandbox"));
        for (name, _) in std::env::vars() {
            if name.starts_with("DBSANDBOX_") {
                command.env_remove(name);
            }
        }
        command
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env("DBSANDBOX_CACHE_DIR", self.cache.path());
        command
    }

    fn dbsandbox(&self) -> Command {
        self.dbsandbox_in(self.dir.path())
    }

    /// `dbsandbox ARGS` from a directory that is not the project's, same cache.
    fn run_elsewhere(&self, args: &[&str]) -> std::process::Output {
        let out = self
            .dbsandbox_in(self.elsewhere.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dbsandbox {args:?} from another directory failed: {}",
            text(&out)
        );
        out
    }

    fn detach(&self) -> Value {
        let out = self
            .dbsandbox()
            .args(["serve", "--detach"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
    }

    fn status_log(&self, key: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join(format!("status/{key}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn server_record(&self) -> Value {
        let path = self.cache.path().join("servers/pg15/server.json");
        let path = if path.exists() {
            path
        } else {
            std::fs::read_dir(self.cache.path().join("servers"))
                .unwrap()
                .flatten()
                .map(|d| d.path().join("server.json"))
                .find(|p| p.exists())
                .expect("the daemon's cluster records its server")
        };
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// Pids of processes of this test's cache directory: (daemons, postmasters).
    fn processes(&self) -> (Vec<i32>, Vec<i32>) {
        let cache = self.cache.path().display().to_string();
        let mut daemons = Vec::new();
        let mut postmasters = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if !pid_alive(pid) || !args.iter().any(|a| a.contains(&cache)) {
                continue;
            }
            if args[0].ends_with("/postgres") {
                postmasters.push(pid);
            } else if args.iter().any(|a| a == "serve") {
                daemons.push(pid);
            }
        }
        (daemons, postmasters)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.path().join("stop"), "");
        let _ = self.dbsandbox().args(["stop", "--all"]).output();
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// dbsandbox's own (superuser) connection to the embedded server, over its Unix socket.
async fn admin(project: &Project, database: &str) -> tokio_postgres::Client {
    let endpoint = &project.server_record()["endpoint"];
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(endpoint["socket_dir"].as_str().unwrap())
        .port(endpoint["port"].as_u64().unwrap() as u16)
        .user(endpoint["user"].as_str().unwrap())
        .dbname(database);
    if let Some(password) = endpoint["password"].as_str() {
        config.password(password);
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("admin connection to the embedded server");
    tokio::spawn(connection);
    client
}

const USER_DATABASE: &str = "chaos_user_data";

async fn create_user_database(project: &Project) -> String {
    admin(project, "postgres")
        .await
        .batch_execute(&format!("CREATE DATABASE {USER_DATABASE}"))
        .await
        .unwrap();
    admin(project, USER_DATABASE)
        .await
        .batch_execute(
            "create table accounts(id int primary key, owner text not null, balance numeric);\
             insert into accounts select i, 'owner ' || i, i * 1.5 from generate_series(1, 200) i;\
             create sequence invoice_numbers start 1000;",
        )
        .await
        .unwrap();
    user_checksum(project).await
}

/// md5 of the user table's ordered contents and the sequence's state.
async fn user_checksum(project: &Project) -> String {
    let client = admin(project, USER_DATABASE).await;
    let row = client
        .query_one(
            "select (select md5(string_agg(id || ':' || owner || ':' || balance, ',' order by id)) \
                     from accounts) || ' ' || (select last_value || ':' || is_called \
                     from invoice_numbers)",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Lines each key logged so far.
fn progress(project: &Project) -> BTreeMap<&'static str, usize> {
    KEYS.iter()
        .map(|k| (*k, project.status_log(k).len()))
        .collect()
}

/// Waits until each of `keys` logged `rounds` more rounds after `since`, all `ok`; on a
/// failed round or no progress within 60 s, says which key and shows its log.
async fn keys_keep_working(
    project: &Project,
    keys: &[&str],
    since: &BTreeMap<&'static str, usize>,
    rounds: usize,
    after: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        for key in keys {
            let log = project.status_log(key);
            let new = &log[since[key].min(log.len())..];
            if let Some(bad) = new.iter().find(|line| !line.ends_with(" ok")) {
                return Err(format!(
                    "after {after}, key {key} of the suite failed a round: {bad:?}\n  its log \
                     since then: {:?}",
                    new.iter().rev().take(10).rev().collect::<Vec<_>>()
                ));
            }
            done &= new.len() >= rounds;
        }
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            let state: Vec<_> = keys
                .iter()
                .map(|k| (k, project.status_log(k).len() - since[k]))
                .collect();
            return Err(format!(
                "after {after}, the suite's keys made no progress for 60 s (rounds done per \
                 key: {state:?}; a key that froze)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A brand-new key at `url` (through a run's proxy, or acquired through the API): its clone
/// must exist and hold the template's seed row.
async fn new_key_works(url: &str, key: &str, after: &str) -> Result<(), String> {
    let attempt = async {
        let client = connect(url).await?;
        let count: i64 = client
            .query_one("select count(*) from items", &[])
            .await?
            .get(0);
        Ok::<i64, tokio_postgres::Error>(count)
    };
    match tokio::time::timeout(Duration::from_secs(30), attempt).await {
        Ok(Ok(1)) => Ok(()),
        Ok(Ok(n)) => Err(format!(
            "after {after}, the new key {key} has {n} rows in items, not 1"
        )),
        Ok(Err(e)) => Err(format!(
            "after {after}, a new key ({key}) is not served: {e:?}"
        )),
        Err(_) => Err(format!(
            "after {after}, a new key ({key}) got no answer within 30 s"
        )),
    }
}

async fn database_exists(project: &Project, name: &str) -> bool {
    admin(project, "postgres")
        .await
        .query_opt("select 1 from pg_database where datname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

fn wait_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) is still alive"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_suite(project: &Project) -> Child {
    project
        .dbsandbox()
        .args(["run", "-q", "--port", "0", "--", "python3", "suite.py"])
        .args(KEYS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn clone_databases(status: &Value) -> Vec<Value> {
    status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|db| db["kind"] == "clone")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_survives_a_killed_backend_and_gc_and_a_killed_daemon_is_reclaimed() {
    let project = Project::new();
    let daemon = project.detach();
    let daemon_pid = daemon["pid"].as_i64().unwrap() as i32;
    let api = client(&daemon);
    let postmaster = project.server_record()["postgres_pid"].as_i64().unwrap() as i32;
    let checksum = create_user_database(&project).await;

    let mut run = start_suite(&project);
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_proxy = loop {
        let runs = api.get("/v1/runs").await.unwrap();
        if let Some(proxy) = runs.body["runs"][0]["proxy"].as_str() {
            break proxy.to_string();
        }
        assert!(Instant::now() < deadline, "the run did not open its scope");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run_url = |key: &str| format!("postgres://fresh@{run_proxy}/{key}");
    let none: BTreeMap<&'static str, usize> = KEYS.iter().map(|k| (*k, 0)).collect();
    keys_keep_working(&project, &KEYS, &none, 3, "the suite's start")
        .await
        .unwrap();
    let others: Vec<&str> = KEYS.iter().copied().filter(|k| *k != VICTIM).collect();
    // Failures of the steps before the crash, reported together with the crash's.
    let mut failures: Vec<String> = Vec::new();

    // 1. The victim key's sandbox backend is terminated, as an admin or a driver's test would.
    let sandbox = api.get(&format!("/v1/sandboxes/{VICTIM}")).await.unwrap();
    assert_eq!(sandbox.status, 200, "{:?}", sandbox.body);
    let clone = sandbox.body["database"].as_str().unwrap().to_string();
    let terminated: i64 = admin(&project, "postgres")
        .await
        .query_one(
            "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity \
             where datname = $1) t",
            &[&clone],
        )
        .await
        .unwrap()
        .get(0);
    assert!(terminated >= 1, "no backend of {clone} to terminate");
    let since = progress(&project);
    failures.extend(
        keys_keep_working(
            &project,
            &others,
            &since,
            5,
            "pg_terminate_backend of another key's sandbox backend",
        )
        .await
        .err(),
    );
    // What the victim's own connections saw (informative: a broken key may fail its rounds,
    // as long as it says so).
    let victim_log = project.status_log(VICTIM);
    eprintln!(
        "the victim key's rounds after its backend was terminated: {:?}",
        &victim_log[since[VICTIM].min(victim_log.len())..]
    );

    // 2. gc from another directory, while the daemon runs: nothing in use may go.
    let template = daemon["template"]["name"].as_str().unwrap().to_string();
    let since = progress(&project);
    let gc = project.run_elsewhere(&["gc"]);
    eprintln!(
        "gc while the suite runs: {}",
        String::from_utf8_lossy(&gc.stdout)
    );
    if !database_exists(&project, &template).await {
        failures.push(format!(
            "`dbsandbox gc` (no --force) from another directory dropped {template}, the \
             template the running daemon uses (issue 11, bug 9); gc said: {}",
            String::from_utf8_lossy(&gc.stdout).trim()
        ));
    }
    let after_gc = "`dbsandbox gc` from another directory";
    failures.extend(
        keys_keep_working(&project, &others, &since, 5, after_gc)
            .await
            .err(),
    );
    failures.extend(
        new_key_works(&run_url("fresh_after_gc"), "fresh_after_gc", after_gc)
            .await
            .err(),
    );

    // 3. gc --force: what the daemon used may go, but the daemon must notice and serve new keys.
    let gc = project.run_elsewhere(&["gc", "--force"]);
    eprintln!(
        "gc --force while the suite runs: {}",
        String::from_utf8_lossy(&gc.stdout)
    );
    failures.extend(
        new_key_works(
            &run_url("fresh_after_force"),
            "fresh_after_force",
            "`dbsandbox gc --force` from another directory (issue 11, bug 9: the daemon must \
             notice that its template or clones vanished and rebuild)",
        )
        .await
        .err(),
    );
    if user_checksum(&project).await != checksum {
        failures.push("the user database changed while the suite ran".into());
    }

    // 4. kill -9 of the daemon: the run ends; everything must be reclaimed by the next start.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_gone(daemon_pid, "the SIGKILLed daemon");
    std::fs::write(project.dir.path().join("stop"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while run.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if run.try_wait().unwrap().is_none() {
        kill_with_children(&mut run);
        panic!(
            "`dbsandbox run` did not end within 30 s of its daemon's SIGKILL and the suite's end"
        );
    }

    // gc again from elsewhere, with no daemon alive: the user database must survive it too.
    project.run_elsewhere(&["gc"]);
    project.run_elsewhere(&["gc", "--force"]);

    let next = project.detach();
    assert_eq!(next["started"], true, "a new daemon starts: {next}");
    let next_pid = next["pid"].as_i64().unwrap();
    let next_api = client(&next);
    let acquired = next_api
        .post(
            "/v1/sandboxes",
            &serde_json::json!({"key": "fresh_after_restart"}),
        )
        .await
        .unwrap();
    if acquired.status == 201 {
        failures.extend(
            new_key_works(
                acquired.body["url"].as_str().unwrap(),
                "fresh_after_restart",
                "the next start",
            )
            .await
            .err(),
        );
    } else {
        failures.push(format!(
            "after the next start, acquiring a key failed: HTTP {} {:?}",
            acquired.status, acquired.body
        ));
    }
    failures.extend(reclaimed(&project, &next_api, next_pid).await.err());
    let (daemons, postmasters) = project.processes();
    if daemons != vec![next_pid as i32] {
        failures.push(format!(
            "after the next start, daemons of this cache directory: {daemons:?}; expected only \
             the new one ({next_pid}; the killed one was {daemon_pid})"
        ));
    }
    let current = project.server_record()["postgres_pid"].as_i64().unwrap() as i32;
    if postmasters != vec![current] {
        failures.push(format!(
            "after the next start, postmasters of this cache directory: {postmasters:?}; \
             expected only the current server's ({current}; the killed daemon's was \
             {postmaster})"
        ));
    }
    if user_checksum(&project).await != checksum {
        failures.push(
            "the user database changed through the crash, the gc runs and the next start".into(),
        );
    }
    assert!(
        failures.is_empty(),
        "chaos under a running suite: {} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Within 30 s of the next start: no clone of another daemon is left, and no more clones than
/// the pool's target plus the one key the test holds.
async fn reclaimed(project: &Project, api: &ApiClient, daemon_pid: i64) -> Result<(), String> {
    let target_size = api.get("/v1/pool").await.unwrap().body["target_size"]
        .as_u64()
        .unwrap() as usize;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = project
            .dbsandbox()
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", text(&status));
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        let clones = clone_databases(&status);
        let foreign: Vec<&Value> = clones
            .iter()
            .filter(|db| db["owner_pid"].as_i64() != Some(daemon_pid))
            .collect();
        if foreign.is_empty() && clones.len() <= target_size + 1 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "30 s after the next start, clones not reclaimed: {} clones for a pool of \
                 {target_size} + 1 key, {} not owned by the new daemon (pid {daemon_pid}): \
                 {foreign:#?}",
                clones.len(),
                foreign.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
