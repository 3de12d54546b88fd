//! The executor: each run on a fresh clone leased from the daemon, the adapter's processes started
//! in sequence against it with its connection variables, a timeout per run, and each test's
//! outcome read back; confirmation runs record what the culprit left behind in between.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncReadExt;

use crate::adapter::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{Outcome, Purpose, Run, TableEvidence, TestId, TestResult};
use crate::plan::Executor;

/// A fresh clone of the template: its key, connection string and the variables a test command
/// gets (DATABASE_URL, PGHOST, …).
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub url: String,
    pub env: Vec<(String, String)>,
}

/// Where fresh clones come from (the daemon's run scope, in database isolation).
#[allow(async_fn_in_trait)]
pub trait Sandboxes {
    /// A fresh clone named `key`, with real commits (database isolation).
    async fn lease(&mut self, key: &str) -> anyhow::Result<Lease>;
    /// Drops the clone.
    async fn release(&mut self, key: &str) -> anyhow::Result<()>;
}

/// Rows listed per table in evidence (the counts are always whole).
const EVIDENCE_ROWS: usize = 20;

/// Runs the adapter's processes, a run per fresh clone.
pub struct ProcessExecutor<'a, S: Sandboxes> {
    pub runner: &'a dyn Runner,
    pub sandboxes: S,
    pub ctx: Context,
    /// The untouched clone evidence is compared with.
    pub baseline: Lease,
    /// Per run; `None` until the first run sets it from its own duration.
    pub run_timeout: Option<Duration>,
    /// Keys are `<prefix>-<n>`.
    pub key_prefix: String,
    next_key: usize,
}

impl<'a, S: Sandboxes> ProcessExecutor<'a, S> {
    pub fn new(
        runner: &'a dyn Runner,
        sandboxes: S,
        ctx: Context,
        baseline: Lease,
        run_timeout: Option<Duration>,
        key_prefix: String,
    ) -> Self {
        ProcessExecutor {
            runner,
            sandboxes,
            ctx,
            baseline,
            run_timeout,
            key_prefix,
            next_key: 1,
        }
    }

    pub fn next_key(&mut self) -> String {
        let key = format!("{}-{}", self.key_prefix, self.next_key);
        self.next_key += 1;
        key
    }

    /// Runs `order` against the clone `lease` (which the caller leased and releases).
    pub async fn run_on(
        &self,
        lease: &Lease,
        order: &[TestId],
        deadline: Instant,
    ) -> anyhow::Result<(Vec<TestResult>, Option<String>)> {
        let invocations = self.runner.invocations(order, &self.ctx)?;
        let mut results = Vec::new();
        let mut problem = None;
        for invocation in &invocations {
            let left = deadline.saturating_duration_since(Instant::now());
            let output = spawn(invocation, lease, &self.ctx, left).await?;
            let found = self.runner.results(invocation, &output)?;
            if output.timed_out {
                problem = Some(format!(
                    "timed out after {:.0} s (--run-timeout)",
                    self.run_timeout.unwrap_or_default().as_secs_f64()
                ));
            } else if found.is_empty() && output.code != Some(0) {
                problem = Some(format!(
                    "`{}` exited with {} and reported no test:\n{}",
                    invocation.program,
                    output
                        .code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "a signal".into()),
                    output.tail(20)
                ));
            }
            results.extend(found);
            if output.timed_out {
                break;
            }
        }
        // Every test asked for has a result: the ones nobody reported are missing.
        let mut reported: std::collections::HashMap<TestId, TestResult> =
            std::collections::HashMap::with_capacity(results.len());
        for result in results {
            // A test reported twice keeps its first report.
            reported.entry(result.id.clone()).or_insert(result);
        }
        let ordered = order
            .iter()
            .map(|test| {
                reported.remove(test).unwrap_or_else(|| TestResult {
                    id: test.clone(),
                    outcome: Outcome::Missing,
                    message: None,
                })
            })
            .collect();
        Ok((ordered, problem))
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.run_timeout.unwrap_or(Duration::from_secs(24 * 3600))
    }

    /// After the first run: ten times its duration, at least two minutes.
    fn learn_timeout(&mut self, took: Duration) {
        if self.run_timeout.is_none() {
            self.run_timeout = Some((took * 10).max(Duration::from_secs(120)));
        }
    }
}

