//! node --test: being built (the adapter lists, orders and reads nothing yet).

use super::{Context, Invocation, ProcessOutput, Runner};
use crate::model::{TestId, TestResult};

pub struct NodeTest {
    #[allow(dead_code)]
    command: Vec<String>,
    #[allow(dead_code)]
    runner_word: usize,
}

impl NodeTest {
    pub fn new(command: &[String], runner_word: usize) -> NodeTest {
        NodeTest {
            command: command.to_vec(),
            runner_word,
        }
    }
}

impl Runner for NodeTest {
    fn name(&self) -> &'static str {
        "node_test"
    }

    fn list(&self, _ctx: &Context) -> anyhow::Result<Vec<TestId>> {
        anyhow::bail!("the node --test adapter is not built yet")
    }

    fn invocations(&self, _order: &[TestId], _ctx: &Context) -> anyhow::Result<Vec<Invocation>> {
        anyhow::bail!("the node --test adapter is not built yet")
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
