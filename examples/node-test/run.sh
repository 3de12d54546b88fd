#!/usr/bin/env bash
# CI entry of the node-test example: four test files run at the same time
# (node --test --test-concurrency=4, each file in its own process) through @dbsandbox/node,
# WITHOUT `dbsandbox run`. The helper runs `dbsandbox serve --detach` in this directory (its
# dbsandbox.toml names migrations/), attaches to or starts this project's daemon, and gives each
# test file's process its own sandbox, reset before every test. The files sign up the same fixed
# email, expect exact counts and order id 1: they would collide on one shared database.
#
#   DBSANDBOX_BIN=/path/to/dbsandbox bash examples/node-test/run.sh
#
# Installs node_modules with `npm ci` when missing or stale (pg, postgres, and a link to
# ../../integrations/node). Runs the suite twice, then `dbsandbox stop` (trap), so no daemon
# lingers. Environment: DBSANDBOX_BIN (default: dbsandbox on PATH; its directory is put first on
# PATH).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
bin="${DBSANDBOX_BIN:-$(command -v dbsandbox || true)}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "run.sh: set DBSANDBOX_BIN to the dbsandbox binary (not found: '${DBSANDBOX_BIN:-dbsandbox on PATH}')" >&2
  exit 2
fi
DBSANDBOX_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export DBSANDBOX_BIN PATH="$(dirname "$DBSANDBOX_BIN"):$PATH"
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT DATABASE_URL

if [[ ! -d node_modules/pg || ! -d node_modules/postgres || ! -e node_modules/@dbsandbox/node \
      || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "== npm ci"
  npm ci --no-audit --no-fund --loglevel=error || { echo "run.sh: npm ci failed" >&2; exit 2; }
fi

trap '"$DBSANDBOX_BIN" stop >/dev/null 2>&1' EXIT

failed=()
for round in 1 2; do
  echo "== round $round: node --test --test-concurrency=4 test/*.test.mjs"
  node --test --test-concurrency=4 test/*.test.mjs || failed+=("round $round (exit $?)")
done

if [[ ${#failed[@]} == 0 ]]; then
  echo "node-test example: OK"
  exit 0
fi
echo "node-test example: FAILED: ${failed[*]}" >&2
exit 1
