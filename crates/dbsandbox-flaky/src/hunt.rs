//! One hunt from start to end, given a runner and a source of fresh clones: list the suite, run
//! the plan, read each finding's failure and evidence, keep a failing reproduction when asked.

use std::time::Duration;

use anyhow::Context as _;

use crate::adapter::{Context, Runner};
use crate::exec::{Lease, ProcessExecutor, Sandboxes};
use crate::model::{FindingKind, Hunt, Outcome, TestId, SCHEMA};
use crate::plan::{self, FailedBuild, PlanOptions, Progress};

/// Everything a hunt needs besides the runner and the clones.
#[derive(Debug, Clone)]
pub struct HuntOptions {
    pub command: Vec<String>,
    pub plan: PlanOptions,
    pub run_timeout: Option<Duration>,
    /// A JUnit report of a red build: its failures are the suspects (detection skipped).
    pub failed_from: Option<String>,
    /// Keep a clone with the last failing reproduction's state.
    pub keep_failed: bool,
    /// Prepended to the runner's own reproduction command: `dbsandbox run … --`.
    pub reproduce_prefix: String,
    /// Sandbox keys are `<key_prefix>-<n>`.
    pub key_prefix: String,
}

/// Why a hunt could not start: bad input (exit 2), as opposed to a failure on the way.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Runs a whole hunt.
pub async fn run_hunt<S: Sandboxes, P: Progress>(
    runner: &dyn Runner,
    mut sandboxes: S,
    mut ctx: Context,
    options: HuntOptions,
    progress: &P,
) -> anyhow::Result<Hunt> {
    progress.say("listing the suite's tests");
    let listing_key = format!("{}-list", options.key_prefix);
    let listing = sandboxes.lease(&listing_key).await?;
    ctx.env = listing.env.clone();
    let listed = runner.list(&ctx);
    sandboxes.release(&listing_key).await?;
    let tests = listed.map_err(|e| BadInput(format!("{}: {e:#}", runner.name())))?;
    if tests.is_empty() {
        return Err(BadInput(format!("`{}` has no tests", options.command.join(" "))).into());
    }
    let failed_from = match &options.failed_from {
        Some(path) => Some(read_failed_build(path, runner, &tests)?),
        None => None,
    };
    let baseline_key = format!("{}-baseline", options.key_prefix);
    let baseline = sandboxes.lease(&baseline_key).await?;
    let mut exec = ProcessExecutor::new(
        runner,
        sandboxes,
        ctx,
        baseline,
        options.run_timeout,
        options.key_prefix.clone(),
    );
    let outcome = plan::hunt(
        &mut exec,
        progress,
        &tests,
        options.plan.clone(),
        failed_from,
    )
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let _ = exec.sandboxes.release(&baseline_key).await;
            return Err(e);
        }
    };
    // A suite whose first run reported nothing did not start: bad input, with its output.
    if let Some(first) = outcome.runs.first() {
        if first.purpose.is_detection()
            && first.results.iter().all(|r| r.outcome == Outcome::Missing)
        {
            let _ = exec.sandboxes.release(&baseline_key).await;
            return Err(BadInput(format!(
                "the suite ran no test: {}",
                first
                    .problem
                    .clone()
                    .unwrap_or_else(|| "no test reported a result".into())
            ))
            .into());
        }
    }
    let mut findings = outcome.findings;
    let mut kept = None;
    for finding in findings.iter_mut() {
        let message = outcome
            .runs
            .iter()
            .rev()
            .filter(|r| r.failed(&finding.test))
            .find_map(|r| r.message_of(&finding.test))
            .map(str::to_string);
        let culprits = match finding.kind {
            FindingKind::Victim => finding.polluters.clone(),
            FindingKind::Brittle => finding.state_setters.clone(),
            _ => vec![],
        };
        let mut order: Vec<TestId> = culprits.first().cloned().into_iter().collect();
        order.push(finding.test.clone());
        let native = runner.reproduce(&order);
        // Several processes: one shell runs them all against the one database of the wrapper.
        let native = if native.contains(" && ") {
            format!(
                "sh -c {}",
                crate::adapter::shell_quote(&native.replace(" && ", "; "))
            )
        } else {
            native
        };
        let reproduce = format!("{} {native}", options.reproduce_prefix);
        let evidence = outcome
            .evidence
            .get(&finding.test)
            .cloned()
            .unwrap_or_default();
        crate::reading::complete(finding, evidence, message.as_deref(), reproduce);
        if options.keep_failed && finding.kind == FindingKind::Victim {
            kept = Some((finding.test.clone(), order));
        }
    }
    if let Some((test, order)) = kept {
        // The last victim's reproduction once more, on a clone that outlives the hunt.
        progress.say(&format!("keeping a clone with the state {test} failed on"));
        let key = format!("{}-kept", options.key_prefix);
        let lease = exec.sandboxes.lease(&key).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(3600);
        exec.run_on(&lease, &order, deadline).await?;
        if let Some(f) = findings.iter_mut().find(|f| f.test == test) {
            f.kept_database = Some(lease.url.clone());
        }
    }
    exec.sandboxes.release(&baseline_key).await?;
    Ok(Hunt {
        schema: SCHEMA.into(),
        runner: runner.name().into(),
        command: options.command,
        ordering_note: runner.ordering_note(),
        runs: outcome.runs,
        tests: outcome.tests,
        findings,
        budget: outcome.budget,
    })
}

