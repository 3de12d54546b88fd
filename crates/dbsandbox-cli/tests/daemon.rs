//! The daemon end to end: racing starters get one daemon, `run` attaches to it, sandboxes of a
//! dead owner are reclaimed, an edited migration gives a new template, idle daemons exit, and
//! `stop` leaves nothing running.

mod common;
use common::{client, kill_with_children, pid_alive, text, Project};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbsandbox_control::ApiClient;
use serde_json::{json, Value};

async fn count_items(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("select count(*) from items", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn racing_starters_get_one_daemon_that_run_attaches_to_and_stop_ends() {
    let project = Project::new();
    let starters: Vec<_> = (0..4)
        .map(|_| {
            project
                .dbsandbox()
                .args(["serve", "--detach"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let answers: Vec<Value> = starters
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            serde_json::from_slice(&out.stdout).unwrap()
        })
        .collect();
    let pids: std::collections::BTreeSet<u64> =
        answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 1, "one daemon for all starters: {answers:?}");
    let started = answers.iter().filter(|a| a["started"] == true).count();
    assert_eq!(started, 1, "exactly one starter started it: {answers:?}");
    for answer in &answers {
        assert_eq!(
            answer["api_version"],
            dbsandbox_control::API_VERSION,
            "{answer}"
        );
    }
    let health = ApiClient::new(answers[0]["api"].as_str().unwrap(), None)
        .get("/v1/health")
        .await
        .unwrap();
    assert_eq!(health.body["api_version"], dbsandbox_control::API_VERSION);
    assert_eq!(project.records().len(), 1);

    let env_file = project.path().join("env.txt");
    let run = project
        .dbsandbox()
        .args(["run", "--"])
        .args([
            "sh",
            "-c",
            "echo \"$DBSANDBOX_URL $DBSANDBOX_RUN $DATABASE_URL\" > env.txt",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("daemon attached (pid {})", answers[0]["pid"])),
        "{stderr}"
    );
    let env = std::fs::read_to_string(&env_file).unwrap();
    let parts: Vec<&str> = env.split_whitespace().collect();
    assert_eq!(parts[0], answers[0]["api"].as_str().unwrap(), "{env}");
    assert!(parts[1].starts_with('r'), "{env}");
    assert!(
        parts[2].starts_with("postgres://dbsandbox@127.0.0.1:"),
        "{env}"
    );
    let runs = client(&answers[0]).get("/v1/runs").await.unwrap();
    assert_eq!(runs.body["runs"], json!([]), "the run's scope is closed");

    let server_json = std::fs::read_dir(project.cache.path().join("servers"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("server.json"))
        .find(|p| p.exists())
        .expect("the daemon's cluster records its server");
    let record: Value = serde_json::from_slice(&std::fs::read(&server_json).unwrap()).unwrap();
    let postgres_pid = record["postgres_pid"].as_i64().unwrap() as i32;
    assert!(pid_alive(postgres_pid));

    let stop = project.dbsandbox().arg("stop").output().unwrap();
    assert!(stop.status.success(), "{}", text(&stop));
    assert!(project.records().is_empty(), "the record is removed");
    assert!(!pid_alive(answers[0]["pid"].as_i64().unwrap() as i32));
    assert!(!pid_alive(postgres_pid), "the daemon's server is stopped");
    let again = project.dbsandbox().arg("stop").output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).contains("no dbsandbox daemon"));
}

#[tokio::test]
async fn leases_of_a_dead_process_are_released_and_drift_builds_a_new_template() {
    let project = Project::new();
    let daemon = project.detach();
    let api = client(&daemon);

    let mut owner = Command::new("sleep").arg("600").spawn().unwrap();
    let acquired = api
        .post(
            "/v1/sandboxes",
            &json!({"key": "owned", "owner_pid": owner.id(), "isolation": "database"}),
        )
        .await
        .unwrap();
    assert_eq!(acquired.status, 201, "{:?}", acquired.body);
    let url = acquired.body["url"].as_str().unwrap().to_string();
    assert_eq!(count_items(&url).await, 1);
    let conflict = api
        .post("/v1/sandboxes", &json!({"key": "owned"}))
        .await
        .unwrap();
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.body["error"]["code"], "key_in_use");

    owner.kill().unwrap();
    owner.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = api.get("/v1/sandboxes").await.unwrap();
        if list.body["sandboxes"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not reclaimed: {:?}", list.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let before = daemon["template"]["fingerprint"].clone();
    std::fs::write(
        project.path().join("migrations/0002_more.sql"),
        "insert into items(name) values ('second');",
    )
    .unwrap();
    let after = project.detach();
    assert_eq!(after["pid"], daemon["pid"], "the same daemon");
    assert_ne!(after["template"]["fingerprint"], before, "drift is noticed");
    let fresh = api
        .post("/v1/sandboxes", &json!({"key": "fresh"}))
        .await
        .unwrap();
    assert_eq!(fresh.status, 201, "{:?}", fresh.body);
    assert_eq!(
        count_items(fresh.body["url"].as_str().unwrap()).await,
        2,
        "new sandboxes come from the new template"
    );
}

#[test]
fn an_idle_daemon_exits_by_itself() {
    let project = Project::new();
    let out = project
        .dbsandbox()
        .args(["serve", "--detach", "--idle-timeout", "2s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let daemon: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = daemon["pid"].as_i64().unwrap() as i32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "the idle daemon is still running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(project.records().is_empty(), "it removed its record");
}

#[tokio::test]
async fn off_loopback_the_api_needs_the_token_and_the_proxy_a_password() {
    let project = Project::new();
    let out = project
        .dbsandbox()
        .args([
            "serve",
            "--detach",
            "--listen",
            "0.0.0.0",
            "--password",
            "s3cret",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let daemon: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = daemon["token"]
        .as_str()
        .expect("a token is made")
        .to_string();
    assert!(token.len() >= 32, "{token}");
    let api = daemon["api"]
        .as_str()
        .unwrap()
        .replace("0.0.0.0", "127.0.0.1");

    let anonymous = ApiClient::new(&api, None);
    let refused = anonymous.get("/v1/sandboxes").await.unwrap();
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["error"]["code"], "unauthorized");
    assert_eq!(anonymous.get("/v1/health").await.unwrap().status, 200);
    let wrong = ApiClient::new(&api, Some("nope".into()));
    assert_eq!(wrong.get("/v1/pool").await.unwrap().status, 401);

    let allowed = ApiClient::new(&api, Some(token));
    let acquired = allowed
        .post("/v1/sandboxes", &json!({"key": "remote"}))
        .await
        .unwrap();
    assert_eq!(acquired.status, 201, "{:?}", acquired.body);
    let url = acquired.body["url"]
        .as_str()
        .unwrap()
        .replace("0.0.0.0", "127.0.0.1");
    assert!(
        tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .is_err(),
        "no password, no connection"
    );
    let with_password = url.replace("dbsandbox@", "dbsandbox:s3cret@");
    assert_eq!(count_items(&with_password).await, 1);
}

#[test]
fn a_killed_daemon_is_replaced_and_its_clones_reclaimed() {
    let project = Project::new();
    let first = project.detach();
    let pid = first["pid"].as_i64().unwrap() as i32;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let acquired = client(&first)
            .post("/v1/sandboxes", &json!({"key": "held"}))
            .await
            .unwrap();
        assert_eq!(acquired.status, 201);
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }

    let second = project.detach();
    assert_ne!(second["pid"], first["pid"]);
    assert_eq!(
        second["started"], true,
        "the stale record is not attached to"
    );
    let status = project
        .dbsandbox()
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let clones = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|db| db["kind"] == "clone");
    for db in clones {
        assert_ne!(
            db["owner_pid"],
            json!(pid),
            "a clone of the killed daemon survived: {db}"
        );
    }
    let daemons = status["daemons"].as_array().unwrap();
    assert_eq!(daemons.len(), 1, "{status}");
    assert_eq!(daemons[0]["pid"], second["pid"]);
}

#[tokio::test]
async fn a_sandbox_reports_the_tables_it_wrote_since_its_last_reset() {
    let project = Project::new();
    let daemon = project.detach();
    let api = client(&daemon);
    for isolation in ["rollback", "database"] {
        let key = format!("tables-{isolation}");
        let acquired = api
            .post(
                "/v1/sandboxes",
                &json!({"key": key, "isolation": isolation}),
            )
            .await
            .unwrap();
        assert_eq!(acquired.status, 201, "{:?}", acquired.body);
        let (db, connection) = tokio_postgres::connect(
            acquired.body["url"].as_str().unwrap(),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        db.batch_execute(
            "begin; insert into items(name) values ('a'), ('b'); commit; \
             create table extra(x int); insert into extra values (1)",
        )
        .await
        .unwrap();
        drop(db);
        let expected = json!([
            {"table": "public.extra", "rows": 1},
            {"table": "public.items", "rows": 3},
        ]);
        // A database key's counters reach PostgreSQL's statistics within about a second.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let one = api.get(&format!("/v1/sandboxes/{key}")).await.unwrap();
            assert_eq!(one.status, 200, "{:?}", one.body);
            if one.body["tables"] == expected {
                assert!(one.body["stats"]["statements"].as_u64().is_some());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{isolation}: tables {} (expected {expected})",
                one.body["tables"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let reset = api
            .post(&format!("/v1/sandboxes/{key}/reset"), &json!({}))
            .await
            .unwrap();
        assert_eq!(reset.status, 200, "{:?}", reset.body);
        let after = api.get(&format!("/v1/sandboxes/{key}")).await.unwrap();
        assert_eq!(after.body["tables"], json!([]), "{isolation} after reset");
    }
}

#[tokio::test]
async fn the_scope_of_a_killed_run_is_closed_and_its_clones_returned() {
    let project = Project::new();
    let daemon = project.detach();
    let api = client(&daemon);
    let mut run = project
        .dbsandbox()
        .args(["run", "-q", "--port", "0", "--", "sleep", "600"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let proxy = loop {
        let runs = api.get("/v1/runs").await.unwrap();
        if let Some(proxy) = runs.body["runs"][0]["proxy"].as_str() {
            break proxy.to_string();
        }
        assert!(Instant::now() < deadline, "the run did not open its scope");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        count_items(&format!("postgres://dbsandbox@{proxy}/leaky")).await,
        1
    );
    let leased = |pool: &Value| pool["leased"].as_u64().unwrap();
    let pool = api.get("/v1/pool").await.unwrap().body;
    assert_eq!(leased(&pool), 1, "{pool}");

    kill_with_children(&mut run); // SIGKILL: the run cannot close its scope
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = api.get("/v1/runs").await.unwrap().body;
        let pool = api.get("/v1/pool").await.unwrap().body;
        if runs["runs"] == json!([]) && leased(&pool) == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not reclaimed: {runs} {pool}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The postmasters running on clusters under `cache`: postgres processes whose command line
/// names a data directory there and whose parent is not a postgres process (a backend shares
/// its postmaster's command line for a moment after the fork).
fn postmasters_under(cache: &Path) -> Vec<i32> {
    let needle = format!("-D\0{}", cache.display());
    let stat = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let is_postgres = |pid: i32| stat(pid).contains("(postgres)");
    let parent = |pid: i32| {
        let stat = stat(pid);
        let after_name = stat.rsplit(')').next().unwrap_or("").to_string();
        after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
            .unwrap_or(0)
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .filter(|&pid| is_postgres(pid) && !is_postgres(parent(pid)) && pid_alive(pid))
        .collect()
}

/// A sandbox of the daemon `detached`; its URL.
async fn acquire(detached: &Value, key: &str) -> Result<String, String> {
    let reply = client(detached)
        .post("/v1/sandboxes", &json!({ "key": key }))
        .await
        .map_err(|e| e.to_string())?;
    match reply.body["url"].as_str() {
        Some(url) if reply.status == 201 => Ok(url.to_string()),
        _ => Err(format!("{}: {:?}", reply.status, reply.body)),
    }
}

#[tokio::test]
async fn two_projects_daemons_share_one_server_each_with_its_own_template() {
    let first = Project::new();
    let second = Project::new();
    let in_first_cache = |project: &Project| {
        let mut command = project.dbsandbox();
        command.env("DBSANDBOX_CACHE_DIR", first.cache.path());
        command
    };
    let a = first.detach();
    let out = in_first_cache(&second)
        .args(["serve", "--detach"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(a["pid"], b["pid"], "a daemon per project");
    assert_ne!(
        a["template"]["name"], b["template"]["name"],
        "each project has its own template"
    );
    let postmasters = postmasters_under(first.cache.path());
    assert_eq!(postmasters.len(), 1, "one server: {postmasters:?}");

    let status = in_first_cache(&second)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let server = status["server"].as_str().unwrap();
    assert!(
        server.starts_with("embedded") && server.contains("shared"),
        "{server}"
    );
    let daemons = status["daemons"].as_array().unwrap();
    assert_eq!(daemons.len(), 2, "{status}");
    for daemon in daemons {
        assert_eq!(daemon["server"], status["server"], "{daemon}");
        assert!(daemon["template"]
            .as_str()
            .unwrap()
            .starts_with("dbsandbox_t_"));
    }

    let b_url = acquire(&b, "kept").await.unwrap();
    assert_eq!(count_items(&acquire(&a, "k").await.unwrap()).await, 1);
    let out = first.dbsandbox().arg("stop").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        count_items(&b_url).await,
        1,
        "the other project's daemon keeps working"
    );
    assert_eq!(postmasters_under(first.cache.path()), postmasters);

    let out = in_first_cache(&second).arg("stop").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        postmasters_under(first.cache.path()).is_empty(),
        "the last daemon to leave stops the server"
    );
}

#[test]
fn run_without_daemon_beside_a_daemon_attaches_to_its_server() {
    let project = Project::new();
    project.detach();
    let postmasters = postmasters_under(project.cache.path());
    assert_eq!(postmasters.len(), 1, "{postmasters:?}");
    // While it runs, no private cluster exists, and the daemon's server answers its sandbox.
    let private = project.cache.path().join("private");
    let out = project
        .dbsandbox()
        .args(["run", "--no-daemon", "--port", "0", "--"])
        .args(["sh", "-c"])
        .arg(format!(
            "test -z \"$(ls -A {} 2>/dev/null)\" && psql \"$DATABASE_URL\" -Atc 'select count(*) from items'",
            private.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains('1'),
        "{}",
        text(&out)
    );
    assert_eq!(
        postmasters_under(project.cache.path()),
        postmasters,
        "the run left the daemon's server running"
    );
}

#[tokio::test]
async fn a_killed_server_is_started_again_and_the_next_acquire_works() {
    let project = Project::new();
    let daemon = project.detach();
    let url = acquire(&daemon, "before").await.unwrap();
    assert_eq!(count_items(&url).await, 1);
    let postmasters = postmasters_under(project.cache.path());
    assert_eq!(postmasters.len(), 1, "{postmasters:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(postmasters[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();

    // A fresh key, acquired and queried, until the daemon has brought the server back.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let answered = async {
            let url = acquire(&daemon, &format!("after-{attempt}")).await?;
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let row = client
                .query_one("select count(*) from items", &[])
                .await
                .map_err(|e| e.to_string())?;
            Ok::<i64, String>(row.get(0))
        }
        .await;
        match answered {
            Ok(rows) => {
                assert_eq!(rows, 1);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = postmasters_under(project.cache.path());
    assert_eq!(restarted.len(), 1, "{restarted:?}");
    assert_ne!(restarted, postmasters, "a new postmaster");
}
