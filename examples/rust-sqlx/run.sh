#!/usr/bin/env bash
# Runs this crate's #[dbsandbox::test] suite under `cargo test` (threads in one process) and then
# `cargo nextest run` (a process per test); both share one dbsandbox daemon, stopped at the end.
#
#   bash examples/rust-sqlx/run.sh                 # uses ../../target/debug/dbsandbox
#   DBSANDBOX_BIN=/path/to/dbsandbox bash examples/rust-sqlx/run.sh
#
# CARGO_TARGET_DIR defaults to examples/rust-sqlx/target.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

bin="${DBSANDBOX_BIN:-$here/../../target/debug/dbsandbox}"
if [ ! -x "$bin" ]; then
    echo "run.sh: no dbsandbox binary at $bin" >&2
    echo "run.sh: build it (cargo build -p dbsandbox-cli in the repository root) or set DBSANDBOX_BIN" >&2
    exit 1
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export DBSANDBOX_BIN="$bin"
export PATH="$(dirname "$bin"):$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
# The tests start (or attach to) this project's own daemon, not a `dbsandbox run` around us.
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN

stop_daemon() {
    (cd "$here" && "$DBSANDBOX_BIN" stop >/dev/null 2>&1) || true
}
trap stop_daemon EXIT

echo "== cargo test" >&2
cargo test

if cargo nextest --version >/dev/null 2>&1; then
    echo "== cargo nextest run" >&2
    cargo nextest run
else
    echo "run.sh: cargo-nextest is not installed; skipped the nextest run (cargo install cargo-nextest)" >&2
    exit 1
fi
