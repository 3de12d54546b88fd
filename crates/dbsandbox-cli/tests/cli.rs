//! The `dbsandbox` binary end to end, on the embedded server: the example suite both ways, the
//! environment and exit status of `run`, release and SIGTERM clean-up, recovery after kill -9,
//! refused keys, and set-up errors.

mod common;
use common::{kill_with_children, pid_alive, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn dbsandbox(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbsandbox"));
    command
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("DATABASE_URL");
    for (name, _) in std::env::vars() {
        if name.starts_with("DBSANDBOX_") {
            command.env_remove(name);
        }
    }
    // Each test's server lives in its own temporary cache directory, so runs keep everything in
    // their own process; the daemon has its own tests (tests/daemon.rs).
    command.env("DBSANDBOX_NO_DAEMON", "1");
    command
}

/// One control API request to the daemon of `record`, with its token, blocking (for tests that
/// are not async).
fn api_get(record: &serde_json::Value, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let authority = record["api"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://");
    let token = record["token"].as_str().unwrap_or_default();
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let reply = dbsandbox_control::client::parse_reply(&raw).unwrap();
    assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
    reply.body
}

/// The records of the live daemons (in-process ones of `run --no-daemon` included).
fn daemon_records(cache: &Path) -> Vec<serde_json::Value> {
    std::fs::read_dir(cache.join("daemons"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The sandbox `key` in `status --json`'s first daemon.
fn status_sandbox(json: &serde_json::Value, key: &str) -> serde_json::Value {
    json["daemons"][0]["sandboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["key"] == key)
        .cloned()
        .unwrap_or_else(|| panic!("no sandbox {key} in {json}"))
}

/// `dbsandbox status --json`, which must succeed.
fn status_json(cache: &Path) -> serde_json::Value {
    let status = dbsandbox(cache)
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    serde_json::from_slice(&status.stdout).unwrap()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn example_suite_fails_on_a_shared_database_and_passes_under_dbsandbox_in_random_order() {
    let example = repo_root().join("examples/pytest-shared");
    let shared = Command::new("bash")
        .arg(example.join("shared_db_fails.sh"))
        .output()
        .unwrap();
    assert!(
        shared.status.success(),
        "the suite must fail with one shared database:\n{}",
        text(&shared)
    );

    // Two workers, each on its own key (a rollback sandbox reset per test by one fixture line),
    // in three different random orders.
    let cache = tempfile::tempdir().unwrap();
    for seed in ["1", "2", "3"] {
        let output = dbsandbox(cache.path())
            .current_dir(&example)
            .args([
                "run", "--port", "0", "--", "python3", "-m", "pytest", "-n", "2", "-q",
            ])
            .args(["-p", "no:cacheprovider", "-p", "randomly"])
            .arg(format!("--randomly-seed={seed}"))
            .output()
            .unwrap();
        let all = text(&output);
        assert!(output.status.success(), "seed {seed}: {all}");
        assert!(all.contains("17 passed"), "seed {seed}: {all}");
        assert!(
            all.contains("2 keys served (gw0, gw1)"),
            "seed {seed}: {all}"
        );
        assert!(all.contains("commits absorbed"), "seed {seed}: {all}");
    }
}

#[test]
fn run_exports_the_sandbox_environment_and_exits_with_the_command_status() {
    let cache = tempfile::tempdir().unwrap();
    let script = r#"case "$DATABASE_URL" in postgres://dbsandbox@127.0.0.1:$DBSANDBOX_PORT/default) ;; *) exit 90;; esac
test "$DBSANDBOX_HOST" = 127.0.0.1 || exit 91
test "$PGPORT" = "$DBSANDBOX_PORT" || exit 92
exit 7"#;
    let output = dbsandbox(cache.path())
        .args(["run", "--port", "0", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 keys served"), "{stderr}");
}

/// A run in the background with a long command, and its proxy address once it is ready.
struct BackgroundRun {
    child: std::process::Child,
    proxy_port: u16,
}

impl Drop for BackgroundRun {
    /// Ends the run the way a user would (SIGTERM), so its server does not outlive the test's
    /// temporary cache directory, where no later start would find and reclaim it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

impl BackgroundRun {
    fn start(cache: &Path, migrations: &Path) -> BackgroundRun {
        let mut child = dbsandbox(cache)
            .args(["run", "--port", "0", "--migrations"])
            .arg(migrations)
            .args(["--", "sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let proxy = loop {
            if Instant::now() > deadline {
                kill_with_children(&mut child);
                panic!("the run did not become ready");
            }
            std::thread::sleep(Duration::from_millis(20));
            let mine = daemon_records(cache)
                .into_iter()
                .find(|r| r["pid"] == child.id());
            let Some(record) = mine else {
                continue;
            };
            let runs = api_get(&record, "/v1/runs");
            if let Some(proxy) = runs["runs"][0]["proxy"].as_str() {
                break proxy.parse::<std::net::SocketAddr>().unwrap();
            }
        };
        BackgroundRun {
            child,
            proxy_port: proxy.port(),
        }
    }

    fn url(&self, key: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=whoever dbname={key}",
            self.proxy_port
        )
    }
}

fn migrations(dir: &Path) -> PathBuf {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(
        migrations.join("0001_items.sql"),
        "create table items(id serial primary key, name text unique not null);\ninsert into items(name) values ('seed');",
    )
    .unwrap();
    migrations
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn count_items(url: &str) -> i64 {
    connect(url)
        .await
        .query_one("select count(*) from items", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn keys_get_their_own_clone_release_gives_a_fresh_one_and_sigterm_cleans_up() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let mut run = BackgroundRun::start(cache.path(), &migrations(project.path()));

    let a = connect(&run.url("worker_a")).await;
    a.batch_execute("insert into items(name) values ('alice')")
        .await
        .unwrap();
    assert_eq!(
        count_items(&run.url("worker_a")).await,
        2,
        "a second connection of a key sees its writes"
    );
    assert_eq!(
        count_items(&run.url("worker-b")).await,
        1,
        "another key has its own clone"
    );

    // `dbsandbox reset KEY` rolls the key's sandbox back while its connection stays open.
    let reset = dbsandbox(cache.path())
        .args(["reset", "worker_a"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(
        count_items(&run.url("worker_a")).await,
        1,
        "the insert is gone after reset"
    );
    let unknown = dbsandbox(cache.path())
        .args(["reset", "no_such_key"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    drop(a);

    let json = status_json(cache.path());
    let leased = json["databases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["state"] == "leased")
        .count();
    assert_eq!(leased, 2, "{json}");
    let worker_a = status_sandbox(&json, "worker_a");
    assert_eq!(worker_a["stats"]["connections_total"], 3, "{json}");
    assert!(worker_a["stats"]["resets"].as_u64().unwrap() >= 1, "{json}");
    assert!(
        worker_a["stats"]["statements"].as_u64().unwrap() >= 3,
        "{json}"
    );
    assert_eq!(worker_a["isolation"], "rollback", "{json}");
    assert_eq!(
        worker_a["database"]
            .as_str()
            .map(|c| c.starts_with("dbsandbox_c_")),
        Some(true),
        "{json}"
    );

    let released = dbsandbox(cache.path())
        .args(["release", "worker_a"])
        .output()
        .unwrap();
    assert!(released.status.success(), "{}", text(&released));
    assert_eq!(
        count_items(&run.url("worker_a")).await,
        1,
        "after release the key gets a fresh clone"
    );
    let unknown = dbsandbox(cache.path())
        .args(["release", "nobody"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let exit = run.child.wait().unwrap();
    assert_eq!(
        exit.code(),
        Some(143),
        "SIGTERM ends the command, dbsandbox reports 128 + 15"
    );
    assert!(
        tokio_postgres::connect(&run.url("worker_a"), tokio_postgres::NoTls)
            .await
            .is_err(),
        "the proxy is gone"
    );
    assert!(
        daemon_records(cache.path()).is_empty(),
        "the run's daemon record is removed"
    );

    // Nothing but the template and the pristine spares stay on the server.
    let json = status_json(cache.path());
    for db in json["databases"].as_array().unwrap() {
        assert!(
            db["state"] == "ready" || db["state"] == "spare",
            "left behind: {db}"
        );
    }
}

#[tokio::test]
async fn bad_keys_are_refused_with_a_clear_error() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let run = BackgroundRun::start(cache.path(), &migrations(project.path()));
    for key in ["has space", "semi;colon", "x".repeat(49).as_str(), "é"] {
        let config = format!(
            "host=127.0.0.1 port={} user=u dbname='{key}'",
            run.proxy_port
        );
        let err = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .err()
            .expect("refused");
        let db = err.as_db_error().unwrap_or_else(|| panic!("{key}: {err}"));
        assert_eq!(db.code().code(), "3D000", "{key}");
        assert!(
            db.message()
                .contains("1 to 48 characters from A-Z, a-z, 0-9"),
            "{key}: {}",
            db.message()
        );
    }
    assert_eq!(
        count_items(&run.url("fine_key-1")).await,
        1,
        "the proxy still serves good keys"
    );
    drop(run);
}

/// `dbsandbox run --migrations DIR -- true`: a complete start and stop.
fn run_true(cache: &Path, migrations: &Path) -> Output {
    dbsandbox(cache)
        .args(["run", "--port", "0", "--migrations"])
        .arg(migrations)
        .args(["--", "true"])
        .output()
        .unwrap()
}

#[tokio::test]
async fn after_kill_9_the_next_start_stops_the_orphaned_server_and_reaps_its_clones() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let migrations = migrations(project.path());
    let mut run = BackgroundRun::start(cache.path(), &migrations);
    connect(&run.url("k"))
        .await
        .batch_execute("insert into items(name) values ('leak')")
        .await
        .unwrap();

    let server_json = std::fs::read_dir(cache.path().join("servers"))
        .unwrap()
        .flatten()
        .map(|d| d.path().join("server.json"))
        .find(|p| p.exists())
        .expect("the shared cluster records its server");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&server_json).unwrap()).unwrap();
    let postgres_pid = record["postgres_pid"].as_i64().unwrap() as i32;

    // SIGKILL of dbsandbox (no clean-up at all) and of its test command; the server it started
    // is its child too, and survives a `kill -9` of dbsandbox alone.
    common::kill_with_children_but(&mut run.child, &[postgres_pid]);
    assert!(
        pid_alive(postgres_pid),
        "the orphaned server is still running before the next start"
    );

    let next = run_true(cache.path(), &migrations);
    assert!(next.status.success(), "{}", text(&next));
    assert!(
        !pid_alive(postgres_pid),
        "the next start stopped the orphaned server"
    );

    let json = status_json(cache.path());
    for db in json["databases"].as_array().unwrap() {
        assert!(
            db["state"] != "leased" && db["state"] != "pooled",
            "not reaped: {db}"
        );
    }
}

#[test]
fn a_private_cluster_of_a_killed_run_is_removed_by_the_next_start() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let migrations = migrations(project.path());
    let first = run_true(cache.path(), &migrations);
    assert!(first.status.success(), "{}", text(&first));
    // A dbsandbox from before shared servers holds the shared cluster alone: runs get private ones.
    let shared = std::fs::read_dir(cache.path().join("servers"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let lock = std::fs::File::create(shared.join("server.lock")).unwrap();
    let _older = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    let mut victim = BackgroundRun::start(cache.path(), &migrations);
    let private_root = cache.path().join("private");
    let private: Vec<PathBuf> = std::fs::read_dir(&private_root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(private.len(), 1, "{private:?}");
    kill_with_children(&mut victim.child);
    assert!(private[0].exists());

    let next = run_true(cache.path(), &migrations);
    assert!(next.status.success(), "{}", text(&next));
    assert!(
        !private[0].exists(),
        "the dead run's private cluster was reclaimed"
    );
}

#[test]
fn set_up_errors_are_clear_and_exit_2() {
    let cache = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--pg-bin", "/nonexistent", "run", "--", "true"],
            "apt-get install postgresql",
        ),
        (
            &["--run-as", "no_such_user_x", "run", "--", "true"],
            "--run-as",
        ),
        (
            &["run", "--migrations", "/nonexistent/dir", "--", "true"],
            "does not exist",
        ),
        (
            &[
                "--server",
                "postgres://u@127.0.0.1:1/db",
                "run",
                "--",
                "true",
            ],
            "cannot connect",
        ),
    ];
    for (args, expected) in cases {
        let output = dbsandbox(cache.path()).args(args).output().unwrap();
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {all}");
        assert!(all.contains(expected), "{args:?}: {all}");
    }
}

#[test]
fn a_failing_migration_is_reported_with_file_and_line() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0001_ok.sql"), "create table a(id int);").unwrap();
    std::fs::write(
        dir.join("0002_bad.sql"),
        "create table b(id int);\ncreate tabel c(id int);",
    )
    .unwrap();
    let output = dbsandbox(cache.path())
        .args(["run", "--port", "0", "--migrations"])
        .arg(&dir)
        .args(["--", "true"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("0002_bad.sql:2") && all.contains("syntax error"),
        "{all}"
    );
}

/// Runs `script` (a shell command) under `dbsandbox run` with `args`, in `dir`.
fn run_script(cache: &Path, dir: &Path, args: &[&str], script: &str) -> Output {
    dbsandbox(cache)
        .current_dir(dir)
        .arg("run")
        .args(["--port", "0"])
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn migrate_command_and_seed_build_the_template() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("seed.sql"),
        "insert into notes(body) values ('seeded');",
    )
    .unwrap();
    let migrate = r#"psql -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c 'create table notes(id serial primary key, body text)'"#;
    let output = run_script(
        cache.path(),
        project.path(),
        &["--migrate-cmd", migrate, "--seed", "seed.sql"],
        r#"test "$(psql -tA -c 'select body from notes')" = seeded"#,
    );
    assert!(output.status.success(), "{}", text(&output));

    let failing = run_script(
        cache.path(),
        project.path(),
        &["--migrate-cmd", "exit 3"],
        "true",
    );
    let all = text(&failing);
    assert_eq!(failing.status.code(), Some(1), "{all}");
    assert!(all.contains("the migrate command `exit 3` failed"), "{all}");
}

#[test]
fn flags_beat_environment_beat_dbsandbox_toml() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    for (dir, table) in [
        ("from_file", "file_table"),
        ("from_env", "env_table"),
        ("from_flag", "flag_table"),
    ] {
        let dir = project.path().join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("0001.sql"),
            format!("create table {table}(id int);"),
        )
        .unwrap();
    }
    std::fs::write(
        project.path().join("dbsandbox.toml"),
        "migrations = \"from_file\"\n",
    )
    .unwrap();
    let sub = project.path().join("nested/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let has = |table: &str| format!("psql -tA -c 'select 1 from {table}'");

    // The nearest dbsandbox.toml above the current directory, its paths relative to itself.
    let output = run_script(cache.path(), &sub, &[], &has("file_table"));
    assert!(output.status.success(), "file: {}", text(&output));

    let mut command = dbsandbox(cache.path());
    let output = command
        .current_dir(&sub)
        .env("DBSANDBOX_MIGRATIONS", project.path().join("from_env"))
        .args(["run", "--port", "0", "--", "sh", "-c", &has("env_table")])
        .output()
        .unwrap();
    assert!(output.status.success(), "env over file: {}", text(&output));

    let mut command = dbsandbox(cache.path());
    let output = command
        .current_dir(project.path())
        .env("DBSANDBOX_MIGRATIONS", project.path().join("from_env"))
        .args([
            "run",
            "--port",
            "0",
            "--migrations",
            "from_flag",
            "--",
            "sh",
            "-c",
            &has("flag_table"),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "flag over env: {}", text(&output));

    std::fs::write(
        project.path().join("dbsandbox.toml"),
        "migratons = \"typo\"\n",
    )
    .unwrap();
    let output = run_script(cache.path(), project.path(), &[], "true");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("migratons"), "{}", text(&output));
}

#[tokio::test]
async fn an_external_server_is_used_and_left_as_it_was() {
    let server_cache = tempfile::tempdir().unwrap();
    let external = dbsandbox_server::Server::start(&dbsandbox_server::ServerConfig {
        cache_dir: Some(server_cache.path().to_path_buf()),
        private: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let url = external.endpoint().url("postgres");
    let admin = external.endpoint().admin().await.unwrap();
    admin
        .batch_execute("create database users_own_db")
        .await
        .unwrap();
    let databases = || async {
        let rows = admin
            .query("select datname from pg_database order by 1", &[])
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = databases().await;

    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let migrations = migrations(project.path());
    let output = run_script(
        cache.path(),
        project.path(),
        &["--server", &url, "--migrations", migrations.to_str().unwrap()],
        "test \"$(psql -tA -c 'select count(*) from items')\" = 1 && psql -tA -c 'select current_database()'",
    );
    assert!(output.status.success(), "{}", text(&output));
    let clone = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(
        clone.starts_with("dbsandbox_c_"),
        "the key's clone lives on the external server: {clone}"
    );

    let after = databases().await;
    let ours: Vec<&String> = after.iter().filter(|d| !before.contains(d)).collect();
    assert!(!after.contains(&clone), "the used clone was dropped");
    assert!(
        ours.iter().all(|d| d.starts_with("dbsandbox_")),
        "only marked databases added: {ours:?}"
    );

    let gc = dbsandbox(cache.path())
        .args(["--server", &url, "gc"])
        .output()
        .unwrap();
    assert!(gc.status.success(), "{}", text(&gc));
    let cleaned = databases().await;
    assert!(cleaned.contains(&"users_own_db".to_string()));
    assert!(
        !cleaned.iter().any(|d| d.starts_with("dbsandbox_")),
        "gc removed all of ours: {cleaned:?}"
    );
    external.stop().await.unwrap();
}

#[test]
fn the_last_close_resets_unless_told_not_to() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let migrations = migrations(project.path());
    // Code under test commits on its own connection and closes it; the test then looks.
    let script = "psql -q -c \"insert into items(name) values ('app')\" && psql -tA -c 'select count(*) from items'";
    let reset = run_script(
        cache.path(),
        project.path(),
        &["--migrations", migrations.to_str().unwrap()],
        script,
    );
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(
        String::from_utf8_lossy(&reset.stdout).trim(),
        "1",
        "the close reset the key"
    );

    let kept = run_script(
        cache.path(),
        project.path(),
        &["--no-reset-on-close", "--migrations", migrations.to_str().unwrap()],
        &format!("{script} && psql -tA -c 'SELECT dbsandbox_reset()' && psql -tA -c 'select count(*) from items'"),
    );
    assert!(kept.status.success(), "{}", text(&kept));
    assert_eq!(
        String::from_utf8_lossy(&kept.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["2", "ok", "1"],
        "kept across closes until the explicit reset"
    );
}

#[test]
fn isolation_and_reset_on_close_come_from_dbsandbox_toml_too() {
    let cache = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    migrations(project.path());
    std::fs::write(
        project.path().join("dbsandbox.toml"),
        "migrations = \"migrations\"\nisolation = \"database\"\n",
    )
    .unwrap();
    // Database isolation: VACUUM works (a rollback sandbox refuses it).
    let output = run_script(
        cache.path(),
        project.path(),
        &[],
        "psql -q -c 'VACUUM items'",
    );
    assert!(output.status.success(), "{}", text(&output));
    // The flag still wins over the file.
    let output = run_script(
        cache.path(),
        project.path(),
        &["--isolation", "rollback"],
        "psql -q -c 'VACUUM items'",
    );
    assert!(
        !output.status.success(),
        "a rollback sandbox refuses VACUUM: {}",
        text(&output)
    );

    std::fs::write(
        project.path().join("dbsandbox.toml"),
        "migrations = \"migrations\"\nreset_on_close = false\n",
    )
    .unwrap();
    let script = "psql -q -c \"insert into items(name) values ('app')\" && psql -tA -c 'select count(*) from items'";
    let output = run_script(cache.path(), project.path(), &[], script);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "2",
        "{}",
        text(&output)
    );

    std::fs::write(
        project.path().join("dbsandbox.toml"),
        "isolation = \"serializable\"\n",
    )
    .unwrap();
    let output = run_script(cache.path(), project.path(), &[], "true");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("use \"rollback\" or \"database\""),
        "{}",
        text(&output)
    );
}
