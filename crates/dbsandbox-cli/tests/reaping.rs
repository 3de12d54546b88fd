//! What dead or forgetful clients leave behind is reaped by a live daemon within seconds, not
//! at the next start: a killed `run --no-daemon`'s private cluster and record, a run opened
//! without an owner, a clone a dead creator left unmarked (once no creator holds its lock); the
//! pool shrugs off user code that terminates every backend; and the loopback API needs the token
//! that only the daemon's owner can read.

mod common;
use common::{client, connect, items, kill_with_children, pid_alive, text, Project};

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dbsandbox_control::ApiClient;
use serde_json::{json, Value};

/// Polls `done` every 100 ms until it holds; panics with `what` after 20 s.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_no_daemon_runs_cluster_and_record_are_reaped_by_a_live_daemon() {
    let project = Project::new();
    // Runs beside a daemon share its server; a run gets a private cluster only when a dbsandbox
    // from before shared servers holds the shared cluster alone. That holder is played here by
    // an exclusive lock, so the daemon and the run below each get a private cluster.
    let status = project.dbsandbox().arg("status").output().unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let shared = std::fs::read_dir(project.cache.path().join("servers"))
        .unwrap()
        .flatten()
        .next()
        .expect("the shared cluster")
        .path();
    let lock = std::fs::File::create(shared.join("server.lock")).unwrap();
    let _older = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    project.detach();
    let mut run = project
        .dbsandbox()
        .args([
            "run",
            "-q",
            "--no-daemon",
            "--port",
            "0",
            "--",
            "sleep",
            "600",
        ])
        .spawn()
        .unwrap();
    let private_root = project.cache.path().join("private");
    let record = |pid: u32| -> Option<PathBuf> {
        project
            .records()
            .into_iter()
            .find(|p| p.to_string_lossy().contains(&format!(".run-{pid}.json")))
    };
    let pid = run.id();
    eventually("the run did not publish its record", || {
        record(pid).is_some()
    });
    // private/<pid>-…: the run's own, not the daemon's
    let cluster: PathBuf = std::fs::read_dir(&private_root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{pid}-")))
        })
        .expect("the run has a private cluster");
    let postmaster: i32 = std::fs::read_to_string(cluster.join("data/postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(postmaster));

    kill_with_children(&mut run);
    eventually("the dead run's server still runs", || {
        !pid_alive(postmaster)
    });
    eventually("the dead run's cluster is still there", || {
        !cluster.exists()
    });
    eventually("the dead run's record is still there", || {
        record(pid).is_none()
    });
}

#[tokio::test]
async fn a_run_opened_without_an_owner_is_closed_when_its_lease_runs_out() {
    let project = Project::new();
    let api = client(&project.detach());
    let opened = api
        .post("/v1/runs", &json!({"lease_seconds": 1}))
        .await
        .unwrap();
    assert_eq!(opened.status, 201, "{:?}", opened.body);
    assert_eq!(opened.body["lease_seconds"], 1, "{:?}", opened.body);
    let forever = api.post("/v1/runs", &json!({})).await.unwrap();
    assert_eq!(forever.status, 201, "{:?}", forever.body);
    assert!(
        forever.body["lease_seconds"].as_u64().is_some(),
        "a run without an owner always has a lease: {:?}",
        forever.body
    );
    let id = opened.body["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = api.get("/v1/runs").await.unwrap().body;
        let open: Vec<&Value> = runs["runs"].as_array().unwrap().iter().collect();
        if !open.iter().any(|r| r["id"] == id.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "the run is still open: {runs}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_pool_keeps_refilling_after_user_code_terminates_every_backend() {
    let project = Project::new();
    let api = client(&project.detach_with(&["--pool-size", "2"]));
    let status = api.get("/v1/status").await.unwrap().body;
    // node-postgres's pool tests end every idle session on the server like this.
    let killed: i64 = connect(status["server"]["url"].as_str().unwrap())
        .await
        .query_one(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity \
             where pid <> pg_backend_pid() and backend_type = 'client backend'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed > 0, "the daemon holds connections to the server");
    for n in 0..5 {
        let acquired = api
            .post(
                "/v1/sandboxes",
                &json!({"key": format!("k{n}"), "isolation": "database"}),
            )
            .await
            .unwrap();
        assert_eq!(acquired.status, 201, "k{n}: {:?}", acquired.body);
        assert_eq!(items(acquired.body["url"].as_str().unwrap()).await, 1);
    }
}

#[tokio::test]
async fn the_loopback_api_needs_the_token_kept_in_the_owner_only_record() {
    let project = Project::new();
    let daemon = project.detach();
    let token = daemon["token"].as_str().expect("a token on loopback too");
    assert!(token.len() >= 32, "{token}");
    let api = daemon["api"].as_str().unwrap();
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");
    let anonymous = ApiClient::new(api, None);
    for path in ["/v1/sandboxes", "/v1/status", "/v1/runs"] {
        let refused = anonymous.get(path).await.unwrap();
        assert_eq!(refused.status, 401, "{path}: {:?}", refused.body);
    }
    let stop = anonymous.post("/v1/shutdown", &json!({})).await.unwrap();
    assert_eq!(stop.status, 401, "{:?}", stop.body);
    assert_eq!(anonymous.get("/v1/health").await.unwrap().status, 200);
    assert_eq!(
        client(&daemon).get("/v1/sandboxes").await.unwrap().status,
        200
    );

    for record in project.records() {
        let mode = std::fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", record.display());
        let text = std::fs::read_to_string(&record).unwrap();
        assert!(text.contains(token), "{text}");
    }
    let daemons = project.cache.path().join("daemons");
    let mode = std::fs::metadata(&daemons).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", daemons.display());

    // The CLI and `run`'s command find the token by themselves.
    let run = project
        .dbsandbox()
        .args(["run", "-q", "--port", "0", "--"])
        .args(["sh", "-c", "test -n \"$DBSANDBOX_TOKEN\" && echo ok"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "ok");
    let status = project
        .dbsandbox()
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        status["daemons"][0]["sandboxes"].is_array(),
        "status reads the daemon's sandboxes: {status}"
    );
}

/// A daemon killed while its `CREATE DATABASE` ran leaves its clone unmarked, and only when the
/// server finishes that copy, which may be after the next daemon's start-up reaping (CI saw one
/// kept for 30 s). A live daemon drops it once no creator holds its lock, and never while one
/// does.
#[tokio::test]
async fn a_clone_a_dead_creator_left_unmarked_after_the_daemon_started_is_reaped() {
    let project = Project::new();
    let daemon = project.detach_with(&["--pool-size", "1"]);
    let api = client(&daemon);
    let status = api.get("/v1/status").await.unwrap().body;
    let admin = connect(status["server"]["url"].as_str().unwrap()).await;
    let template = daemon["template"]["name"].as_str().unwrap().to_string();
    // dbsandbox_t_<project>_<fingerprint, 16 hex>: a clone's name carries its first 10.
    let fingerprint = template.rsplit('_').next().unwrap();
    let orphan = format!("dbsandbox_c_{}_0123456789ab", &fingerprint[..10]);
    let exists = async |name: &str| -> bool {
        admin
            .query_one(
                "select count(*) = 1 from pg_database where datname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0)
    };

    // A creator still alive: it holds the creator lock from before its CREATE DATABASE until
    // the clone is marked.
    let creator = connect(status["server"]["url"].as_str().unwrap()).await;
    creator
        .execute(
            "select pg_advisory_lock($1, hashtext($2))",
            &[&dbsandbox_pool::CLONE_LOCK_CLASS, &orphan],
        )
        .await
        .unwrap();
    for name in [orphan.as_str(), "dbsandbox_c_not_ours"] {
        admin
            .batch_execute(&format!("create database {name} template {template}"))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        exists(&orphan).await,
        "a clone whose creator holds its lock was dropped"
    );

    // The creator's backend ends (its client was killed): nothing marks the clone now.
    drop(creator);
    let deadline = Instant::now() + Duration::from_secs(20);
    while exists(&orphan).await {
        assert!(
            Instant::now() < deadline,
            "{orphan}, unmarked with no creator, was kept for 20 s by a running daemon"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        exists("dbsandbox_c_not_ours").await,
        "a database that only looks like ours was dropped"
    );
    let recoveries = api.get("/v1/status").await.unwrap().body["daemon"]["recoveries"].to_string();
    assert!(recoveries.contains(&orphan), "{recoveries}");
}
