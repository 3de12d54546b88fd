#!/usr/bin/env bash
# Run a PostgreSQL driver's own test suite three ways and diff the outcomes test by test:
#   (a) direct   against the embedded server itself (a scratch database on it),
#   (b) database through a `database` key of `dbsandbox run` (must equal (a)),
#   (c) rollback through a rollback key (may differ from (a) only in the tests listed in
#       conformance/peers/<suite>.differences, each with its reason).
#
#   bash conformance/peers/run.sh psycopg SRC_DIR [MODE ...]        # MODE: direct database rollback
#   bash conformance/peers/run.sh node-postgres SRC_DIR [MODE ...]
#
# SRC_DIR is a checkout of the suite's public repository at the commit pinned below (the source is
# not in any package registry and is never copied into this repository).
# psycopg: its packages are installed from SRC_DIR into a virtualenv of their own ($PEERS_VENV,
# default SRC_DIR/.peers-venv); PEERS_TESTS chooses the test files (default: the modules issue 10
# names, with their async twins); each test is bounded to 60 s.
# node-postgres: `npm install --ignore-scripts` and `tsc --build` in SRC_DIR when not done yet; every
# file of packages/pg/test/integration runs as its own process (its runner's unit), bounded to 120 s.
# PEERS_OUT keeps the JUnit files and logs (default: a temporary directory); DBSANDBOX_BIN the binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PSYCOPG_COMMIT=c079c37c959a89a8684a3d3858cbaff7e5543e71
NODE_POSTGRES_COMMIT=c9e57617bc92c2ded23a75345f50eadc527bd131

usage() { echo "usage: bash conformance/peers/run.sh psycopg|node-postgres SRC_DIR [direct|database|rollback ...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
suite="$1"; src="$(cd "$2" && pwd)"; shift 2
modes=("$@"); [ ${#modes[@]} -eq 0 ] && modes=(direct database rollback)
for m in "${modes[@]}"; do case "$m" in direct|database|rollback) ;; *) usage ;; esac; done
case "$suite" in
  psycopg) pinned=$PSYCOPG_COMMIT ;;
  node-postgres) pinned=$NODE_POSTGRES_COMMIT ;;
  *) echo "peers: unknown suite '$suite' (psycopg | node-postgres)" >&2; exit 2 ;;
esac

bin="${DBSANDBOX_BIN:-$root/target/debug/dbsandbox}"
[ -x "$bin" ] || { echo "peers: no dbsandbox binary at $bin (cargo build -p dbsandbox-cli, or set DBSANDBOX_BIN)" >&2; exit 2; }
commit="$(git -C "$src" rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != "$pinned" ]; then
  echo "peers: $src is at $commit, the recorded outcomes are for $pinned (continuing)" >&2
fi

out="${PEERS_OUT:-$(mktemp -d -t dbsandbox-peers.XXXXXX)}"
mkdir -p "$out"
case "$suite" in
  psycopg)
    venv="${PEERS_VENV:-$src/.peers-venv}"
    if [ ! -x "$venv/bin/python" ]; then
      python3 -m venv "$venv"
      # Not editable: the checkout's psycopg/ directory would otherwise shadow the package on sys.path.
      "$venv/bin/pip" install -q --disable-pip-version-check "$src/psycopg" "$src/psycopg_pool" \
        "anyio>=4" pproxy pytest pytest-timeout
    fi
    tests="${PEERS_TESTS:-tests/test_connection.py tests/test_connection_async.py tests/test_cursor.py tests/test_cursor_async.py tests/test_cursor_server.py tests/test_cursor_server_async.py tests/test_transaction.py tests/test_transaction_async.py tests/test_prepared.py tests/test_prepared_async.py tests/test_copy.py tests/test_copy_async.py tests/test_pipeline.py tests/test_pipeline_async.py tests/test_notify.py tests/test_notify_async.py tests/test_errors.py}"
    ;;
  node-postgres)
    if [ ! -d "$src/packages/pg-protocol/dist" ]; then
      (cd "$src" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error && npx tsc --build)
    fi
    venv="" tests=""
    ;;
esac

