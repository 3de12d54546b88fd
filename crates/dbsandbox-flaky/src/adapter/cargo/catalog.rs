//! The suite's test binaries and their tests, built once: from `cargo test --no-run
//! --message-format=json-render-diagnostics` (then each binary's `--list`), or from `cargo nextest
//! list --message-format json`. Also the environment `cargo test` gives a test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use super::libtest::{listed_tests, HarnessArgs};
use crate::adapter::shell::shell_join;
use crate::adapter::{Context, ProcessOutput};
use crate::model::TestId;

/// What a test binary was built from, in the order `cargo test` runs them within a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TargetKind {
    Lib,
    Bin,
    Test,
    Bench,
    Example,
}

impl TargetKind {
    fn from_cargo(kinds: &[String]) -> TargetKind {
        match kinds.first().map(String::as_str) {
            Some("bin") => TargetKind::Bin,
            Some("test") => TargetKind::Test,
            Some("bench") => TargetKind::Bench,
            Some("example") => TargetKind::Example,
            _ => TargetKind::Lib,
        }
    }

    fn from_nextest(kind: &str) -> TargetKind {
        match kind {
            "bin" => TargetKind::Bin,
            "test" => TargetKind::Test,
            "bench" => TargetKind::Bench,
            "example" => TargetKind::Example,
            _ => TargetKind::Lib,
        }
    }

    /// The `cargo test` flag that selects this target (`--test users`).
    pub fn cargo_selector(self, target: &str) -> Vec<String> {
        let flag = match self {
            TargetKind::Lib => return vec!["--lib".into()],
            TargetKind::Bin => "--bin",
            TargetKind::Test => "--test",
            TargetKind::Bench => "--bench",
            TargetKind::Example => "--example",
        };
        vec![flag.into(), target.into()]
    }
}

/// One test executable and its tests.
#[derive(Debug, Clone)]
pub struct TestBinary {
    /// nextest's binary id, unique in a workspace: `pkg` (library), `pkg::users` (integration
    /// test), `pkg::bin/name`, `pkg::bench/name`, `pkg::example/name`.
    pub binary_id: String,
    pub path: PathBuf,
    pub package: String,
    pub version: String,
    pub kind: TargetKind,
    /// The target's name (`users`, the library's crate name).
    pub target: String,
    /// The package's directory: where `cargo test` starts the binary.
    pub manifest_dir: PathBuf,
    /// Variables `cargo test` sets for it (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, OUT_DIR, …).
    pub env: Vec<(String, String)>,
    /// libtest names, sorted as libtest sorts them (byte order), with whether each is ignored.
    pub tests: Vec<(String, bool)>,
}

/// Every test binary of the suite, and where each listed test id lives.
#[derive(Debug, Default)]
pub struct Catalog {
    pub binaries: Vec<TestBinary>,
    index: HashMap<TestId, (usize, usize)>,
}

/// A test id: the binary's id, `::`, libtest's name (`pkg::users::tests::creates_user`).
pub fn test_id(binary_id: &str, name: &str) -> TestId {
    format!("{binary_id}::{name}")
}

impl Catalog {
    fn new(mut binaries: Vec<TestBinary>) -> Catalog {
        for binary in &mut binaries {
            binary.tests.sort();
            binary.tests.dedup();
        }
        let mut index = HashMap::new();
        for (b, binary) in binaries.iter().enumerate() {
            for (t, (name, _)) in binary.tests.iter().enumerate() {
                index.insert(test_id(&binary.binary_id, name), (b, t));
            }
        }
        Catalog { binaries, index }
    }

    /// Every test id, in the order `cargo test` runs them (binary by binary, names sorted).
    pub fn ids(&self) -> Vec<TestId> {
        self.binaries
            .iter()
            .flat_map(|b| b.tests.iter().map(|(name, _)| test_id(&b.binary_id, name)))
            .collect()
    }

    /// The binary of `id`, its libtest name, and whether it is ignored.
    pub fn find(&self, id: &str) -> anyhow::Result<(&TestBinary, &str, bool)> {
        let &(b, t) = self.index.get(id).with_context(|| {
            format!("`{id}` is not a test of this suite (ids are `<binary id>::<test name>`)")
        })?;
        let binary = &self.binaries[b];
        let (name, ignored) = &binary.tests[t];
        Ok((binary, name, *ignored))
    }
}

