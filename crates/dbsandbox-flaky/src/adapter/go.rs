//! `go test`: lists with `go test -list <pattern> -json` (top-level tests, fuzz targets and
//! examples, per package, in declared order: file name, then position in the file), builds each
//! package's test binary once (`go test -c`, with the user's build flags), and runs an exact order
//! with one process of a package's binary per maximal stretch of the order that stays in that
//! package in declared relative order (the only order a Go test binary runs tests in): `go tool
//! test2json -p PKG BIN -test.run='^(A|B)$' -test.count=1 -test.shuffle=off …`, started in the
//! package's directory, as `go test` does. Outcomes and failure text come from test2json's events.
//! Test ids are `<import path>::<TestName>`; subtests are part of their parent. A reproduction is
//! plain `go test -run '^(A|B)$' -count=1 -p 1 PKG` per stretch.
//!
//! A test that calls `t.Parallel()` runs after its package's sequential tests whatever `-run`
//! says; the adapter learns which tests do from test2json's `pause` events and gives each of them
//! its own invocation from then on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;

use super::shell::shell_join;
use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, TestId, TestResult};

/// `go test` and `go build` flags that take a value (`-tags x` or `-tags=x`); any other flag is
/// taken for a boolean one.
const VALUE_FLAGS: &[&str] = &[
    "C",
    "asmflags",
    "buildmode",
    "compiler",
    "gccgoflags",
    "gcflags",
    "installsuffix",
    "ldflags",
    "mod",
    "modfile",
    "overlay",
    "pgo",
    "pkgdir",
    "tags",
    "toolexec",
    "exec",
    "o",
    "p",
    "vet",
    "covermode",
    "coverpkg",
    "coverprofile",
    "blockprofile",
    "blockprofilerate",
    "count",
    "cpu",
    "cpuprofile",
    "list",
    "memprofile",
    "memprofilerate",
    "mutexprofile",
    "mutexprofilefraction",
    "outputdir",
    "parallel",
    "run",
    "skip",
    "timeout",
    "trace",
    "bench",
    "benchtime",
    "fuzz",
    "fuzztime",
    "fuzzminimizetime",
    "shuffle",
];

/// Flags the adapter sets itself, or that would run more than the chosen tests: dropped.
const DROPPED_FLAGS: &[&str] = &[
    "run",
    "skip",
    "count",
    "list",
    "shuffle",
    "json",
    "v",
    "failfast",
    "p",
    "bench",
    "benchtime",
    "benchmem",
    "fuzz",
    "fuzztime",
    "fuzzminimizetime",
    "c",
    "o",
    // Profiles and traces: every invocation would overwrite the last one's.
    "coverprofile",
    "cpuprofile",
    "memprofile",
    "blockprofile",
    "mutexprofile",
    "trace",
    "outputdir",
];

/// Flags of the test binary itself (`-timeout 30s` becomes `-test.timeout=30s`); the others are
/// build flags, given to `go test -c`.
const BINARY_FLAGS: &[&str] = &[
    "timeout",
    "parallel",
    "cpu",
    "short",
    "fullpath",
    "blockprofilerate",
    "memprofilerate",
    "mutexprofilefraction",
];

pub struct Go {
    program: String,
    /// The user's flags that still apply (build flags, `-race`, `-timeout`, `-tags`, …).
    flags: Vec<String>,
    /// The build flags among them, for `go test -c`.
    build_flags: Vec<String>,
    /// The test binary's flags among them, as `-test.name=value`.
    binary_flags: Vec<String>,
    /// The package patterns (`./...`); `.` when none were given.
    packages: Vec<String>,
    /// The user's `-run` pattern, which the listing honours.
    run_pattern: Option<String>,
    /// Words after `-args`, for the test binaries.
    binary_args: Vec<String>,
    /// Each listed test's package and position: (import path, kind rank, index in the listing).
    listed: Mutex<HashMap<TestId, (String, u8, usize)>>,
    /// Tests seen calling `t.Parallel()`: each gets its own invocation.
    parallel: Mutex<HashSet<TestId>>,
    /// Each package's test binary (built once by `list`) and directory (where it must start).
    binaries: Mutex<HashMap<String, (PathBuf, PathBuf)>>,
}

