#!/usr/bin/env bash
# Throughput and peak memory of `dbsandbox analyze` on a 1 GiB synthetic log with sparse
# failures, against `grep -c -F` of the same literal triggers, measured in the same run.
#
#   bench/diagnose/run.sh            # 1024 MiB, 3 runs each
#   SIZE_MIB=256 RUNS=5 bench/diagnose/run.sh
#   HEADERS=0 bench/diagnose/run.sh   # no `=== RUN` filler: failures are the only hits
#
# Needs python3 and GNU time (/usr/bin/time); falls back to /proc VmHWM sampling without it.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
HEADERS=${HEADERS:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/diagnose-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "building release example (target dir $CARGO_TARGET_DIR)..." >&2
(cd "$ROOT" && cargo build --release -q -p dbsandbox-diagnose --example analyze_file)
BIN=$CARGO_TARGET_DIR/release/examples/analyze_file

LOG=$WORK/synthetic.log
GEN_FLAGS=()
if [ "$HEADERS" = 0 ]; then GEN_FLAGS+=(--no-headers); fi
python3 "$ROOT/bench/diagnose/gen_log.py" "$LOG" --mib "$SIZE_MIB" "${GEN_FLAGS[@]}" >&2
BYTES=$(stat -c %s "$LOG")
"$BIN" triggers > "$WORK/triggers.txt"
TRIGGERS=$(wc -l < "$WORK/triggers.txt")
cat "$LOG" > /dev/null   # warm the page cache so both tools read from memory

# One core for both tools: the analyzer is single-threaded by design.
PIN=""
if command -v taskset > /dev/null; then PIN="taskset -c 0"; fi

measure() { # prints "seconds max_rss_kib" for the command in "$@"
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2> /dev/null || true
    tail -n 1 "$WORK/time.txt"
  else
    local start end peak=0
    start=$(date +%s.%N)
    "$@" > "$WORK/out.txt" 2> /dev/null &
    local pid=$!
    while kill -0 "$pid" 2> /dev/null; do
      local hwm
      hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2> /dev/null || echo 0)
      [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
      sleep 0.05
    done
    wait "$pid" || true
    end=$(date +%s.%N)
    echo "$(echo "$end - $start" | bc) $peak"
  fi
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: > "$WORK/analyze.txt"
: > "$WORK/grep.txt"
for _ in $(seq "$RUNS"); do
  measure $PIN "$BIN" analyze "$LOG" >> "$WORK/analyze.txt"
  measure $PIN env LC_ALL=C grep -c -F -f "$WORK/triggers.txt" "$LOG" >> "$WORK/grep.txt"
done
GREP_HITS=$(cat "$WORK/out.txt")
"$BIN" analyze --format json "$LOG" > "$WORK/report.json" || true

A_SEC=$(awk '{print $1}' "$WORK/analyze.txt" | median)
A_RSS=$(awk '{print $2}' "$WORK/analyze.txt" | median)
G_SEC=$(awk '{print $1}' "$WORK/grep.txt" | median)
G_RSS=$(awk '{print $2}' "$WORK/grep.txt" | median)
A_MBS=$(awk -v b="$BYTES" -v s="$A_SEC" 'BEGIN {printf "%.0f", b / 1e6 / s}')
G_MBS=$(awk -v b="$BYTES" -v s="$G_SEC" 'BEGIN {printf "%.0f", b / 1e6 / s}')
RATIO=$(awk -v a="$A_SEC" -v g="$G_SEC" 'BEGIN {printf "%.2f", a / g}')

echo
echo "input: $BYTES bytes ($SIZE_MIB MiB, headers=$HEADERS), $TRIGGERS literal triggers, grep lines hit: $GREP_HITS"
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("findings:", ", ".join(f"{f['class']}={f['count']}" for f in r["findings"] + r["consequences"]))
PY
echo "runs: $RUNS (median reported); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| tool | median seconds | MB/s (10^6 B) | peak RSS |"
echo "|---|---|---|---|"
echo "| dbsandbox analyze (analyze_file example) | $A_SEC | $A_MBS | $((A_RSS / 1024)) MiB |"
echo "| LC_ALL=C grep -c -F -f triggers | $G_SEC | $G_MBS | $((G_RSS / 1024)) MiB |"
echo
echo "analyze / grep time ratio: $RATIO"
echo "all runs (seconds max_rss_kib): analyze: $(tr '\n' ';' < "$WORK/analyze.txt") grep: $(tr '\n' ';' < "$WORK/grep.txt")"
