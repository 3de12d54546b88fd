#!/usr/bin/env bash
# Run the @dbsandbox/node tests with node --test (2 test files at a time, each in its own
# process and so its own sandbox key) under `dbsandbox run`, on the reference schema40.
#
#   bash integrations/node/run_tests.sh
#
# The binary is $DBSANDBOX_BIN, else target/debug/dbsandbox (built with `cargo build -p
# dbsandbox` when missing; waiting for another build's cargo lock is fine).
# Installs the devDependencies (pg, postgres) with `npm ci` when missing or stale.
# Exits with the test run's status.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -d "$here/node_modules/pg" ] || [ ! -d "$here/node_modules/postgres" ] \
   || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$root"
bin="${DBSANDBOX_BIN:-target/debug/dbsandbox}"
if [ ! -x "$bin" ]; then
  if [ -n "${DBSANDBOX_BIN:-}" ]; then
    echo "run_tests.sh: DBSANDBOX_BIN=$DBSANDBOX_BIN is not an executable" >&2
    exit 2
  fi
  cargo build -p dbsandbox-cli
fi

set +e
"$bin" run --port 0 --migrations examples/pytest-shared/migrations -- \
  node --test --test-concurrency=2 integrations/node/test/
status=$?
exit "$status"