/// `cargo test --no-run` with the user's cargo arguments, then each binary's `--list`.
pub fn build_with_cargo(
    program: &str,
    cargo_args: &[String],
    harness: &HarnessArgs,
    ctx: &Context,
) -> anyhow::Result<Catalog> {
    let mut args: Vec<String> = vec!["test".into(), "--no-run".into()];
    args.push("--message-format=json-render-diagnostics".into());
    args.extend(cargo_args.iter().cloned());
    let stdout = run_build(program, &args, ctx)?;
    let mut out_dirs: HashMap<String, String> = HashMap::new();
    let mut linked: Vec<String> = Vec::new();
    let mut artifacts = Vec::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match message["reason"].as_str() {
            Some("build-script-executed") => {
                let package = message["package_id"].as_str().unwrap_or_default();
                if let Some(dir) = message["out_dir"].as_str() {
                    out_dirs.insert(package.to_string(), dir.to_string());
                }
                if let Some(paths) = message["linked_paths"].as_array() {
                    linked.extend(paths.iter().filter_map(|p| p.as_str()).map(linked_path));
                }
            }
            Some("compiler-artifact") if message["profile"]["test"] == true => {
                if let Some(executable) = message["executable"].as_str() {
                    artifacts.push((message.clone(), PathBuf::from(executable)));
                }
            }
            _ => {}
        }
    }
    let mut binaries = Vec::new();
    for (message, path) in artifacts {
        let package_id = message["package_id"].as_str().unwrap_or_default();
        let (package, version) = package_name_version(package_id);
        let target = message["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kinds: Vec<String> =
            serde_json::from_value(message["target"]["kind"].clone()).unwrap_or_default();
        let kind = TargetKind::from_cargo(&kinds);
        let manifest_path = PathBuf::from(message["manifest_path"].as_str().unwrap_or_default());
        let manifest_dir = manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ctx.cwd.clone());
        let mut env = cargo_env(&package, &version, &target, &manifest_path);
        if let Some(dir) = out_dirs.get(package_id) {
            env.push(("OUT_DIR".into(), dir.clone()));
        }
        env.extend(library_path(&path, &linked));
        let mut binary = TestBinary {
            binary_id: binary_id(&package, kind, &target),
            path,
            package,
            version,
            kind,
            target,
            manifest_dir,
            env,
            tests: Vec::new(),
        };
        binary.tests = list_binary(&binary, harness, ctx)?;
        binaries.push(binary);
    }
    if binaries.is_empty() {
        anyhow::bail!(
            "`{} {}` built no test binary (doc tests alone cannot be ordered: they run through \
             rustdoc, one process each)",
            program,
            shell_join(&args)
        );
    }
    // The order `cargo test` runs them in; its JSON comes in build-completion order.
    binaries.sort_by(|a, b| {
        (&a.package, &a.version, a.kind, &a.target)
            .cmp(&(&b.package, &b.version, b.kind, &b.target))
    });
    Ok(Catalog::new(binaries))
}

