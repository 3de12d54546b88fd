//! The run plan: detect (declared, repeated, reversed and shuffled orders), then explain each
//! suspect (alone, delta debugging over the tests before it, a confirmation that records what the
//! culprit left behind), then check every verdict against every run made.
//!
//! Each run is on a fresh clone, so a run's outcome depends only on its order: that is what makes
//! each bisection step sound. A culprit is only reported when it explains every run in which the
//! suspect ran; a suspect whose runs no order explains is flaky.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::model::{
    BudgetUse, Finding, FindingKind, Outcome, Purpose, Run, TableEvidence, TestId, TestSummary,
    Verdict,
};

/// Runs orders of tests, each on a fresh clone.
#[allow(async_fn_in_trait)]
pub trait Executor {
    /// Runs exactly `order` on a fresh clone.
    async fn run(&mut self, order: &[TestId], purpose: Purpose) -> anyhow::Result<Run>;

    /// Runs `culprits` on a fresh clone, records what they left in it (compared with the
    /// template), then runs `test` on the same clone: one run, with its evidence.
    async fn run_split(
        &mut self,
        culprits: &[TestId],
        test: &TestId,
        purpose: Purpose,
    ) -> anyhow::Result<(Run, Vec<TableEvidence>)>;
}

/// Where the hunt says how far it got (a progress line on stderr).
pub trait Progress {
    fn say(&self, line: &str);
}

impl Progress for () {
    fn say(&self, _line: &str) {}
}

/// The budget and knobs of a hunt.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Detection runs at most (declared, repeated, reversed, shuffles).
    pub detection_runs: usize,
    /// Wall-clock budget for the whole hunt.
    pub timeout: Option<Duration>,
    /// The first shuffle's seed; the next ones follow from it.
    pub seed: u64,
    /// Detection stops early after this many runs in a row that show nothing new…
    pub quiet_runs: usize,
    /// …but never before this many detection runs.
    pub min_runs: usize,
    /// Groups of tests (files) that reversed and shuffled orders move as wholes, for runners
    /// that cannot reorder inside a file cheaply (`Runner::order_units`).
    pub units: Option<Vec<Vec<TestId>>>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            detection_runs: 10,
            timeout: None,
            seed: 1,
            quiet_runs: 3,
            min_runs: 8,
            units: None,
        }
    }
}

/// A red CI build to start from (`--failed-from`): the order it ran and what failed.
#[derive(Debug, Clone)]
pub struct FailedBuild {
    pub order: Vec<TestId>,
    pub failed: Vec<TestId>,
}

/// What the plan found, before reports and evidence reading.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    pub runs: Vec<Run>,
    pub tests: Vec<TestSummary>,
    pub findings: Vec<Finding>,
    pub budget: BudgetUse,
    /// Evidence per finding, by the finding's test.
    pub evidence: BTreeMap<TestId, Vec<TableEvidence>>,
}

/// ⌈log₂ n⌉, with ⌈log₂ 1⌉ = 0.
pub fn ceil_log2(n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        (usize::BITS - (n - 1).leading_zeros()) as usize
    }
}

/// A small deterministic shuffle (SplitMix64 + Fisher–Yates): the same seed gives the same order
/// on every machine, so a seed in a report reproduces its run.
pub fn shuffled(tests: &[TestId], seed: u64) -> Vec<TestId> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = tests.to_vec();
    for i in (1..out.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

/// Units shuffled as wholes, each in its declared order.
pub fn shuffled_units(units: &[Vec<TestId>], seed: u64) -> Vec<TestId> {
    let index: Vec<TestId> = (0..units.len()).map(|i| i.to_string()).collect();
    shuffled(&index, seed)
        .iter()
        .flat_map(|i| units[i.parse::<usize>().unwrap_or(0)].iter().cloned())
        .collect()
}

struct Planner<'a, E: Executor, P: Progress> {
    exec: &'a mut E,
    progress: &'a P,
    options: PlanOptions,
    started: Instant,
    runs: Vec<Run>,
    /// ⌈log₂ n⌉ + 3: the runs one suspect with one culprit may use.
    per_suspect: usize,
}