impl Go {
    pub fn new(command: &[String], runner_word: usize) -> Go {
        let mut go = Go {
            program: command[runner_word].clone(),
            flags: Vec::new(),
            build_flags: Vec::new(),
            binary_flags: Vec::new(),
            packages: Vec::new(),
            run_pattern: None,
            binary_args: Vec::new(),
            listed: Mutex::new(HashMap::new()),
            parallel: Mutex::new(HashSet::new()),
            binaries: Mutex::new(HashMap::new()),
        };
        let mut words = command.get(runner_word + 2..).unwrap_or_default().iter();
        while let Some(word) = words.next() {
            let Some(flag) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
                go.packages.push(word.clone());
                continue;
            };
            if flag == "args" {
                go.binary_args = words.by_ref().cloned().collect();
                break;
            }
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            let name = name.strip_prefix("test.").unwrap_or(name);
            let mut taken = vec![word.clone()];
            let mut value = inline;
            if value.is_none() && VALUE_FLAGS.contains(&name) {
                if let Some(next) = words.next() {
                    taken.push(next.clone());
                    value = Some(next.clone());
                }
            }
            if name == "run" {
                go.run_pattern = value.clone();
            }
            if DROPPED_FLAGS.contains(&name) {
                continue;
            }
            if BINARY_FLAGS.contains(&name) {
                go.binary_flags.push(match &value {
                    Some(value) => format!("-test.{name}={value}"),
                    None => format!("-test.{name}"),
                });
            } else {
                go.build_flags.extend(taken.iter().cloned());
            }
            go.flags.extend(taken);
        }
        if go.packages.is_empty() {
            go.packages.push(".".into());
        }
        go
    }

    /// The listed position of `id`.
    fn position(&self, id: &str) -> anyhow::Result<(String, u8, usize)> {
        self.lock_listed().get(id).cloned().with_context(|| {
            format!("`{id}` is not a test of this suite (ids are `<import path>::<TestName>`)")
        })
    }

    fn lock_listed(&self) -> std::sync::MutexGuard<'_, HashMap<TestId, (String, u8, usize)>> {
        self.listed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_parallel(&self, id: &str) -> bool {
        self.parallel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// `order` cut into stretches one `go test` runs exactly: one package, declared order, and
    /// no test known to call `t.Parallel()` sharing a stretch.
    fn groups(&self, order: &[TestId]) -> anyhow::Result<Vec<(String, Vec<TestId>)>> {
        let mut groups: Vec<(String, Vec<TestId>)> = Vec::new();
        // The last test placed: its position, and whether it must stay alone.
        let mut last: Option<((u8, usize), bool)> = None;
        for id in order {
            let (package, rank, index) = self.position(id)?;
            let alone = self.is_parallel(id);
            let joins = match (groups.last(), last) {
                (Some((last_package, _)), Some((last_position, last_alone))) => {
                    *last_package == package
                        && last_position < (rank, index)
                        && !alone
                        && !last_alone
                }
                _ => false,
            };
            if joins {
                if let Some((_, ids)) = groups.last_mut() {
                    ids.push(id.clone());
                }
            } else {
                groups.push((package, vec![id.clone()]));
            }
            last = Some(((rank, index), alone));
        }
        Ok(groups)
    }

    /// `go test -c` once per package with tests, into the scratch directory; and where each
    /// package's directory is (`go list`), since `go test` starts a test binary there.
    fn build_binaries(&self, packages: &[&str], ctx: &Context) -> anyhow::Result<()> {
        let go = |args: &[String]| -> anyhow::Result<String> {
            let output = std::process::Command::new(&self.program)
                .args(args)
                .envs(ctx.env.iter().cloned())
                .current_dir(&ctx.cwd)
                .output()
                .with_context(|| format!("cannot run {}", self.program))?;
            if !output.status.success() {
                anyhow::bail!(
                    "`{} {}` failed (exit {}):\n{}",
                    self.program,
                    shell_join(args),
                    output.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let mut args: Vec<String> = vec!["list".into(), "-f".into()];
        args.push("{{.ImportPath}}\t{{.Dir}}".into());
        args.extend(self.build_flags.iter().cloned());
        args.extend(packages.iter().map(|p| p.to_string()));
        let dirs: HashMap<String, PathBuf> = go(&args)?
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(package, dir)| (package.to_string(), PathBuf::from(dir)))
            .collect();
        let out = ctx.scratch.join("go-test-binaries");
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let mut binaries = self.binaries.lock().unwrap_or_else(|p| p.into_inner());
        for (n, package) in packages.iter().enumerate() {
            let dir = dirs
                .get(*package)
                .with_context(|| format!("`go list` does not know {package}"))?;
            let binary = out.join(format!("{n}-{}.test", binary_stem(package)));
            let mut args: Vec<String> = vec!["test".into(), "-c".into(), "-o".into()];
            args.push(binary.display().to_string());
            args.extend(self.build_flags.iter().cloned());
            args.push(package.to_string());
            go(&args)?;
            binaries.insert(
                package.to_string(),
                (absolute(&binary, &ctx.cwd), dir.clone()),
            );
        }
        Ok(())
    }

    /// `go test … -run '^(A|B)$' PKG`: what a reproduction pastes.
    fn test_command(&self, package: &str, ids: &[TestId]) -> Vec<String> {
        let names: Vec<&str> = ids.iter().map(|id| test_name(id)).collect();
        let mut words = vec![self.program.clone(), "test".into()];
        words.extend(self.flags.iter().cloned());
        words.extend(["-count=1", "-p", "1", "-shuffle=off"].map(String::from));
        words.extend(["-run".to_string(), format!("^({})$", names.join("|"))]);
        words.push(package.to_string());
        if !self.binary_args.is_empty() {
            words.push("-args".into());
            words.extend(self.binary_args.iter().cloned());
        }
        words
    }
}

/// `example.com/m/pkg` of `example.com/m/pkg::TestX`.
fn package_of(id: &str) -> &str {
    id.rsplit_once("::")
        .map(|(package, _)| package)
        .unwrap_or(".")
}

/// `TestX` of `example.com/m/pkg::TestX`.
fn test_name(id: &str) -> &str {
    id.rsplit_once("::").map(|(_, name)| name).unwrap_or(id)
}

/// A file name for a package's test binary (`example.com/m/users` → `users`).
fn binary_stem(package: &str) -> String {
    package
        .rsplit('/')
        .next()
        .unwrap_or("pkg")
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// The order `go test` runs a package's functions in: tests, then fuzz targets' seed corpora,
/// then examples, each in declared order.
fn kind_rank(name: &str) -> Option<u8> {
    let valid = |prefix: &str| {
        name.strip_prefix(prefix).is_some_and(|rest| {
            rest.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !rest.starts_with(|c: char| c.is_lowercase())
        })
    };
    if valid("Test") {
        Some(0)
    } else if valid("Fuzz") {
        Some(1)
    } else if valid("Example") {
        Some(2)
    } else {
        None
    }
}

/// One test2json event.
#[derive(Debug, serde::Deserialize)]
struct Event {
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Package", default)]
    package: String,
    #[serde(rename = "Test", default)]
    test: Option<String>,
    #[serde(rename = "Output", default)]
    output: Option<String>,
}

fn events(stdout: &str) -> impl Iterator<Item = Event> + '_ {
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
}

impl Runner for Go {
    fn name(&self) -> &'static str {
        "go"
    }

    fn ordering_note(&self) -> Option<String> {
        Some(
            "a package's tests share a process of its test binary while an order keeps their \
             declared order (the only one a Go test binary runs); anything else starts the \
             binary again; subtests run with their parent, in their own order; a test that \
             calls t.Parallel() runs in a process of its own once seen doing so"
                .into(),
        )
    }

    fn list(&self, ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        let pattern = self
            .run_pattern
            .as_deref()
            .map(|p| p.split('/').next().unwrap_or(p).to_string())
            .unwrap_or_else(|| ".*".into());
        let mut args: Vec<String> = vec!["test".into()];
        args.extend(self.flags.iter().cloned());
        args.extend([
            "-count=1".to_string(),
            "-json".to_string(),
            "-list".to_string(),
            pattern,
        ]);
        args.extend(self.packages.iter().cloned());
        let output = std::process::Command::new(&self.program)
            .args(&args)
            .envs(ctx.env.iter().cloned())
            .current_dir(&ctx.cwd)
            .output()
            .with_context(|| format!("cannot run {}", self.program))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let mut text: Vec<String> = events(&stdout).filter_map(|e| e.output).collect();
            text.push(String::from_utf8_lossy(&output.stderr).into_owned());
            anyhow::bail!(
                "`{} {}` failed (exit {}):\n{}",
                self.program,
                shell_join(&args),
                output.status.code().unwrap_or(-1),
                ProcessOutput {
                    stdout: text.concat(),
                    ..Default::default()
                }
                .tail(25)
            );
        }
        // Packages list concurrently, so their lines interleave; each keeps its own order.
        let mut by_package: Vec<(String, Vec<String>)> = Vec::new();
        for event in events(&stdout) {
            let (Some(line), None) = (event.output.as_deref(), event.test.as_ref()) else {
                continue;
            };
            let name = line.trim_end();
            if kind_rank(name).is_none() {
                continue;
            }
            match by_package.iter_mut().find(|(p, _)| *p == event.package) {
                Some((_, names)) => names.push(name.to_string()),
                None => by_package.push((event.package.clone(), vec![name.to_string()])),
            }
        }
        // The order go test reports packages in: by import path.
        by_package.sort_by(|a, b| a.0.cmp(&b.0));
        let mut listed = self.lock_listed();
        listed.clear();
        let mut ids = Vec::new();
        for (package, names) in by_package {
            for (index, name) in names.iter().enumerate() {
                let id = format!("{package}::{name}");
                let rank = kind_rank(name).unwrap_or(0);
                if listed
                    .insert(id.clone(), (package.clone(), rank, index))
                    .is_none()
                {
                    ids.push(id);
                }
            }
        }
        // Declared order: tests, then fuzz targets, then examples, package by package.
        ids.sort_by_key(|id| {
            let (package, rank, index) = &listed[id];
            (package.clone(), *rank, *index)
        });
        if ids.is_empty() {
            anyhow::bail!("`{} {}` listed no test", self.program, shell_join(&args));
        }
        drop(listed);
        let mut packages: Vec<&str> = ids.iter().map(|id| package_of(id)).collect();
        packages.dedup();
        self.build_binaries(&packages, ctx)?;
        Ok(ids)
    }

    fn invocations(&self, order: &[TestId], ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        if self.lock_listed().is_empty() {
            self.list(ctx)?;
        }
        let binaries = self.binaries.lock().unwrap_or_else(|p| p.into_inner());
        self.groups(order)?
            .into_iter()
            .map(|(package, ids)| {
                let (binary, dir) = binaries
                    .get(&package)
                    .with_context(|| format!("no test binary was built for {package}"))?;
                let names: Vec<&str> = ids.iter().map(|id| test_name(id)).collect();
                // What `go test -json` runs: test2json over the binary, in the package's
                // directory, one test at a time in the binary's own order.
                let mut args: Vec<String> = ["tool", "test2json", "-t", "-p", &package]
                    .map(String::from)
                    .to_vec();
                args.push(binary.display().to_string());
                args.extend(
                    [
                        "-test.v=true",
                        "-test.paniconexit0",
                        "-test.count=1",
                        "-test.shuffle=off",
                    ]
                    .map(String::from),
                );
                args.push(format!("-test.run=^({})$", names.join("|")));
                args.extend(self.binary_flags.iter().cloned());
                args.extend(self.binary_args.iter().cloned());
                Ok(Invocation {
                    program: self.program.clone(),
                    args,
                    env: Vec::new(),
                    report: None,
                    tests: ids,
                    cwd: Some(dir.clone()),
                })
            })
            .collect()
    }

    fn results(
        &self,
        invocation: &Invocation,
        output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        struct Seen {
            outcome: Option<Outcome>,
            text: Vec<String>,
        }
        let mut seen: HashMap<TestId, Seen> = HashMap::new();
        let mut package_text: Vec<String> = Vec::new();
        let mut package_failed = false;
        for event in events(&output.stdout) {
            let Some(test) = event.test.as_deref() else {
                match event.action.as_str() {
                    "output" => package_text.extend(event.output),
                    "fail" => package_failed = true,
                    _ => {}
                }
                continue;
            };
            let (top, is_subtest) = match test.split_once('/') {
                Some((top, _)) => (top, true),
                None => (test, false),
            };
            let id = format!("{}::{top}", event.package);
            let entry = seen.entry(id.clone()).or_insert(Seen {
                outcome: None,
                text: Vec::new(),
            });
            match (event.action.as_str(), is_subtest) {
                ("output", _) => {
                    let line = event.output.unwrap_or_default();
                    let marker = ["=== RUN", "=== PAUSE", "=== CONT", "=== NAME"]
                        .iter()
                        .any(|m| line.starts_with(m));
                    if !marker {
                        entry.text.push(line);
                    }
                }
                ("pause", false) => {
                    self.parallel
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id);
                }
                ("pass", false) => entry.outcome = Some(Outcome::Passed),
                ("fail", false) => entry.outcome = Some(Outcome::Failed),
                ("skip", false) => entry.outcome = Some(Outcome::Skipped),
                _ => {}
            }
        }
        let mut results = Vec::new();
        for id in &invocation.tests {
            let Some(test) = seen.remove(id) else {
                continue;
            };
            let (outcome, message) = match test.outcome {
                // No `--- FAIL` line: the binary ended inside the test (os.Exit, a crash, a
                // signal) and test2json failed it for that.
                Some(Outcome::Failed) if !test.text.iter().any(|l| l.contains("--- FAIL")) => {
                    let mut text = test.text;
                    text.push(format!(
                        "the test binary ended while this test ran (os.Exit, a crash or a \
                         signal)\n{}",
                        ProcessOutput {
                            stderr: output.stderr.clone(),
                            ..Default::default()
                        }
                        .tail(20)
                    ));
                    (Outcome::Failed, Some(text.concat()))
                }
                Some(Outcome::Failed) => (Outcome::Failed, Some(test.text.concat())),
                Some(outcome) => (outcome, None),
                // Started, never ended, and the package failed: it took the binary down (a
                // panic in a goroutine, os.Exit, go test's own -timeout).
                None if package_failed && !output.timed_out => {
                    let mut text = test.text;
                    text.extend(package_text.iter().cloned());
                    (Outcome::Failed, Some(text.concat()))
                }
                None => continue,
            };
            results.push(TestResult {
                id: id.clone(),
                outcome,
                message: message.map(|m| m.trim_end().to_string()),
            });
        }
        Ok(results)
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        // Without a listing, each test is its own stretch (still exact, just slower).
        let groups = self.groups(order).unwrap_or_else(|_| {
            order
                .iter()
                .map(|id| (package_of(id).to_string(), vec![id.clone()]))
                .collect()
        });
        groups
            .iter()
            .map(|(package, ids)| shell_join(&self.test_command(package, ids)))
            .collect::<Vec<_>>()
            .join(" && ")
    }

    fn junit_case(&self, listed: &[TestId], classname: &str, name: &str) -> Option<TestId> {
        // go-junit-report and gotestsum: classname is the import path, name `TestX` or
        // `TestX/subtest` (a subtest stands for its parent here).
        let top = name.split('/').next().unwrap_or(name);
        let exact = format!("{classname}::{top}");
        if listed.contains(&exact) {
            return Some(exact);
        }
        super::generic::match_junit_case(listed, classname, top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn keeps_build_flags_and_drops_its_own() {
        let go = Go::new(
            &command("go test -race -tags=integration -run TestUser/sub -count 3 -v ./... -shuffle on -args -dsn x"),
            0,
        );
        assert_eq!(go.flags, command("-race -tags=integration"));
        assert_eq!(go.packages, ["./..."]);
        assert_eq!(go.run_pattern.as_deref(), Some("TestUser/sub"));
        assert_eq!(go.binary_args, command("-dsn x"));
        assert_eq!(
            go.test_command("example.com/m/users", &["example.com/m/users::TestA".into()]),
            command("go test -race -tags=integration -count=1 -p 1 -shuffle=off -run ^(TestA)$ example.com/m/users -args -dsn x")
        );
    }

    #[test]
    fn knows_test_functions() {
        assert_eq!(kind_rank("TestUser"), Some(0));
        assert_eq!(kind_rank("Test"), Some(0));
        assert_eq!(kind_rank("Testify"), None);
        assert_eq!(kind_rank("FuzzParse"), Some(1));
        assert_eq!(kind_rank("ExampleUser_Name"), Some(2));
        assert_eq!(kind_rank("ok  \texample.com/m\t0.1s"), None);
    }

    #[test]
    fn reads_test2json_events() {
        let go = Go::new(&command("go test ./..."), 0);
        let stdout = [
            r#"{"Action":"run","Package":"m/a","Test":"TestA"}"#,
            r#"{"Action":"output","Package":"m/a","Test":"TestA","Output":"=== RUN   TestA\n"}"#,
            r#"{"Action":"output","Package":"m/a","Test":"TestA/sub","Output":"    a_test.go:9: ERROR: duplicate key (SQLSTATE 23505)\n"}"#,
            r#"{"Action":"fail","Package":"m/a","Test":"TestA/sub"}"#,
            r#"{"Action":"output","Package":"m/a","Test":"TestA","Output":"--- FAIL: TestA (0.00s)\n"}"#,
            r#"{"Action":"fail","Package":"m/a","Test":"TestA"}"#,
            r#"{"Action":"run","Package":"m/a","Test":"TestB"}"#,
            r#"{"Action":"pause","Package":"m/a","Test":"TestB"}"#,
            r#"{"Action":"pass","Package":"m/a","Test":"TestB"}"#,
            r#"{"Action":"run","Package":"m/a","Test":"TestC"}"#,
            r#"{"Action":"output","Package":"m/a","Output":"exit status 3\n"}"#,
            r#"{"Action":"fail","Package":"m/a"}"#,
        ]
        .join("\n");
        let invocation = Invocation {
            tests: vec![
                "m/a::TestA".into(),
                "m/a::TestB".into(),
                "m/a::TestC".into(),
            ],
            ..Default::default()
        };
        let output = ProcessOutput {
            code: Some(1),
            stdout,
            ..Default::default()
        };
        let results = go.results(&invocation, &output).unwrap();
        let outcomes: Vec<Outcome> = results.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Failed, Outcome::Passed, Outcome::Failed]
        );
        assert_eq!(
            results[0].message.as_deref(),
            Some("    a_test.go:9: ERROR: duplicate key (SQLSTATE 23505)\n--- FAIL: TestA (0.00s)")
        );
        assert!(results[2]
            .message
            .as_deref()
            .unwrap()
            .contains("exit status 3"));
        assert!(go.is_parallel("m/a::TestB"));
    }
}