# One run of the suite against the connection in $2 (a libpq DSN) and the PG* variables, written
# to $out/$1.xml and $out/$1.log. $3, when given, is a file of test ids (JUnit classname::name):
# only those run. The suite's own failures are data, not an error of this script.
suite_cmd() {
  local name="$1" dsn="$2" only="${3:-}"
  case "$suite" in
    psycopg)
      local selection=$tests
      if [ -n "$only" ]; then
        # tests.test_x::name[param] -> tests/test_x.py::name[param], as a pytest @argument file
        python3 -c 'import sys
for line in open(sys.argv[1]).read().splitlines():
    module, _, name = line.partition("::")
    print(module.replace(".", "/") + ".py::" + name)' "$only" >"$only.args"
        selection="@$only.args"
      fi
      # pytest from the checkout, in declared order, a bounded time per test (a hang is a failure).
      # Deselected: the one test that connects to addresses off this machine (RFC 5737 hosts).
      # The whole run is bounded too (SIGINT, so pytest still writes its JUnit file). A cache of
      # the run's own: psycopg's conftest refuses to run after a run that did not finish.
      (cd "$src" && PSYCOPG_IMPL=python timeout -s INT "${PEERS_MODE_TIMEOUT:-1800}" \
          "$venv/bin/python" -m pytest -q -p no:randomly --timeout 60 -o cache_dir="$out/cache-$name" \
          -k "not test_connect_error_multi_hosts_each_message_preserved" \
          --junitxml="$out/$name.xml" --test-dsn "$dsn" $selection) >"$out/$name.log" 2>&1 || true ;;
    node-postgres)
      python3 "$here/node_files.py" "$src" "$out/$name.xml" $only >"$out/$name.log" 2>&1 || true ;;
  esac
}

# One project directory for every mode: one daemon, one embedded server.
project="$out/project"
mkdir -p "$project"
stop_daemon() { (cd "$project" && "$bin" stop >/dev/null 2>&1) || true; }
trap stop_daemon EXIT

# run_mode MODE NAME [ONLY]: the suite (or the ids in ONLY) directly or through a key of MODE.
run_mode() {
  local mode="$1" name="$2" only="${3:-}"
  local start; start=$(date +%s)
  case "$mode" in
    direct)
      # The daemon's own server: a scratch database made and dropped here, beside dbsandbox's.
      local status_json admin
      status_json="$(cd "$project" && "$bin" run --port 0 --quiet -- "$bin" status --json)"
      admin="$(python3 "$here/admin_dsn.py" <<<"$status_json")"
      psql "$admin dbname=postgres" -qc "DROP DATABASE IF EXISTS peers_direct" -c "CREATE DATABASE peers_direct"
      (eval "export $(python3 "$here/admin_dsn.py" --env <<<"$status_json") PGDATABASE=peers_direct"
       suite_cmd "$name" "$admin dbname=peers_direct" "$only")
      psql "$admin dbname=postgres" -qc "DROP DATABASE IF EXISTS peers_direct WITH (FORCE)"
      ;;
    database|rollback)
      export -f suite_cmd; export suite src venv out tests here
      (cd "$project" && "$bin" run --port 0 --quiet --isolation "$mode" -- \
          bash -c "suite_cmd $name \"\$DATABASE_URL\" $only")
      ;;
  esac
  echo "peers $suite $name: $(tail -n 1 "$out/$name.log") ($(( $(date +%s) - start ))s; log $out/$name.log)"
}

for mode in "${modes[@]}"; do
  run_mode "$mode" "$mode"
done

# Rerun just the tests that differed, both ways, so that a timing test that failed once on a
# loaded machine is not taken for a difference (compare.py counts only differences seen twice).
if [[ " ${modes[*]} " == *" direct "* ]]; then
  for mode in database rollback; do
    [[ " ${modes[*]} " == *" $mode "* ]] || continue
    suspects="$out/suspects-$mode.txt"
    python3 "$here/compare.py" "$out" "$here/$suite.differences" --suspects "$mode" >"$suspects"
    [ -s "$suspects" ] || continue
    run_mode direct "direct-rerun-$mode" "$suspects"
    run_mode "$mode" "$mode-rerun" "$suspects"
  done
fi

python3 "$here/compare.py" "$out" "$here/$suite.differences"
