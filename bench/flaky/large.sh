#!/usr/bin/env bash
# dbsandbox flaky on a generated pytest suite of 2,000 tests with 5 planted victim/polluter pairs
# (examples/flaky-pytest/generate_large.py): the findings must be exactly the planted ones, and
# the runs must stay within 5 × (⌈log₂ n⌉ + 3) plus the detection budget.
#   bash bench/flaky/large.sh [TESTS] [SEED]      # defaults: 2000 7
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${DBSANDBOX_BIN:-$root/target/debug/dbsandbox}"
tests="${1:-2000}"; seed="${2:-7}"
out="$(mktemp -d /tmp/flaky-large.XXXXXX)"
export DBSANDBOX_CACHE_DIR="${DBSANDBOX_CACHE_DIR:-$out/cache}"
trap '"$bin" stop --all >/dev/null 2>&1 || true' EXIT
python3 "$root/examples/flaky-pytest/generate_large.py" "$out/suite" --tests "$tests" --victims 5 --seed "$seed"
cd "$out/suite"
status=0
"$bin" flaky --format json -- python3 -m pytest -q >"$out/hunt.json" || status=$?
[ "$status" -eq 1 ] || { echo "dbsandbox flaky exited $status (1 expected)"; exit 1; }
python3 "$root/examples/flaky-assert.py" expected.json "$out/hunt.json"
python3 - "$out/hunt.json" <<'PY'
import json, math, statistics, sys
h = json.load(open(sys.argv[1]))
n = len(h["tests"])
b = h["budget"]
detect = [r["seconds"] for r in h["runs"] if r["phase"] in ("declared", "repeat", "reversed", "shuffled")]
explain = [r["seconds"] for r in h["runs"] if r["phase"] not in ("declared", "repeat", "reversed", "shuffled")]
bound = 5 * (math.ceil(math.log2(n)) + 3)
per = {}
for r in h["runs"]:
    if r.get("test"):
        per[r["test"]] = per.get(r["test"], 0) + 1
print(f"{n} tests: {b['runs_used']} runs ({b['detection_runs']} detection, stopped: {b['detection_stopped']}), "
      f"{b['runs_used'] - b['detection_runs']} explaining (bound {bound}), {b['seconds']:.0f} s wall")
print(f"runs per victim: {sorted(per.values())} (bound ⌈log₂ n⌉ + 3 = {math.ceil(math.log2(n)) + 3})")
print(f"median run: detection {statistics.median(detect):.1f} s, explanation {statistics.median(explain):.1f} s")
assert b["runs_used"] - b["detection_runs"] <= bound, "over the bound"
PY
