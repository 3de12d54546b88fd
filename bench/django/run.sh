#!/usr/bin/env bash
# Issue 10's full-suite wall time: Django's own test modules (conformance/django/run.sh's) with
# Django's own runner on the embedded server (it creates test_django_default/_other, migrates
# them and clones them for its workers) against DbsandboxTestRunner (keys cloned from the
# template), both --parallel 2, alternating which goes first, ROUNDS rounds (default 3); prints
# the medians and the ratio.
#
#   bash bench/django/run.sh SRC_DIR [ROUNDS]
#
# SRC_DIR, DJANGO_VENV, DJANGO_MODULES, DBSANDBOX_BIN: as for conformance/django/run.sh.
# BENCH_OUT keeps each round's logs (default: a temporary directory).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
[ $# -ge 1 ] || { echo "usage: bash bench/django/run.sh SRC_DIR [ROUNDS]" >&2; exit 2; }
src="$1"; rounds="${2:-3}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench/django: ROUNDS must be a positive number, not '$rounds'" >&2; exit 2; }
out="${BENCH_OUT:-$(mktemp -d -t dbsandbox-bench-django.XXXXXX)}"
mkdir -p "$out"

for round in $(seq 1 "$rounds"); do
  order=(direct dbsandbox); (( round % 2 == 0 )) && order=(dbsandbox direct)
  DJANGO_OUT="$out/round-$round" DJANGO_NO_RERUN=1 \
    bash "$root/conformance/django/run.sh" "$src" "${order[@]}" >"$out/round-$round.txt" 2>&1 || {
      echo "bench/django: round $round failed, see $out/round-$round.txt" >&2; tail -n 20 "$out/round-$round.txt" >&2; exit 1; }
  grep -E '^django |^all ' "$out/round-$round.txt" | sed "s/^/round $round: /"
done

python3 - "$out" "$rounds" <<'PY'
import re
import statistics
import sys
from pathlib import Path

out, rounds = Path(sys.argv[1]), int(sys.argv[2])
wall = {"direct": [], "dbsandbox": [], "template": []}
inner = {"direct": [], "dbsandbox": []}
for n in range(1, rounds + 1):
    for line in (out / f"round-{n}" / "times.txt").read_text().splitlines():
        name, seconds = line.split()
        wall[name].append(float(seconds))
    for mode in inner:
        ran = re.search(r"^Ran (\d+) tests? in ([\d.]+)s", (out / f"round-{n}" / f"{mode}.log").read_text(), re.M)
        inner[mode].append(float(ran.group(2)))
median = {k: statistics.median(v) for k, v in wall.items()}
ran = {k: statistics.median(v) for k, v in inner.items()}
print(f"\nmedians of {rounds} (seconds)            direct  dbsandbox  ratio (dbsandbox / direct)")
print(f"wall time, runtests.py to exit         {median['direct']:6.1f}  {median['dbsandbox']:9.1f}  {median['dbsandbox'] / median['direct']:.2f}")
print(f"Django's 'Ran N tests in' (no DB set-up) {ran['direct']:6.1f}  {ran['dbsandbox']:9.1f}  {ran['dbsandbox'] / ran['direct']:.2f}")
print(f"template step before the dbsandbox run (cache hit after the first build): {median['template']:.1f}")
print(f"samples: {wall}")
PY