impl<E: Executor, P: Progress> Planner<'_, E, P> {
    fn out_of_time(&self) -> bool {
        self.options
            .timeout
            .is_some_and(|t| self.started.elapsed() >= t)
    }

    async fn run(&mut self, order: &[TestId], purpose: Purpose) -> anyhow::Result<Run> {
        let mut run = self.exec.run(order, purpose).await?;
        run.index = self.runs.len() + 1;
        self.runs.push(run.clone());
        Ok(run)
    }

    async fn run_split(
        &mut self,
        culprits: &[TestId],
        test: &TestId,
    ) -> anyhow::Result<(Run, Vec<TableEvidence>)> {
        let purpose = Purpose::Confirm { test: test.clone() };
        let (mut run, evidence) = self.exec.run_split(culprits, test, purpose).await?;
        run.index = self.runs.len() + 1;
        self.runs.push(run.clone());
        Ok((run, evidence))
    }

    /// Declared, declared again, reversed, then shuffles until the budget, the clock, or
    /// `quiet_runs` runs in a row with no new failing test.
    async fn detect(&mut self, tests: &[TestId]) -> anyhow::Result<String> {
        let mut seen_failing: BTreeSet<TestId> = BTreeSet::new();
        let mut quiet = 0;
        let mut seed = self.options.seed;
        let budget = self.options.detection_runs.max(1);
        for n in 0..budget {
            if self.out_of_time() {
                return Ok("timeout".into());
            }
            let (order, purpose) = match n {
                0 => (tests.to_vec(), Purpose::Declared),
                1 => (tests.to_vec(), Purpose::Repeat),
                2 => (self.reversed(tests), Purpose::Reversed),
                _ => {
                    let order = self.shuffled(tests, seed);
                    let purpose = Purpose::Shuffled { seed };
                    seed = seed.wrapping_add(1);
                    (order, purpose)
                }
            };
            self.progress.say(&format!(
                "detecting: run {} of {budget} ({}), {} failing so far",
                n + 1,
                purpose.label(),
                seen_failing.len()
            ));
            let run = self.run(&order, purpose).await?;
            let before = seen_failing.len();
            seen_failing.extend(
                run.results
                    .iter()
                    .filter(|r| r.outcome.failed())
                    .map(|r| r.id.clone()),
            );
            quiet = if seen_failing.len() > before {
                0
            } else {
                quiet + 1
            };
            // The three fixed orders always run; shuffles stop once they stop teaching.
            if n + 1 >= self.options.min_runs.max(3)
                && quiet >= self.options.quiet_runs
                && n + 1 < budget
            {
                return Ok("nothing new".into());
            }
        }
        Ok("budget".into())
    }

    fn reversed(&self, tests: &[TestId]) -> Vec<TestId> {
        match &self.options.units {
            Some(units) => units.iter().rev().flatten().cloned().collect(),
            None => tests.iter().rev().cloned().collect(),
        }
    }

    fn shuffled(&self, tests: &[TestId], seed: u64) -> Vec<TestId> {
        match &self.options.units {
            Some(units) => shuffled_units(units, seed),
            None => shuffled(tests, seed),
        }
    }

    /// The detection runs (and the CI build) in which `test` ran, with its outcome.
    fn observations(&self, test: &str) -> Vec<(usize, Outcome)> {
        self.runs
            .iter()
            .filter_map(|r| {
                r.outcome_of(test)
                    .filter(|o| matches!(o, Outcome::Passed | Outcome::Failed))
                    .map(|o| (r.index, o))
            })
            .collect()
    }

    /// One culprit among `candidates` (which, run before `test`, gave `want`): halves, keeping
    /// the half that still gives `want` and inferring the other half when the first does not.
    async fn bisect(
        &mut self,
        mut candidates: Vec<TestId>,
        test: &TestId,
        want: Outcome,
    ) -> anyhow::Result<Option<TestId>> {
        while candidates.len() > 1 {
            if self.out_of_time() {
                return Ok(None);
            }
            let half = candidates.len() / 2;
            let (first, second) = candidates.split_at(half);
            let mut order = first.to_vec();
            order.push(test.clone());
            let run = self
                .run(&order, Purpose::Bisect { test: test.clone() })
                .await?;
            candidates = match run.outcome_of(test) {
                Some(o) if o == want => first.to_vec(),
                Some(Outcome::Passed | Outcome::Failed) => second.to_vec(),
                // Skipped or missing: the step says nothing; stop rather than guess.
                _ => return Ok(None),
            };
        }
        Ok(candidates.pop())
    }

    /// Does `culprits` explain every run of `test`? Victims fail exactly when a polluter ran
    /// before them; brittle tests pass exactly when a state-setter did.
    fn explains(&self, test: &str, culprits: &[TestId], kind: FindingKind) -> Vec<usize> {
        let mut unexplained = Vec::new();
        for run in &self.runs {
            let Some(outcome) = run.outcome_of(test) else {
                continue;
            };
            if !matches!(outcome, Outcome::Passed | Outcome::Failed) {
                continue;
            }
            let before = run.before(test);
            let culprit_ran = culprits.iter().any(|c| before.contains(c));
            let expected = match (kind, culprit_ran) {
                (FindingKind::Victim, true) | (FindingKind::Brittle, false) => Outcome::Failed,
                _ => Outcome::Passed,
            };
            if outcome != expected {
                unexplained.push(run.index);
            }
        }
        unexplained
    }

    /// Explains one suspect: which kind it is and, for victims and brittle tests, its culprits.
    async fn explain(
        &mut self,
        test: &TestId,
        failing_run: Option<usize>,
    ) -> anyhow::Result<Option<(Finding, Vec<TableEvidence>)>> {
        let first_run = self.runs.len();
        // Identical orders that differ: non-determinism, no run needed.
        let declared: Vec<Outcome> = self
            .runs
            .iter()
            .filter(|r| matches!(r.purpose, Purpose::Declared | Purpose::Repeat))
            .filter_map(|r| r.outcome_of(test))
            .collect();
        if declared.len() == 2 && declared[0] != declared[1] {
            return Ok(Some((
                self.flaky(test, "it passed and failed in the same order"),
                vec![],
            )));
        }
        let alone = self.run(
            std::slice::from_ref(test),
            Purpose::Alone { test: test.clone() },
        );
        let alone = alone.await?;
        let passed_somewhere = self.observations(test).iter().any(|(_, o)| o.passed());
        let (kind, want, source_run) = match alone.outcome_of(test) {
            Some(Outcome::Failed) if !passed_somewhere => {
                let mut finding = self.finding(FindingKind::Failing, test);
                finding.explanation = format!(
                    "{test} failed in every run, also alone on a fresh database: its own bug, \
                     not the order"
                );
                finding.runs = self.runs_of(test);
                return Ok(Some((finding, vec![])));
            }
            Some(Outcome::Failed) => {
                // It passed in some order: find that run's state-setter.
                let source = self
                    .runs
                    .iter()
                    .find(|r| r.passed(test) && !r.before(test).is_empty())
                    .map(|r| r.index);
                (FindingKind::Brittle, Outcome::Passed, source)
            }
            Some(Outcome::Passed) => {
                let source = failing_run
                    .filter(|&i| {
                        let run = &self.runs[i - 1];
                        run.failed(test) && !run.before(test).is_empty()
                    })
                    .or_else(|| {
                        self.runs
                            .iter()
                            .find(|r| r.failed(test) && !r.before(test).is_empty())
                            .map(|r| r.index)
                    });
                (FindingKind::Victim, Outcome::Failed, source)
            }
            _ => return Ok(None),
        };
        let Some(source_run) = source_run else {
            // Only ever failed (or passed) with nothing before it: no order explains that.
            return Ok(Some((
                self.flaky(test, "no run shows a test before it that matters"),
                vec![],
            )));
        };
        let mut culprits: Vec<TestId> = Vec::new();
        let mut candidates = self.runs[source_run - 1].before(test);
        let allowance = 2 * self.per_suspect;
        loop {
            let Some(culprit) = self.bisect(candidates.clone(), test, want).await? else {
                break;
            };
            culprits.push(culprit);
            if self.runs.len() - first_run + 2 > allowance || self.out_of_time() {
                break;
            }
            // Another culprit? The same tests without the ones found, then the suspect.
            candidates.retain(|t| !culprits.contains(t));
            if candidates.is_empty() {
                break;
            }
            let mut order = candidates.clone();
            order.push(test.clone());
            let probe = self
                .run(&order, Purpose::Bisect { test: test.clone() })
                .await?;
            if probe.outcome_of(test) != Some(want)
                || self.runs.len() - first_run + ceil_log2(candidates.len()) + 1 > allowance
            {
                break;
            }
        }
        if culprits.is_empty() {
            return Ok(None);
        }
        // Confirm each culprit on its own, recording what it leaves behind.
        let mut evidence = Vec::new();
        let mut confirmed = Vec::new();
        for culprit in &culprits {
            let (run, found) = self.run_split(std::slice::from_ref(culprit), test).await?;
            if run.outcome_of(test) == Some(want) {
                confirmed.push(culprit.clone());
                evidence.extend(found);
            }
        }
        if confirmed.is_empty() {
            return Ok(Some((
                self.flaky(
                    test,
                    "no single test before it reproduces its failure on a fresh database",
                ),
                vec![],
            )));
        }
        let unexplained = self.explains(test, &confirmed, kind);
        if !unexplained.is_empty() {
            let runs: Vec<String> = unexplained.iter().map(|i| format!("#{i}")).collect();
            return Ok(Some((
                self.flaky(
                    test,
                    &format!(
                        "no order explains its outcomes (the likeliest culprit, {}, leaves \
                         run{} {} unexplained)",
                        confirmed.join(", "),
                        if runs.len() == 1 { "" } else { "s" },
                        runs.join(", ")
                    ),
                ),
                vec![],
            )));
        }
        let mut finding = self.finding(kind, test);
        match kind {
            FindingKind::Victim => finding.polluters = confirmed,
            _ => finding.state_setters = confirmed,
        }
        finding.runs = self.runs_of(test);
        Ok(Some((finding, evidence)))
    }

    fn runs_of(&self, test: &str) -> Vec<usize> {
        self.observations(test).iter().map(|(i, _)| *i).collect()
    }

    fn finding(&self, kind: FindingKind, test: &TestId) -> Finding {
        Finding {
            kind,
            test: test.clone(),
            polluters: vec![],
            state_setters: vec![],
            evidence: vec![],
            failure: None,
            explanation: String::new(),
            fix: String::new(),
            reproduce: String::new(),
            runs: vec![],
            kept_database: None,
        }
    }

    fn flaky(&self, test: &TestId, why: &str) -> Finding {
        let mut finding = self.finding(FindingKind::Flaky, test);
        let (passed, failed) =
            self.observations(test)
                .iter()
                .fold((0, 0), |(p, f), (_, o)| match o {
                    Outcome::Passed => (p + 1, f),
                    _ => (p, f + 1),
                });
        finding.explanation = format!(
            "{test} is flaky: {why} (passed {passed}, failed {failed} of {} runs)",
            passed + failed
        );
        finding.runs = self.runs_of(test);
        finding
    }
}

