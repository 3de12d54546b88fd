//! Jest: being built (the adapter lists, orders and reads nothing yet).

use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{TestId, TestResult};

pub struct Jest {
    #[allow(dead_code)]
    command: Vec<String>,
    #[allow(dead_code)]
    runner_word: usize,
}

impl Jest {
    pub fn new(command: &[String], runner_word: usize, _cwd: &std::path::Path) -> Jest {
        Jest {
            command: command.to_vec(),
            runner_word,
        }
    }
}

impl Runner for Jest {
    fn name(&self) -> &'static str {
        "jest"
    }

    fn list(&self, _ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        anyhow::bail!("the Jest adapter is not built yet")
    }

    fn invocations(&self, _order: &[TestId], _ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        anyhow::bail!("the Jest adapter is not built yet")
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
