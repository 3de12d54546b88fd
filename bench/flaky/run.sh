#!/usr/bin/env bash
# dbsandbox flaky against detect-test-pollution (PyPI) on the same planted pytest suite, in the
# same run: runs and wall time per polluter found, and what each tool reports.
#
#   bash bench/flaky/run.sh [SUITE_DIR]     # default: examples/flaky-pytest
#
# detect-test-pollution (its console script: it loads itself into pytest by module name) needs
# the victim's name (--failing-test) and bisects with one pytest
# process per step. It is measured twice: as users run it, on one database that every step shares
# (`dbsandbox run --isolation database`, like a local dev database), and in a fair variant where
# every pytest process starts on a fresh clone (bench/flaky/fresh_db.py). dbsandbox flaky gets
# nothing but the command: it finds the victims itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
suite="${1:-$root/examples/flaky-pytest}"
bin="${DBSANDBOX_BIN:-$root/target/release/dbsandbox}"
[ -x "$bin" ] || bin="$root/target/debug/dbsandbox"
export DBSANDBOX_CACHE_DIR="${DBSANDBOX_CACHE_DIR:-$(mktemp -d /tmp/dbsandbox-bench-flaky.XXXXXX)}"
python3 -c "import detect_test_pollution" 2>/dev/null ||
  python3 -m pip install -q --disable-pip-version-check detect-test-pollution==1.2.0
out="$(mktemp -d /tmp/flaky-bench.XXXXXX)"
cd "$suite"
# The suite's own runner command (pytest, plus whatever its README says).
cmd=(python3 -m pytest -q)

echo "== dbsandbox flaky ($("$bin" --version))"
start=$(date +%s.%N)
set +e
"$bin" flaky --quiet --format json -- "${cmd[@]}" >"$out/flaky.json"
status=$?
set -e
flaky_seconds=$(echo "$(date +%s.%N) - $start" | bc)
echo "exit $status in ${flaky_seconds} s"

victims=$(python3 -c "
import json,sys
for f in json.load(open('$suite/expected.json'))['findings']:
    if f['kind']=='victim': print(f['test'])")

run_dtp() {  # variant victim_suffix
  local variant=$1 suffix=$2 id
  id=$(python3 -c "
import json
h=json.load(open('$out/flaky.json'))
print(next(t['id'] for t in h['tests'] if t['id'].endswith('$suffix')))")
  local env=()
  [ "$variant" = fresh ] && env=(env "PYTHONPATH=$root/bench/flaky${PYTHONPATH:+:$PYTHONPATH}" "PYTEST_ADDOPTS=-p fresh_db")
  local t0 t1 log="$out/dtp-$variant-${suffix//[^A-Za-z0-9_]/_}.log"
  t0=$(date +%s.%N)
  set +e
  "$bin" run --quiet --isolation database -- "${env[@]}" detect-test-pollution \
    --failing-test "$id" --tests . >"$log" 2>&1
  set -e
  t1=$(date +%s.%N)
  local steps found
  steps=$(grep -c '^running step' "$log" || true)
  found=$(sed -n 's/^-> the polluting test is: //p' "$log")
  [ -n "$found" ] || found="(none: $( (grep -- '^->' "$log" || echo 'no verdict') | tail -1))"
  # pytest processes: discovery, alone, whole group, the steps, the double check.
  printf '%s\t%s\t%s\t%s\t%s\n' "$variant" "$id" "$((steps + 4))" "$(echo "$t1 - $t0" | bc)" "$found" >>"$out/dtp.tsv"
}
: >"$out/dtp.tsv"
for v in $victims; do
  run_dtp shared "$v"
  run_dtp fresh "$v"
done

python3 - "$out" "$flaky_seconds" "$suite/expected.json" <<'PY'
import json, sys
out, flaky_seconds, expected = sys.argv[1], float(sys.argv[2]), json.load(open(sys.argv[3]))
hunt = json.load(open(f"{out}/flaky.json"))
want = {f["test"]: f.get("polluters", []) for f in expected["findings"] if f["kind"] == "victim"}
def ok(victim, polluter):
    return any(victim.endswith(v) and any(polluter.endswith(p) for p in ps) for v, ps in want.items())
found = [(f["test"], p) for f in hunt["findings"] if f["kind"] == "victim" for p in f["polluters"]]
right = sum(ok(v, p) for v, p in found)
runs = hunt["budget"]["runs_used"]
print(f"\n| tool | polluters found (right / reported) | runs (pytest processes) | wall s | runs per polluter | s per polluter |")
print("|---|---|---|---|---|---|")
print(f"| dbsandbox flaky (no hints; also finds brittle/flaky) | {right} / {len(found)} | {runs} | {flaky_seconds:.1f} | {runs/max(right,1):.1f} | {flaky_seconds/max(right,1):.1f} |")
rows = [l.rstrip("\n").split("\t") for l in open(f"{out}/dtp.tsv")]
for variant, label in [("shared", "detect-test-pollution, shared database"), ("fresh", "detect-test-pollution, fresh clone per pytest process")]:
    mine = [r for r in rows if r[0] == variant]
    good = sum(ok(r[1], r[4]) for r in mine)
    n_runs = sum(int(r[2]) for r in mine)
    secs = sum(float(r[3]) for r in mine)
    print(f"| {label} (told each victim) | {good} / {len(mine)} | {n_runs} | {secs:.1f} | {n_runs/max(good,1):.1f} | {secs/max(good,1):.1f} |")
print("\nWhat detect-test-pollution reported:")
for r in rows:
    print(f"  {r[0]:6} {r[1]} -> {r[4]}  ({'right' if ok(r[1], r[4]) else 'WRONG'})")
print("\nWhat dbsandbox flaky reported:")
for f in hunt["findings"]:
    print(f"  {f['kind']:7} {f['test']}: {f['explanation'][:160]}")
PY
echo "raw results in $out"
