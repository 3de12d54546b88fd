#!/usr/bin/env bash
# Fetches the planted cargo suite's crates (tokio, tokio-postgres: conformance/rust's lock), for CI:
#   bash examples/flaky-rust/setup.sh
# Build and run it with CARGO_TARGET_DIR=conformance/rust/target, which already holds every
# dependency once the conformance suite has been built: only this crate compiles.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cargo fetch --locked --target "$(rustc -vV | sed -n "s/^host: //p")"
