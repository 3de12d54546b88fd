//! `gc` beside a running daemon: it never drops what a live daemon uses (its template, its
//! pooled and leased clones), with `--force` too, from any directory; and a daemon whose
//! template or clones vanished anyway (a user dropped them) notices, rebuilds and says so.

mod common;
use common::{client, connect, items, text, Project};

use dbsandbox_control::ApiClient;
use serde_json::{json, Value};

/// Acquires a database key and checks its clone answers with the template's one seed row.
async fn acquire_and_use(api: &ApiClient, key: &str) -> Value {
    let acquired = api
        .post(
            "/v1/sandboxes",
            &json!({"key": key, "isolation": "database"}),
        )
        .await
        .unwrap();
    assert_eq!(acquired.status, 201, "{key}: {:?}", acquired.body);
    let url = acquired.body["url"].as_str().unwrap();
    assert_eq!(items(url).await, 1, "{key}");
    acquired.body
}

#[tokio::test]
async fn gc_from_another_directory_keeps_what_a_running_daemon_uses_even_with_force() {
    let project = Project::new();
    let daemon = project.detach_with(&["--pool-size", "1"]);
    let api = client(&daemon);
    let held = acquire_and_use(&api, "held").await;

    let elsewhere = tempfile::tempdir().unwrap();
    for args in [&["gc"][..], &["gc", "--force"][..]] {
        let gc = project
            .dbsandbox()
            .current_dir(elsewhere.path())
            .args(args)
            .output()
            .unwrap();
        assert!(gc.status.success(), "{args:?}: {}", text(&gc));
        // More keys than the pool holds: the refill must still find the template.
        for n in 0..3 {
            acquire_and_use(&api, &format!("{}-{n}", args.len())).await;
        }
        assert_eq!(
            items(held["url"].as_str().unwrap()).await,
            1,
            "{args:?}: the key held before gc keeps its clone"
        );
    }
    let run = project
        .dbsandbox()
        .args(["run", "-q", "--pool-size", "1", "--port", "0", "--"])
        .args([
            "sh",
            "-c",
            "psql -Atc 'select count(*) from items' \"$DATABASE_URL\"",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "1",
        "{}",
        text(&run)
    );
}

#[tokio::test]
async fn a_daemon_whose_template_and_clones_were_dropped_rebuilds_and_says_so() {
    let project = Project::new();
    let daemon = project.detach_with(&["--pool-size", "2"]);
    let api = client(&daemon);
    let held = acquire_and_use(&api, "held").await;
    let status = api.get("/v1/status").await.unwrap().body;
    let template = status["template"]["name"].as_str().unwrap().to_string();
    let server = connect(status["server"]["url"].as_str().unwrap()).await;
    // What a user's clean-up script does: drop every database that looks like ours.
    let ours: Vec<String> = server
        .query(
            "select datname from pg_database where datname like 'dbsandbox\\_%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ours.contains(&template), "{ours:?}");
    for name in &ours {
        server
            .batch_execute(&format!("drop database \"{name}\" with (force)"))
            .await
            .unwrap();
    }

    for n in 0..4 {
        acquire_and_use(&api, &format!("after-drop-{n}")).await;
    }
    let status = api.get("/v1/status").await.unwrap().body;
    let said = status["daemon"]["recoveries"].to_string();
    assert!(
        said.contains(&template) && said.contains("vanished"),
        "the daemon says what it rebuilt: {status}"
    );
    let refreshed = api.post("/v1/refresh", &json!({})).await.unwrap();
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.body);

    // A key's own clone is its state: the daemon says it is gone; a reset gives a fresh one.
    let clone = held["database"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = api.get("/v1/status").await.unwrap().body;
        if status["daemon"]["recoveries"].to_string().contains(clone) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not said: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let reset = api
        .post("/v1/sandboxes/held/reset", &json!({}))
        .await
        .unwrap();
    assert_eq!(reset.status, 200, "{:?}", reset.body);
    assert_eq!(items(held["url"].as_str().unwrap()).await, 1);
}

#[tokio::test]
async fn run_rebuilds_a_template_dropped_under_the_daemon_and_says_so() {
    let project = Project::new();
    let daemon = project.detach_with(&["--pool-size", "1"]);
    let api = client(&daemon);
    let status = api.get("/v1/status").await.unwrap().body;
    let template = status["template"]["name"].as_str().unwrap().to_string();
    connect(status["server"]["url"].as_str().unwrap())
        .await
        .batch_execute(&format!("drop database \"{template}\" with (force)"))
        .await
        .unwrap();
    let run = project
        .dbsandbox()
        .args(["run", "--pool-size", "1", "--port", "0", "--"])
        .args([
            "sh",
            "-c",
            "psql -Atc 'select count(*) from items' \"$DATABASE_URL\"",
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("daemon attached (pid {})", daemon["pid"])),
        "{}",
        text(&run)
    );
    assert!(stderr.contains("vanished"), "{}", text(&run));
    assert!(!stderr.contains("(reused)"), "{}", text(&run));
}
