#!/usr/bin/env bash
# Every test of the project, as CI runs it (after .ci/run installed what they need):
#   1. the workspace's tests (unit, CLI and daemon end to end, proxy) on an embedded server;
#   2. the rollback-sandbox conformance suites with real drivers, through `dbsandbox run`, and
#      Django's own test suite modules through the Django runner against Django's own runner;
#   3. the pytest plugin's and the Node helper's own suites;
#   4. the example suites through each integration, without `dbsandbox run`: Rust
#      #[dbsandbox::test] under cargo test and cargo nextest, pytest -n 2 in random order,
#      node --test with concurrency;
#   5. `dbsandbox flaky` on the planted suites: exactly the planted findings, none with the faults off;
#   6. the control API against its OpenAPI document (schemathesis) on a running daemon.
# Each step installs the Python and Node packages it needs when they are missing (pip, npm);
# cargo-nextest must be installed. DBSANDBOX_BIN overrides the binary the scripts use (default:
# target/debug/dbsandbox, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

step() { printf '\n==== %s\n' "$*"; }

# The CLI's end-to-end tests run examples/pytest-shared: its packages, when missing.
python3 -c "import psycopg, sqlalchemy, xdist, pytest_randomly" 2>/dev/null ||
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check \
    -r examples/pytest-shared/requirements.txt

step "workspace tests"
cargo nextest run --workspace --locked
cargo build --locked -p dbsandbox-cli
export DBSANDBOX_BIN="${DBSANDBOX_BIN:-$root/target/debug/dbsandbox}"

step "conformance suites"
bash conformance/run.sh
# Django's own tests of issue 10's modules, Django's runner against DbsandboxTestRunner (~2 min).
bash conformance/django/ci.sh

step "integration suites"
bash integrations/python/run_tests.sh
bash integrations/node/run_tests.sh

step "examples through the integrations"
# Shares compiled dependencies (sqlx, tokio-postgres) with the conformance suite's Rust crate.
CARGO_TARGET_DIR="$root/conformance/rust/target" bash examples/rust-sqlx/run.sh
bash examples/pytest-plugin/run.sh
bash examples/django/run.sh
bash examples/node-test/run.sh

step "dbsandbox flaky on the planted suites (pytest, Jest, node --test, cargo test)"
CARGO_TARGET_DIR="$root/conformance/rust/target" bash scripts/flaky-examples.sh

step "control API against openapi.json"
bash crates/dbsandbox-control/tests/openapi/run.sh

step "packages: built, installed offline without Rust, examples through them"; bash scripts/package-test.sh