/// Detects and explains: the whole hunt, or from a red build's failures when `failed_from` is
/// given (detection skipped).
pub async fn hunt<E: Executor, P: Progress>(
    exec: &mut E,
    progress: &P,
    tests: &[TestId],
    options: PlanOptions,
    failed_from: Option<FailedBuild>,
) -> anyhow::Result<Outcomes> {
    let started = Instant::now();
    let per_suspect = ceil_log2(tests.len()) + 3;
    let mut planner = Planner {
        exec,
        progress,
        options,
        started,
        runs: Vec::new(),
        per_suspect,
    };
    let (stopped, suspects): (String, Vec<(TestId, Option<usize>)>) = match &failed_from {
        None => {
            let stopped = planner.detect(tests).await?;
            let detection = planner.runs.len();
            let mut suspects: Vec<(TestId, Option<usize>)> = Vec::new();
            for run in &planner.runs[..detection] {
                for result in run.results.iter().filter(|r| r.outcome.failed()) {
                    if !suspects.iter().any(|(t, _)| t == &result.id) {
                        suspects.push((result.id.clone(), Some(run.index)));
                    }
                }
            }
            (stopped, suspects)
        }
        Some(build) => {
            // The CI build is run 0 of sorts: its order is where a victim's polluters ran.
            let mut suspects = Vec::new();
            for test in &build.failed {
                progress.say(&format!("retrying {test} alone in a fresh clone"));
                let alone = planner
                    .run(
                        std::slice::from_ref(test),
                        Purpose::Retry { test: test.clone() },
                    )
                    .await?;
                if alone.passed(test) {
                    // Inherited state: replay the build's order up to it on a fresh clone.
                    let mut order = build
                        .order
                        .iter()
                        .take_while(|t| *t != test)
                        .cloned()
                        .collect::<Vec<_>>();
                    order.push(test.clone());
                    let replay = planner
                        .run(&order, Purpose::Retry { test: test.clone() })
                        .await?;
                    suspects.push((test.clone(), Some(replay.index)));
                } else {
                    suspects.push((test.clone(), None));
                }
            }
            ("failed-from".into(), suspects)
        }
    };
    let detection_runs = match failed_from {
        None => planner.runs.len(),
        Some(_) => 0,
    };
    let mut findings = Vec::new();
    let mut evidence = BTreeMap::new();
    let mut unexplained = Vec::new();
    let total = suspects.len();
    for (k, (test, failing_run)) in suspects.iter().enumerate() {
        if planner.out_of_time() {
            unexplained.push(test.clone());
            continue;
        }
        progress.say(&format!(
            "explaining suspect {} of {total}: {test} (run {} so far)",
            k + 1,
            planner.runs.len() + 1
        ));
        match planner.explain(test, *failing_run).await? {
            Some((finding, found)) => {
                evidence.insert(test.clone(), found);
                findings.push(finding);
            }
            None => unexplained.push(test.clone()),
        }
    }
    let tests = summarise(tests, &planner.runs, &findings);
    findings.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.test.cmp(&b.test)));
    Ok(Outcomes {
        budget: BudgetUse {
            runs_used: planner.runs.len(),
            max_runs: planner.options.detection_runs + total * 2 * per_suspect,
            detection_runs,
            seconds: started.elapsed().as_secs_f64(),
            timeout_seconds: planner.options.timeout.map(|t| t.as_secs_f64()),
            detection_stopped: stopped,
            unexplained,
        },
        runs: planner.runs,
        tests,
        findings,
        evidence,
    })
}

