//! Bad input is refused with exit code 2 and a clear message, whether `run`, `serve` or the
//! daemon a starter spawned finds it: listen addresses, passwords, ports, durations, the cache
//! directory. A closed stdout pipe ends a command quietly.

mod common;
use common::{client, text, Project};

use std::process::{Command, Output, Stdio};

use serde_json::json;

/// A loopback port held by this test for as long as the listener lives.
fn taken_port() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    (listener, port)
}

fn assert_exit_2(output: &Output, args: &[&str], expected: &str) {
    let all = text(output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {all}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains(expected),
        "{args:?}: expected {expected:?} in {all}"
    );
    assert!(!all.contains("panicked"), "{args:?}: {all}");
}

#[test]
fn bad_listen_password_port_duration_and_cache_dir_exit_2() {
    let project = Project::new();
    let (_held, port) = taken_port();
    let file = project.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let file = file.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--listen", "0.0.0.0", "--", "true"], "password"),
        (
            vec!["run", "--listen", "0.0.0.0", "--password", "", "--", "true"],
            "password",
        ),
        (vec!["serve", "--detach", "--listen", "0.0.0.0"], "password"),
        (
            vec!["serve", "--detach", "--listen", "0.0.0.0", "--password", ""],
            "password",
        ),
        (
            vec!["serve", "--detach", "--listen", "not-an-ip"],
            "not an IP",
        ),
        (
            vec!["run", "--listen", "not-an-ip", "--", "true"],
            "not an IP",
        ),
        (
            vec!["serve", "--detach", "--idle-timeout", "5x"],
            "idle timeout",
        ),
        (
            vec!["run", "--idle-timeout", "5x", "--", "true"],
            "idle timeout",
        ),
        (vec!["serve", "--api-port", &port], "in use"),
        (vec!["serve", "--detach", "--proxy-port", &port], "in use"),
        (vec!["--cache-dir", file, "status"], "not a directory"),
        // Last: it starts the project's daemon, which the cases above must not find running.
        (vec!["run", "--port", &port, "--", "true"], "in use"),
    ];
    for (args, expected) in cases {
        let output = project.dbsandbox().args(&args).output().unwrap();
        assert_exit_2(&output, &args, expected);
    }
}

#[tokio::test]
async fn the_api_refuses_an_empty_password_off_loopback_and_a_taken_port() {
    let project = Project::new();
    let daemon = project.detach();
    let api = client(&daemon);
    let empty = api
        .post("/v1/runs", &json!({"listen": "0.0.0.0", "password": ""}))
        .await
        .unwrap();
    assert_eq!(empty.status, 400, "{:?}", empty.body);
    let (_held, port) = taken_port();
    let port: u16 = port.parse().unwrap();
    let taken = api.post("/v1/runs", &json!({"port": port})).await.unwrap();
    assert_eq!(taken.status, 409, "{:?}", taken.body);
    assert_eq!(
        taken.body["error"]["code"], "port_in_use",
        "{:?}",
        taken.body
    );
    let runs = api.get("/v1/runs").await.unwrap();
    assert_eq!(runs.body["runs"], json!([]), "nothing was opened");
}

#[test]
fn a_failed_daemon_start_shows_its_own_error_not_the_log_of_earlier_ones() {
    let project = Project::new();
    let (_held, port) = taken_port();
    let first = project
        .dbsandbox()
        .args(["serve", "--detach", "--proxy-port", &port])
        .output()
        .unwrap();
    assert!(!first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("in use"), "{}", text(&first));

    std::fs::write(
        project.path().join("migrations/0002_bad.sql"),
        "create tabel nope(id int);",
    )
    .unwrap();
    let second = project
        .dbsandbox()
        .args(["serve", "--detach"])
        .output()
        .unwrap();
    let all = text(&second);
    assert_eq!(second.status.code(), Some(1), "{all}");
    assert!(all.contains("0002_bad.sql:1"), "{all}");
    assert!(!all.contains("in use"), "an earlier start's error: {all}");
}

/// Runs `command` with a stdout pipe whose reading end is already closed (`cmd | true`).
fn with_closed_stdout(mut command: Command) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_pipe_ends_commands_quietly() {
    let project = Project::new();
    for args in [
        &["status", "--json"][..],
        &["status"][..],
        &["gc", "--json"][..],
        &["stop"][..],
        &["explain", "--list"][..],
    ] {
        let mut command = project.dbsandbox();
        command.args(args);
        let output = with_closed_stdout(command);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert!(output.stderr.is_empty(), "{args:?}: {}", text(&output));
    }
}