impl<S: Sandboxes> Executor for ProcessExecutor<'_, S> {
    async fn run(&mut self, order: &[TestId], purpose: Purpose) -> anyhow::Result<Run> {
        let key = self.next_key();
        let lease = self.sandboxes.lease(&key).await?;
        let started = Instant::now();
        let outcome = self.run_on(&lease, order, self.deadline()).await;
        let released = self.sandboxes.release(&key).await;
        let (results, problem) = outcome?;
        released?;
        self.learn_timeout(started.elapsed());
        Ok(Run {
            index: 0,
            purpose,
            order: order.to_vec(),
            results,
            seconds: started.elapsed().as_secs_f64(),
            key,
            problem,
        })
    }

    async fn run_split(
        &mut self,
        culprits: &[TestId],
        test: &TestId,
        purpose: Purpose,
    ) -> anyhow::Result<(Run, Vec<TableEvidence>)> {
        let key = self.next_key();
        let lease = self.sandboxes.lease(&key).await?;
        let started = Instant::now();
        let outcome = async {
            let deadline = self.deadline();
            let (mut results, first_problem) = self.run_on(&lease, culprits, deadline).await?;
            let evidence =
                crate::evidence::left_behind(&self.baseline.url, &lease.url, EVIDENCE_ROWS)
                    .await
                    .context("comparing the culprit's clone with the template")?;
            let (then, problem) = self
                .run_on(&lease, std::slice::from_ref(test), deadline)
                .await?;
            results.extend(then);
            Ok::<_, anyhow::Error>((results, first_problem.or(problem), evidence))
        }
        .await;
        let released = self.sandboxes.release(&key).await;
        let (results, problem, evidence) = outcome?;
        released?;
        let mut order = culprits.to_vec();
        order.push(test.clone());
        Ok((
            Run {
                index: 0,
                purpose,
                order,
                results,
                seconds: started.elapsed().as_secs_f64(),
                key,
                problem,
            },
            evidence,
        ))
    }
}

/// The process group of the test process running now (0: none), for [`kill_running`].
static RUNNING_GROUP: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Kills the test process that runs now, with its children: the test processes are in their own
/// process group (so a timeout can end them all), which a terminal's Ctrl-C does not reach.
pub fn kill_running() {
    let group = RUNNING_GROUP.swap(0, std::sync::atomic::Ordering::SeqCst);
    if group > 0 {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(-group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Starts one process in its own process group (so a timeout ends its children too) and waits
/// for it, at most `timeout`.
async fn spawn(
    invocation: &Invocation,
    lease: &Lease,
    ctx: &Context,
    timeout: Duration,
) -> anyhow::Result<ProcessOutput> {
    let mut command = tokio::process::Command::new(&invocation.program);
    command
        .args(&invocation.args)
        .envs(lease.env.iter().cloned())
        .envs(invocation.env.iter().cloned())
        .current_dir(invocation.cwd.as_ref().unwrap_or(&ctx.cwd))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", invocation.program))?;
    let pid = child.id();
    if let Some(pid) = pid {
        RUNNING_GROUP.store(pid as i32, std::sync::atomic::Ordering::SeqCst);
    }
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let read_out = async {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf).await;
        buf
    };
    let read_err = async {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf).await;
        buf
    };
    let waited = tokio::time::timeout(timeout, async {
        let (out, err, status) = tokio::join!(read_out, read_err, child.wait());
        (out, err, status)
    })
    .await;
    RUNNING_GROUP.store(0, std::sync::atomic::Ordering::SeqCst);
    match waited {
        Ok((out, err, status)) => Ok(ProcessOutput {
            code: status?.code(),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
            timed_out: false,
        }),
        Err(_) => {
            if let Some(pid) = pid {
                let group = nix::unistd::Pid::from_raw(-(pid as i32));
                let _ = nix::sys::signal::kill(group, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Ok(ProcessOutput {
                code: None,
                timed_out: true,
                ..Default::default()
            })
        }
    }
}

/// A private scratch directory for one hunt, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("dbsandbox-flaky-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