/// Every test's verdict and counts.
fn summarise(tests: &[TestId], runs: &[Run], findings: &[Finding]) -> Vec<TestSummary> {
    // One pass over every result (a run reports each test once): 2,000 tests × 80 runs.
    let mut counts: std::collections::HashMap<&str, (usize, usize, usize)> =
        std::collections::HashMap::new();
    for result in runs.iter().flat_map(|r| &r.results) {
        let count = counts.entry(result.id.as_str()).or_default();
        match result.outcome {
            Outcome::Passed => count.0 += 1,
            Outcome::Failed => count.1 += 1,
            Outcome::Skipped => count.2 += 1,
            Outcome::Missing => {}
        }
    }
    tests
        .iter()
        .map(|id| {
            let (passed, failed, skipped) = counts.get(id.as_str()).copied().unwrap_or_default();
            let verdict = match findings.iter().find(|f| &f.test == id).map(|f| f.kind) {
                Some(FindingKind::Victim) => Verdict::Victim,
                Some(FindingKind::Brittle) => Verdict::Brittle,
                Some(FindingKind::Flaky) => Verdict::Flaky,
                Some(FindingKind::Failing) => Verdict::Failing,
                None if failed > 0 => Verdict::Flaky,
                None => Verdict::Stable,
            };
            TestSummary {
                id: id.clone(),
                verdict,
                passed,
                failed,
                skipped,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
