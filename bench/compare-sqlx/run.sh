#!/usr/bin/env bash
# The same 200 Rust tests on schema40, under #[sqlx::test] and under #[dbsandbox::test], timed in
# one run on the same PostgreSQL server (the daemon's embedded server).
#
#   bash bench/compare-sqlx/run.sh            # median of 3 runs of each suite
#   bash bench/compare-sqlx/run.sh --quick    # 1 run each
#   bash bench/compare-sqlx/run.sh --runs 5
#
# DBSANDBOX_BIN: the dbsandbox binary [default: target/release/dbsandbox, built if missing].
# The test binary is built once (cargo test --release --no-run) and then run directly with
# `-- with_sqlx` / `-- with_dbsandbox` (what `cargo test --release -- with_x` runs, minus cargo's
# start-up), with the default number of test threads. #[sqlx::test] gets DATABASE_URL = the
# daemon's admin URL (GET /v1/status → server.url), where it creates a database per test.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) runs=1 ;;
        --runs) runs="$2"; shift ;;
        *) echo "usage: $0 [--quick] [--runs N]" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "${DBSANDBOX_BIN:-}" ]; then
    DBSANDBOX_BIN="$root/target/release/dbsandbox"
    if [ ! -x "$DBSANDBOX_BIN" ]; then
        (cd "$root" && cargo build --release -p dbsandbox-cli)
    fi
fi
DBSANDBOX_BIN="$(cd "$(dirname "$DBSANDBOX_BIN")" && pwd)/$(basename "$DBSANDBOX_BIN")"
export DBSANDBOX_BIN
export PATH="$(dirname "$DBSANDBOX_BIN"):$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN

cd "$here"
echo "== building the test binary (release)" >&2
testbin="$(cargo test --release --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "compare" and m.get("executable"):
        print(m["executable"])')"
if [ -z "$testbin" ]; then
    cargo test --release --no-run   # show the error
    echo "run.sh: could not find the test binary" >&2
    exit 1
fi

echo "== starting (or attaching to) the daemon" >&2
detach="$("$DBSANDBOX_BIN" serve --detach)"
api="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api"])' "$detach")"
started="$(python3 -c 'import json,sys; print(str(json.loads(sys.argv[1]).get("started", False)).lower())' "$detach")"
auth="Authorization: Bearer $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["token"])' "$detach")"
if [ "$started" = "true" ]; then
    trap '(cd "$here" && "$DBSANDBOX_BIN" stop >/dev/null 2>&1) || true' EXIT
fi
DATABASE_URL="$(curl -sf -H "$auth" "$api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["server"]["url"])')"
export DATABASE_URL
pg_version="$(curl -sf -H "$auth" "$api/v1/status" | python3 -c 'import json,sys; s=json.load(sys.stdin)["server"]; print(s.get("version") or s.get("server_version") or "")' || true)"

# Runs one suite, prints its wall time in seconds; fails when a test fails.
time_suite() {
    local filter="$1" log="$here/target/compare-$1.log" start end
    mkdir -p "$here/target"
    start="$(date +%s.%N)"
    if ! "$testbin" "$filter" >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "run.sh: the $filter suite failed (log: $log)" >&2
        exit 1
    fi
    end="$(date +%s.%N)"
    local passed
    passed="$(grep -Eo '[0-9]+ passed' "$log" | tail -n 1 | cut -d' ' -f1)"
    if [ "$passed" != "200" ]; then
        echo "run.sh: the $filter suite ran $passed tests, expected 200 (log: $log)" >&2
        exit 1
    fi
    python3 -c "print(f'{$end - $start:.3f}')"
}

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

# One warm-up run of each (first connections, sqlx's clean-up of old test databases).
echo "== warm-up" >&2
time_suite with_dbsandbox >/dev/null
time_suite with_sqlx >/dev/null

sqlx_times=()
db_times=()
for i in $(seq 1 "$runs"); do
    # Alternate the order so neither suite always runs on a just-loaded server.
    if [ $((i % 2)) -eq 1 ]; then
        s="$(time_suite with_sqlx)"; d="$(time_suite with_dbsandbox)"
    else
        d="$(time_suite with_dbsandbox)"; s="$(time_suite with_sqlx)"
    fi
    echo "run $i/$runs: #[sqlx::test] ${s} s, #[dbsandbox::test] ${d} s" >&2
    sqlx_times+=("$s")
    db_times+=("$d")
done

s_med="$(median "${sqlx_times[@]}")"
d_med="$(median "${db_times[@]}")"
ratio="$(python3 -c "print(f'{$s_med / $d_med:.1f}')")"
threads="${RUST_TEST_THREADS:-$(nproc 2>/dev/null || echo '?')}"
echo
echo "200 tests on schema40, $threads test threads, median of $runs run(s):"
echo "  #[sqlx::test]      ${s_med} s   (runs: ${sqlx_times[*]})"
echo "  #[dbsandbox::test] ${d_med} s   (runs: ${db_times[*]})"
echo "  ratio: ${ratio}× faster (goal: ≥ 10×)"
echo
echo "| suite | #[dbsandbox::test] | #[sqlx::test] (same run) | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| 200 tests on schema40, cargo test --release, $threads threads (median of $runs${pg_version:+, PostgreSQL $pg_version}) | ${d_med} s | ${s_med} s | ${ratio}× faster | ≥ 10× |"
