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

# One timed round of one side: prints the seconds, or fails with the output.
timed_round() {
  local side="$1" dir="$work/$1-$2"
  mkdir -p "$dir"
  cp -R "$here/$side-suite/." "$here/migrations" "$here/test_shop.py" "$dir/"
  local packages=(pytest-dbsandbox "psycopg[binary]")
  [[ "$side" == pytest-postgresql ]] && packages=(pytest-postgresql "psycopg[binary]")
  [[ ${#as_user[@]} == 0 ]] || chown -R "${BENCH_USER:-postgres}" "$dir"
  local log="$dir.log"
  local start end
  start="$(date +%s.%N)"
  if ! "${as_user[@]}" env -i PATH="$clean_path" HOME="$dir" PG_CTL="$pg_bin/pg_ctl" \
      DBSANDBOX_CACHE_DIR="$dir/cache" PIP_CONFIG_FILE=/dev/null \
      PYTHONDONTWRITEBYTECODE=1 bash -c '
        set -e
        cd "$1"; shift
        "$0" -m venv venv
        venv/bin/python -m pip install -q --disable-pip-version-check --no-index \
          --find-links "'"$out"'" --find-links "'"$wheelhouse"'" "$@"
        venv/bin/python -m pytest -q -p no:cacheprovider
      ' "$python" "$dir" "${packages[@]}" >"$log" 2>&1; then
    echo "run.sh: $side round $2 failed:" >&2
    cat "$log" >&2
    return 1
  fi
  end="$(date +%s.%N)"
  if [[ "$side" == dbsandbox ]]; then
    (cd "$dir" && "${as_user[@]}" env DBSANDBOX_CACHE_DIR="$dir/cache" venv/bin/dbsandbox stop >/dev/null 2>&1 || true)
  fi
  grep -q "5 passed" "$log" || { echo "run.sh: $side round $2 did not pass 5 tests:" >&2; cat "$log" >&2; return 1; }
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f\n", e - s }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A times=()
for round in $(seq "$rounds"); do
  for side in dbsandbox pytest-postgresql; do
    t="$(timed_round "$side" "$round")"
    echo "== round $round $side: $t s" >&2
    times[$side]+="$t "
  done
done

pg_version="$("$pg_bin/postgres" --version)"
echo "| from a fresh virtualenv to the first green pytest run (5 tests), median of $rounds | seconds (each round) |"
echo "|---|---|"
for side in dbsandbox pytest-postgresql; do
  m="$(tr ' ' '\n' <<<"${times[$side]}" | grep . | median)"
  echo "| $side | $m (${times[$side]% }) |"
done
echo
echo "Server binaries: $pg_bin ($pg_version)."
