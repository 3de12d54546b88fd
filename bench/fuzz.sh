#!/usr/bin/env bash
# The proxy's protocol fuzzer (crates/dbsandbox-proxy/tests/fuzz_protocol.rs) with a large
# budget: by default 10^6 frontend messages per isolation (rollback sandboxes, then pass-through
# databases), at most an hour each, in release mode. The test prints the seed and the counts;
# a failure message says which key broke, after which sessions, and how to rerun it.
#
#   bash bench/fuzz.sh                                    # 10^6 messages per isolation
#   DBSANDBOX_FUZZ_SEED=42 bash bench/fuzz.sh             # a given seed
#   bash bench/fuzz.sh fuzz_pass_through_databases        # one isolation (a test name filter)
#   DBSANDBOX_FUZZ_PROFILE=debug bash bench/fuzz.sh       # without the release build
#
# Any DBSANDBOX_FUZZ_* variable the test reads may be set (see the test's header), e.g.
# DBSANDBOX_FUZZ_SKIP_KNOWN=1 to leave out the triggers of issue 11's known bugs, or
# DBSANDBOX_FUZZ_LOG=warn to see in the proxy's log why a key broke.
set -euo pipefail
cd "$(dirname "$0")/.."
export DBSANDBOX_FUZZ_MESSAGES="${DBSANDBOX_FUZZ_MESSAGES:-1000000}"
export DBSANDBOX_FUZZ_SECONDS="${DBSANDBOX_FUZZ_SECONDS:-3600}"
export DBSANDBOX_FUZZ_CLIENTS="${DBSANDBOX_FUZZ_CLIENTS:-24}"
profile=(--release)
[[ "${DBSANDBOX_FUZZ_PROFILE:-release}" == debug ]] && profile=()
filter="${1:-fuzz_}"
# One test at a time, so each one's resident-memory bound is its own.
exec cargo test --locked "${profile[@]}" -p dbsandbox-proxy --test fuzz_protocol "$filter" \
  -- --nocapture --test-threads 1
