//! Names the commit the binary is built from, for `dbsandbox --version`.
//!
//! `DBSANDBOX_GIT_COMMIT` wins (packagers building from a tarball set it); then the commit
//! `cargo package` recorded in `.cargo_vcs_info.json` (a crate from crates.io, `cargo install`);
//! then `git rev-parse` in the source tree; otherwise `unknown` (a tarball without `.git` builds).

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// `"sha1": "…"` of the `.cargo_vcs_info.json` that `cargo package` puts beside Cargo.toml.
fn packaged_commit() -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(path).ok()?;
    let after = text.split("\"sha1\"").nth(1)?;
    let sha: String = after
        .chars()
        .skip_while(|c| !c.is_ascii_hexdigit())
        .take_while(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    (!sha.is_empty()).then_some(sha)
}

fn main() {
    println!("cargo:rerun-if-env-changed=DBSANDBOX_GIT_COMMIT");
    let from_env = std::env::var("DBSANDBOX_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = from_env
        .or_else(packaged_commit)
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself, the branch it points at, and packed refs.
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    println!("cargo:rustc-env=DBSANDBOX_GIT_COMMIT={commit}");
}