/// `cargo nextest list --message-format json` with the user's arguments (those `list` takes).
pub fn build_with_nextest(
    program: &str,
    nextest_args: &[String],
    ctx: &Context,
) -> anyhow::Result<Catalog> {
    let mut args: Vec<String> = ["nextest", "list", "--message-format", "json"]
        .map(String::from)
        .to_vec();
    args.extend(nextest_args.iter().cloned());
    let stdout = run_build(program, &args, ctx)?;
    let json_line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("`{program} {}` printed no JSON", shell_join(&args)))?;
    let listing: serde_json::Value = serde_json::from_str(json_line)
        .with_context(|| format!("reading the JSON of `{program} {}`", shell_join(&args)))?;
    let linked: Vec<String> = listing["rust-build-meta"]["linked-paths"]
        .as_array()
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| p.as_str())
                .map(|p| {
                    let target_dir = listing["rust-build-meta"]["target-directory"]
                        .as_str()
                        .unwrap_or_default();
                    Path::new(target_dir).join(p).display().to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut binaries = Vec::new();
    let suites = listing["rust-suites"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (binary_id, suite) in suites {
        let Some(cases) = suite["testcases"].as_object() else {
            continue;
        };
        let tests: Vec<(String, bool)> = cases
            .iter()
            .filter(|(_, case)| case["filter-match"]["status"] == "matches")
            .filter(|(_, case)| case["kind"].as_str().unwrap_or("test") == "test")
            .map(|(name, case)| (name.clone(), case["ignored"] == true))
            .collect();
        if tests.is_empty() {
            continue;
        }
        let package_id = suite["package-id"].as_str().unwrap_or_default();
        let (package, version) = package_name_version(package_id);
        let package = suite["package-name"]
            .as_str()
            .map(String::from)
            .unwrap_or(package);
        let kind = TargetKind::from_nextest(suite["kind"].as_str().unwrap_or("lib"));
        let target = suite["binary-name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let path = PathBuf::from(suite["binary-path"].as_str().unwrap_or_default());
        let manifest_dir = PathBuf::from(suite["cwd"].as_str().unwrap_or_default());
        let mut env = cargo_env(
            &package,
            &version,
            &target,
            &manifest_dir.join("Cargo.toml"),
        );
        env.extend([
            ("NEXTEST".to_string(), "1".to_string()),
            (
                "NEXTEST_EXECUTION_MODE".to_string(),
                "process-per-test".to_string(),
            ),
        ]);
        env.extend(library_path(&path, &linked));
        binaries.push(TestBinary {
            binary_id,
            path,
            package,
            version,
            kind,
            target,
            manifest_dir,
            env,
            tests,
        });
    }
    if binaries.is_empty() {
        anyhow::bail!("`{program} {}` listed no test", shell_join(&args));
    }
    Ok(Catalog::new(binaries))
}

/// Runs a build command; its stdout, or an error with the end of its output.
fn run_build(program: &str, args: &[String], ctx: &Context) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .envs(ctx.env.iter().cloned())
        .current_dir(&ctx.cwd)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let failed = ProcessOutput {
            code: output.status.code(),
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            timed_out: false,
        };
        anyhow::bail!(
            "`{program} {}` failed (exit {}):\n{}",
            shell_join(args),
            output.status.code().unwrap_or(-1),
            failed.tail(25)
        );
    }
    Ok(stdout)
}

/// A binary's tests with libtest's `--list`, minus ignored ones unless the user asked for them.
fn list_binary(
    binary: &TestBinary,
    harness: &HarnessArgs,
    ctx: &Context,
) -> anyhow::Result<Vec<(String, bool)>> {
    let list = |ignored_only: bool| -> anyhow::Result<Vec<String>> {
        let args = harness.list_args(ignored_only);
        let output = Command::new(&binary.path)
            .args(&args)
            .envs(ctx.env.iter().cloned())
            .envs(binary.env.iter().cloned())
            .current_dir(&binary.manifest_dir)
            .output()
            .with_context(|| format!("cannot run {}", binary.path.display()))?;
        if !output.status.success() {
            anyhow::bail!(
                "`{} {}` failed (exit {}); a test binary built with `harness = false` must \
                 accept libtest's `--list --format terse` (as cargo nextest also requires):\n{}",
                binary.path.display(),
                shell_join(&args),
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(listed_tests(&String::from_utf8_lossy(&output.stdout)))
    };
    let ignored = list(true)?;
    if harness.only_ignored {
        return Ok(ignored.into_iter().map(|name| (name, true)).collect());
    }
    let all = list(false)?;
    Ok(all
        .into_iter()
        .filter_map(|name| {
            let is_ignored = ignored.contains(&name);
            (harness.include_ignored || !is_ignored).then_some((name, is_ignored))
        })
        .collect())
}

fn binary_id(package: &str, kind: TargetKind, target: &str) -> String {
    match kind {
        TargetKind::Lib => package.to_string(),
        TargetKind::Test => format!("{package}::{target}"),
        TargetKind::Bin => format!("{package}::bin/{target}"),
        TargetKind::Bench => format!("{package}::bench/{target}"),
        TargetKind::Example => format!("{package}::example/{target}"),
    }
}

/// A package id's name and version, in cargo's current form (`path+file:///w/app#0.1.0`,
/// `registry+https://…#name@1.0.0`) or its older one (`name 1.0.0 (path+file:///w/app)`).
pub fn package_name_version(id: &str) -> (String, String) {
    if let Some((source, fragment)) = id.rsplit_once('#') {
        if let Some((name, version)) = fragment.split_once('@') {
            return (name.to_string(), version.to_string());
        }
        let path = source.split('?').next().unwrap_or(source);
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        return (name.to_string(), fragment.to_string());
    }
    let mut words = id.split_whitespace();
    let name = words.next().unwrap_or_default().to_string();
    let version = words.next().unwrap_or_default().to_string();
    (name, version)
}

/// The variables `cargo test` sets for a test binary that tests commonly read.
fn cargo_env(
    package: &str,
    version: &str,
    target: &str,
    manifest_path: &Path,
) -> Vec<(String, String)> {
    let manifest_dir = manifest_path.parent().unwrap_or(Path::new("."));
    let mut env = vec![
        (
            "CARGO_MANIFEST_DIR".to_string(),
            manifest_dir.display().to_string(),
        ),
        (
            "CARGO_MANIFEST_PATH".to_string(),
            manifest_path.display().to_string(),
        ),
        ("CARGO_PKG_NAME".to_string(), package.to_string()),
        ("CARGO_PKG_VERSION".to_string(), version.to_string()),
        ("CARGO_CRATE_NAME".to_string(), target.replace('-', "_")),
    ];
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.');
    for part in ["MAJOR", "MINOR", "PATCH"] {
        env.push((
            format!("CARGO_PKG_VERSION_{part}"),
            parts.next().unwrap_or_default().to_string(),
        ));
    }
    let pre = version
        .split_once('-')
        .map(|(_, pre)| pre.split('+').next().unwrap_or_default())
        .unwrap_or_default();
    env.push(("CARGO_PKG_VERSION_PRE".to_string(), pre.to_string()));
    env
}

/// `native=/x` → `/x`: a build script's `rustc-link-search` path.
fn linked_path(path: &str) -> String {
    path.split_once('=')
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| path.to_string())
}

/// The dynamic library path cargo gives a test binary: its deps directory, the build scripts'
/// link paths, then what the environment already had.
fn library_path(binary: &Path, linked: &[String]) -> Vec<(String, String)> {
    let variable = if cfg!(target_os = "macos") {
        "DYLD_FALLBACK_LIBRARY_PATH"
    } else if cfg!(windows) {
        "PATH"
    } else {
        "LD_LIBRARY_PATH"
    };
    let mut paths: Vec<PathBuf> = linked.iter().map(PathBuf::from).collect();
    if let Some(dir) = binary.parent() {
        paths.push(dir.to_path_buf());
    }
    if let Some(existing) = std::env::var_os(variable) {
        paths.extend(std::env::split_paths(&existing));
    }
    match std::env::join_paths(paths) {
        Ok(joined) => vec![(variable.to_string(), joined.to_string_lossy().into_owned())],
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_ids_old_and_new() {
        let read = |id: &str| package_name_version(id);
        assert_eq!(
            read("path+file:///w/app#0.1.0"),
            ("app".into(), "0.1.0".into())
        );
        assert_eq!(
            read("path+file:///w/crates/x#my-app@1.2.3-beta.1"),
            ("my-app".into(), "1.2.3-beta.1".into())
        );
        assert_eq!(
            read("my-app 1.2.3 (path+file:///w/x)"),
            ("my-app".into(), "1.2.3".into())
        );
    }

    #[test]
    fn names_binaries_as_nextest_does() {
        assert_eq!(binary_id("app", TargetKind::Lib, "app"), "app");
        assert_eq!(binary_id("app", TargetKind::Test, "users"), "app::users");
        assert_eq!(binary_id("app", TargetKind::Bin, "app"), "app::bin/app");
        let env = cargo_env(
            "app",
            "1.2.3-rc.1",
            "my-app",
            Path::new("/w/app/Cargo.toml"),
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CARGO_MANIFEST_DIR"), Some("/w/app"));
        assert_eq!(get("CARGO_CRATE_NAME"), Some("my_app"));
        assert_eq!(get("CARGO_PKG_VERSION_MINOR"), Some("2"));
        assert_eq!(get("CARGO_PKG_VERSION_PRE"), Some("rc.1"));
    }
}
