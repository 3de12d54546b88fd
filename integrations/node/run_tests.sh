#!/usr/bin/env bash
# Run the @dbsandbox/node tests with node --test (2 test files at a time, each in its own
# process and so its own sandbox key), twice, on the reference schema40
# (test/dbsandbox.toml names examples/pytest-shared/migrations):
#
#   1. daemon: no DBSANDBOX_URL, so the helper runs `dbsandbox serve --detach` in the current
#      directory (integrations/node/test) and attaches to or starts the project's daemon;
#   2. run:    under `dbsandbox run`, which exports DBSANDBOX_URL and DBSANDBOX_RUN;
#   3. frameworks: Jest (2 workers) and Vitest (forks, then threads) in frameworks/, through the
#      helper's setup file, on that folder's daemon (skipped with DBSANDBOX_SKIP_FRAMEWORKS=1;
#      `npm ci` there, about 20 s, when jest or vitest is missing).
#
#   bash integrations/node/run_tests.sh
#
# The binary is $DBSANDBOX_BIN, else target/debug/dbsandbox (built with `cargo build -p
# dbsandbox-cli` when missing). Installs the devDependencies (pg, postgres) with `npm ci` when
# missing or stale. `dbsandbox stop` ends the suite's daemon at the end (trap).
# Exits non-zero if either pass failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -d "$here/node_modules/pg" ] || [ ! -d "$here/node_modules/postgres" ] \
   || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) || { echo "run_tests.sh: npm ci failed" >&2; exit 2; }
fi

cd "$root"
bin="${DBSANDBOX_BIN:-target/debug/dbsandbox}"
if [ ! -x "$bin" ]; then
  if [ -n "${DBSANDBOX_BIN:-}" ]; then
    echo "run_tests.sh: DBSANDBOX_BIN=$DBSANDBOX_BIN is not an executable" >&2
    exit 2
  fi
  cargo build -p dbsandbox-cli || { echo "run_tests.sh: cargo build -p dbsandbox-cli failed" >&2; exit 2; }
fi
DBSANDBOX_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export DBSANDBOX_BIN
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT

trap 'for d in test frameworks; do (cd "$here/$d" && "$DBSANDBOX_BIN" stop >/dev/null 2>&1); done' EXIT
cd "$here/test"

echo "== daemon pass: node --test --test-concurrency=2 (in integrations/node/test)"
daemon_status=0
node --test --test-concurrency=2 || daemon_status=$?

echo "== run pass: $DBSANDBOX_BIN run --port 0 -- node --test --test-concurrency=2 (in integrations/node/test)"
run_status=0
"$DBSANDBOX_BIN" run --port 0 -- node --test --test-concurrency=2 || run_status=$?

frameworks_status=0
if [ "${DBSANDBOX_SKIP_FRAMEWORKS:-}" = 1 ]; then
  echo "== frameworks: skipped (DBSANDBOX_SKIP_FRAMEWORKS=1)"
  frameworks_status=skipped
else
  cd "$here/frameworks"
  if [ ! -d node_modules/jest ] || [ ! -d node_modules/vitest ] || [ ! -e node_modules/@dbsandbox/node ] \
     || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    # `npm install`, not `npm ci`: npm 10/11 writes locks without rollup's per-platform optional
    # packages (vitest's bundler), which `npm ci` then refuses as out of sync (npm/cli#4828).
    npm install --no-audit --no-fund --loglevel=error || frameworks_status="npm install failed"
  fi
  if [ "$frameworks_status" = 0 ]; then
    echo "== frameworks: npx jest (2 workers)"
    npx --no-install jest || frameworks_status=$?
    for pool in forks threads; do
      echo "== frameworks: npx vitest run --pool=$pool (2 workers)"
      npx --no-install vitest run --pool="$pool" || frameworks_status=$?
    done
  fi
fi

echo "@dbsandbox/node: daemon pass exit $daemon_status, dbsandbox run pass exit $run_status, Jest/Vitest exit $frameworks_status"
[ "$daemon_status" = 0 ] && [ "$run_status" = 0 ] && { [ "$frameworks_status" = 0 ] || [ "$frameworks_status" = skipped ]; }
