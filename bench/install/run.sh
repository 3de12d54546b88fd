#!/usr/bin/env bash
# Time from nothing to the first green pytest run, as a new user pays it, for dbsandbox and for
# pytest-postgresql, on the same PostgreSQL server binaries and the same suite (test_shop.py:
# 5 tests that each commit the same row and expect the migrated state):
#
#   dbsandbox:          python -m venv; pip install pytest-dbsandbox psycopg[binary] (from
#                       OUT_DIR, which scripts/package.sh filled); pytest (the plugin starts the
#                       daemon: initdb, template from migrations/, pool) in an empty cache dir
#   pytest-postgresql:  python -m venv; pip install pytest-postgresql psycopg[binary] (from PyPI,
#                       downloaded once before timing); pytest (pg_ctl initdb + start, template
#                       loaded from the same migration)
#
#   bash bench/install/run.sh OUT_DIR [ROUNDS]       # default 3 rounds; prints a Markdown table
#
# Both installs read a local wheelhouse (pip --no-index), so the network is not timed. PostgreSQL
# refuses to run as root and pytest-postgresql runs it as the current user, so both sides run as
# user `postgres` (BENCH_USER) when started as root. PG_BIN (default: the newest
# /usr/lib/postgresql/*/bin) is the server binaries both use.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 1 ]] || { echo "usage: bash bench/install/run.sh OUT_DIR [ROUNDS]" >&2; exit 2; }
packages_dir="$(cd "$1" && pwd)"
rounds="${2:-3}"
pg_bin="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
[[ -x "$pg_bin/pg_ctl" ]] || { echo "run.sh: no pg_ctl in $pg_bin (set PG_BIN)" >&2; exit 2; }
work="$(mktemp -d /tmp/dbsandbox-install-bench.XXXXXX)"
wheelhouse="$work/wheelhouse"
trap 'rm -rf "$work"' EXIT
out="$work/packages"   # a copy the benchmark user can read (OUT_DIR may be under /root)
mkdir -p "$out"
cp "$packages_dir"/*.whl "$out/"

echo "== pip download (untimed): pytest-postgresql, psycopg[binary], pytest into $wheelhouse" >&2
PIP_CONFIG_FILE=/dev/null python3 -m pip download -q --disable-pip-version-check -d "$wheelhouse" \
  pytest-postgresql "psycopg[binary]" "pytest>=7,<9.2" >&2

as_user=()
if [[ "$(id -u)" == 0 ]]; then
  as_user=(runuser -u "${BENCH_USER:-postgres}" --)
  chown -R "${BENCH_USER:-postgres}" "$work"
  chmod 755 "$work"
fi
# Without Rust or any dbsandbox on PATH, as in the package test. The benchmark user cannot read
# root's Python (pyenv under /root), hence the system's by default.
clean_path="/usr/local/bin:/usr/bin:/bin"
python="${BENCH_PYTHON:-/usr/bin/python3}"

# Runs "$@" in $dir as the benchmark user, in a clean environment; output to $log.
in_dir() {
  local dir="$1"
  shift
  (cd "$dir" && "${as_user[@]}" env -i PATH="$clean_path" HOME="$dir" PG_CTL="$pg_bin/pg_ctl" \
    DBSANDBOX_CACHE_DIR="$dir/cache" PIP_CONFIG_FILE=/dev/null PYTHONDONTWRITEBYTECODE=1 "$@")
}

now() { date +%s.%N; }
seconds() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }

# One round of one side: prints "install first-run second-run" in seconds, or fails with the
# output. The second run is not part of the measure (a warm daemon, a new pytest-postgresql
# server): it shows what each pays on every later run.
timed_round() {
  local side="$1" dir="$work/$1-$2"
  mkdir -p "$dir"
  cp -RL "$here/$side-suite/." "$here/migrations" "$here/test_shop.py" "$dir/"
  local packages=(pytest-dbsandbox "psycopg[binary]")
  [[ "$side" == pytest-postgresql ]] && packages=(pytest-postgresql "psycopg[binary]")
  [[ ${#as_user[@]} == 0 ]] || chown -R "${BENCH_USER:-postgres}" "$dir"
  local log="$dir.log" t0 t1 t2 t3
  t0="$(now)"
  in_dir "$dir" "$python" -m venv venv >"$log" 2>&1 &&
    in_dir "$dir" venv/bin/python -m pip install -q --disable-pip-version-check --no-index \
      --find-links "$out" --find-links "$wheelhouse" "${packages[@]}" >>"$log" 2>&1 || {
    echo "run.sh: $side round $2: install failed:" >&2; cat "$log" >&2; return 1; }
  t1="$(now)"
  in_dir "$dir" venv/bin/python -m pytest -q -p no:cacheprovider >>"$log" 2>&1 || {
    echo "run.sh: $side round $2: first pytest run failed:" >&2; cat "$log" >&2; return 1; }
  t2="$(now)"
  in_dir "$dir" venv/bin/python -m pytest -q -p no:cacheprovider >>"$log" 2>&1 || {
    echo "run.sh: $side round $2: second pytest run failed:" >&2; cat "$log" >&2; return 1; }
  t3="$(now)"
  [[ "$side" != dbsandbox ]] || in_dir "$dir" venv/bin/dbsandbox stop >/dev/null 2>&1 || true
  [[ "$(grep -c "5 passed" "$log")" == 2 ]] || { echo "run.sh: $side round $2 did not pass 5 tests twice:" >&2; cat "$log" >&2; return 1; }
  echo "$(seconds "$t0" "$t1") $(seconds "$t1" "$t2") $(seconds "$t2" "$t3")"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A totals=() installs=() firsts=() seconds_runs=()
for round in $(seq "$rounds"); do
  for side in dbsandbox pytest-postgresql; do
    read -r install first second <<<"$(timed_round "$side" "$round")"
    total="$(awk -v a="$install" -v b="$first" 'BEGIN { printf "%.2f", a + b }')"
    echo "== round $round $side: install $install s + first run $first s = $total s; second run $second s" >&2
    totals[$side]+="$total "
    installs[$side]+="$install "
    firsts[$side]+="$first "
    seconds_runs[$side]+="$second "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
pg_version="$("$pg_bin/postgres" --version)"
echo "| medians of $rounds rounds, seconds | fresh venv → first green run (each round) | venv + pip install | first pytest run | second run (not in the measure) |"
echo "|---|---|---|---|---|"
for side in dbsandbox pytest-postgresql; do
  echo "| $side | **$(med "${totals[$side]}")** (${totals[$side]% }) | $(med "${installs[$side]}") | $(med "${firsts[$side]}") | $(med "${seconds_runs[$side]}") |"
done
echo
echo "Server binaries: $pg_bin ($pg_version)."
