#!/usr/bin/env bash
# Builds the release binaries and runs the benchmark harness; pass --quick for a short run,
# --only warm-loop for the warm-loop scenario alone. Honours CARGO_TARGET_DIR.
# The report (Markdown) goes to stdout; copy it into bench/RESULTS.md with the command used.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p dbsandbox-cli -p dbsandbox-bench
exec "${CARGO_TARGET_DIR:-target}/release/dbsandbox-bench" "$@"
