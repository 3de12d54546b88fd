//! TLS through `dbsandbox run`: the generated CA under the cache directory (keys 0600), exported
//! as PGSSLROOTCERT and DBSANDBOX_SSLROOTCERT so `sslmode=verify-full` works with psycopg 3 in
//! both isolations; the user's own certificate with --tls-cert/--tls-key; half a pair refused
//! with exit code 2; `status` naming the CA; all of it by default, and none of it when TLS is
//! turned off (`--no-tls`, DBSANDBOX_TLS=0, `tls = false`).

mod common;
use common::{text, Project};

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

/// Connects with each sslmode and prints what it saw; fails on any surprise.
const CHECKS: &str = r#"
import os, sys, psycopg
url = os.environ["DATABASE_URL"]
ca = os.environ.get("DBSANDBOX_SSLROOTCERT")
expected_ca = sys.argv[1]
if expected_ca == "-":
    assert ca is None, ca
else:
    assert ca == expected_ca, (ca, expected_ca)
    assert os.environ["PGSSLROOTCERT"] == ca
def connect(query):
    with psycopg.connect(url + query, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)
        return conn.pgconn.ssl_in_use
root = "&sslrootcert=" + sys.argv[2] if len(sys.argv) > 2 else ""
assert connect("?sslmode=require") is True
assert connect("?sslmode=verify-full" + root) is True
assert connect("?sslmode=disable") is False
print("tls ok")
"#;

fn run_checks(project: &Project, args: &[&str], check_args: &[&str]) -> Output {
    project
        .dbsandbox()
        .env("DBSANDBOX_NO_DAEMON", "1")
        .env_remove("PGSSLROOTCERT")
        .args(["run", "--port", "0"])
        .args(args)
        .args(["--", "python3", "-c", CHECKS])
        .args(check_args)
        .output()
        .unwrap()
}

#[test]
fn generated_ca_makes_verify_full_work_in_both_isolations() {
    let project = Project::new();
    let ca = project.cache.path().join("tls/ca.crt");
    let ca_text = ca.display().to_string();
    for isolation in ["rollback", "database"] {
        let out = run_checks(&project, &["--isolation", isolation], &[&ca_text]);
        assert!(out.status.success(), "{isolation}: {}", text(&out));
        assert!(text(&out).contains("tls ok"), "{}", text(&out));
    }
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(project.cache.path().join("tls").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

#[test]
fn the_users_own_certificate_is_served() {
    let project = Project::new();
    let own = tempfile::tempdir().unwrap();
    let files = dbsandbox_proxy::tls::ensure_generated(
        own.path(),
        &dbsandbox_proxy::tls::server_names(None),
    )
    .unwrap();
    let out = run_checks(
        &project,
        &[
            "--tls-cert",
            files.server_cert.to_str().unwrap(),
            "--tls-key",
            files.server_key.to_str().unwrap(),
        ],
        &["-", files.ca_cert.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !project.cache.path().join("tls").exists(),
        "nothing is generated when the user brings a certificate"
    );
}

#[test]
fn half_a_certificate_pair_or_a_missing_file_is_bad_input() {
    let project = Project::new();
    let out = project
        .dbsandbox()
        .args(["run", "--port", "0", "--tls-cert", "cert.pem", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("go together"), "{}", text(&out));
    let out = project
        .dbsandbox()
        .args([
            "run",
            "--port",
            "0",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("c.pem does not exist"),
        "{}",
        text(&out)
    );
}

#[test]
fn status_names_the_ca_to_point_sslrootcert_at() {
    let project = Project::new();
    project.detach();
    let status = project.dbsandbox().arg("status").output().unwrap();
    let json = project
        .dbsandbox()
        .args(["status", "--json"])
        .output()
        .unwrap();
    let stop = project
        .dbsandbox()
        .args(["stop", "--all"])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", text(&stop));
    let ca = project.cache.path().join("tls/ca.crt");
    assert!(
        text(&status).contains(&format!("sslrootcert={}", ca.display())),
        "{}",
        text(&status)
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["daemons"][0]["tls"], true);
    assert_eq!(
        json["daemons"][0]["tls_ca_cert"],
        ca.display().to_string().as_str()
    );
}

/// TLS turned off, each way: an SSLRequest gets 'N' (sslmode=require fails with the server's
/// usual "does not support SSL", prefer falls back to plain), and no certificate is made.
#[test]
fn with_tls_turned_off_the_proxy_offers_none() {
    let project = Project::new();
    let toml = project.dir.path().join("dbsandbox.toml");
    // (how, flags, environment variable)
    type Way = (
        &'static str,
        &'static [&'static str],
        Option<(&'static str, &'static str)>,
    );
    let ways: [Way; 4] = [
        ("--no-tls", &["--no-tls"], None),
        ("--tls=false", &["--tls=false"], None),
        ("DBSANDBOX_TLS=0", &[], Some(("DBSANDBOX_TLS", "0"))),
        ("tls = false", &[], None),
    ];
    for (way, flags, env) in ways {
        if way == "tls = false" {
            std::fs::write(&toml, "migrations = \"migrations\"\ntls = false\n").unwrap();
        }
        let mut command = project.dbsandbox();
        if let Some((name, value)) = env {
            command.env(name, value);
        }
        let out = command
            .args(["run", "--port", "0"])
            .args(flags)
            .args(["--", "python3", "-c", PLAIN_ONLY])
            .output()
            .unwrap();
        assert!(out.status.success(), "{way}: {}", text(&out));
        assert!(text(&out).contains("plain ok"), "{way}: {}", text(&out));
        assert!(!project.cache.path().join("tls").exists(), "{way}");
    }
}

const PLAIN_ONLY: &str = r#"
import os, psycopg
url = os.environ["DATABASE_URL"]
with psycopg.connect(url) as conn:
    assert conn.pgconn.ssl_in_use is False
try:
    psycopg.connect(url, sslmode="require").close()
    raise SystemExit("sslmode=require connected without TLS on offer")
except psycopg.OperationalError as e:
    assert "does not support SSL" in str(e), e
print("plain ok")
"#;