/// The failures (and the order) of a red build's JUnit report, as listed tests.
fn read_failed_build(
    path: &str,
    runner: &dyn Runner,
    listed: &[TestId],
) -> anyhow::Result<FailedBuild> {
    let xml = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("--failed-from {path}: {e}")))?;
    let cases = crate::adapter::generic::read_junit(&xml)
        .map_err(|e| BadInput(format!("--failed-from {path}: not JUnit XML: {e:#}")))?;
    let mut order = Vec::new();
    let mut failed = Vec::new();
    let mut unknown = Vec::new();
    for case in &cases {
        match runner.junit_case(listed, &case.classname, &case.name) {
            Some(id) => {
                if case.outcome == Outcome::Failed {
                    failed.push(id.clone());
                }
                order.push(id);
            }
            None if case.outcome == Outcome::Failed => unknown.push(case.name.clone()),
            None => {}
        }
    }
    if failed.is_empty() {
        let detail = if unknown.is_empty() {
            "it has no failed test".to_string()
        } else {
            format!(
                "none of its failed tests is in the suite as {} lists it: {}",
                runner.name(),
                unknown.join(", ")
            )
        };
        return Err(BadInput(format!("--failed-from {path}: {detail}")).into());
    }
    Ok(FailedBuild { order, failed })
}

/// The lease a test command gets: its variables, for a key's URL.
pub fn lease_env(key: &str, url: &str) -> anyhow::Result<Lease> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .context("the daemon gave a connection string that is not postgres://")?;
    let (auth_host, database) = rest.split_once('/').unwrap_or((rest, key));
    let (auth, host_port) = auth_host.rsplit_once('@').unwrap_or(("", auth_host));
    let user = auth.split(':').next().unwrap_or("dbsandbox");
    let (host, port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let database = database.split('?').next().unwrap_or(database);
    let mut env = vec![
        ("DATABASE_URL".to_string(), url.to_string()),
        ("PGHOST".into(), host.into()),
        ("PGPORT".into(), port.into()),
        ("PGDATABASE".into(), database.into()),
        ("DBSANDBOX_HOST".into(), host.into()),
        ("DBSANDBOX_PORT".into(), port.into()),
    ];
    if !user.is_empty() {
        env.push(("PGUSER".into(), user.into()));
    }
    if let Some((_, password)) = auth.split_once(':') {
        env.push(("PGPASSWORD".into(), password.into()));
    }
    Ok(Lease {
        key: key.into(),
        url: url.into(),
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_carries_libpq_variables() {
        let lease = lease_env("flaky-3", "postgres://dbsandbox@127.0.0.1:6543/flaky-3").unwrap();
        let get = |k: &str| {
            lease
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("PGHOST"), Some("127.0.0.1"));
        assert_eq!(get("PGPORT"), Some("6543"));
        assert_eq!(get("PGDATABASE"), Some("flaky-3"));
        assert_eq!(get("PGUSER"), Some("dbsandbox"));
        assert_eq!(get("PGPASSWORD"), None);
        let secret = lease_env("k", "postgres://u:pw@[::1]:7000/k?sslmode=disable").unwrap();
        let get = |k: &str| {
            secret
                .env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("PGHOST").as_deref(), Some("::1"));
        assert_eq!(get("PGPASSWORD").as_deref(), Some("pw"));
        assert_eq!(get("PGDATABASE").as_deref(), Some("k"));
    }
}
