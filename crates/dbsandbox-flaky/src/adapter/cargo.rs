//! cargo test / cargo nextest: being built (the adapter lists, orders and reads nothing yet).

use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{TestId, TestResult};

pub struct Cargo {
    #[allow(dead_code)]
    command: Vec<String>,
    #[allow(dead_code)]
    runner_word: usize,
    #[allow(dead_code)]
    nextest: bool,
}

impl Cargo {
    pub fn new(command: &[String], runner_word: usize, nextest: bool) -> Cargo {
        Cargo {
            command: command.to_vec(),
            runner_word,
            nextest,
        }
    }
}

impl Runner for Cargo {
    fn name(&self) -> &'static str {
        "cargo"
    }

    fn list(&self, _ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        anyhow::bail!("the cargo test / cargo nextest adapter is not built yet")
    }

    fn invocations(&self, _order: &[TestId], _ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        anyhow::bail!("the cargo test / cargo nextest adapter is not built yet")
    }

    fn results(
        &self,
        _invocation: &Invocation,
        _output: &ProcessOutput,
    ) -> anyhow::Result<Vec<TestResult>> {
        Ok(Vec::new())
    }

    fn reproduce(&self, order: &[TestId]) -> String {
        order.join(" ")
    }
}
