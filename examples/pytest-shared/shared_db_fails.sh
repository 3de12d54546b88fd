#!/usr/bin/env bash
# Proves the problem: the suite FAILS when both xdist workers share one database.
#
# Starts a throwaway plain PostgreSQL, creates one migrated database, runs
# `pytest -n 2 -p randomly` against it without dbsandbox (DBSANDBOX_PORT unset, so nothing
# is reset between tests), and exits 0 only if pytest failed the expected way: test failures
# (exit status 1) including a unique violation. Several tests commit the same name ('alice')
# into t0, so the failure does not depend on the order or on timing. Exits 1 if the suite
# passed or failed for another reason. Extra arguments go to pytest (e.g. --randomly-seed=1).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/throwaway_pg.sh"

pg_start
pg_create_migrated_db shared

unset DBSANDBOX_PORT DBSANDBOX_HOST DBSANDBOX_URL
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/shared"
echo "running the suite with 2 workers sharing $DATABASE_URL (expected to fail)"

status=0
run_suite "$@" 2>&1 | tee "$PG_TMP/pytest.out" || status=$?

if [[ "$status" == 1 ]] && grep -qE 'UniqueViolation|duplicate key value violates unique constraint' "$PG_TMP/pytest.out"; then
  echo "OK: with one shared database the suite failed as expected (unique violations, wrong counts)"
  exit 0
fi
if [[ "$status" == 0 ]]; then
  echo "UNEXPECTED: the suite passed on a shared database; the example no longer shows the problem" >&2
else
  echo "UNEXPECTED: pytest exited with status $status without the expected unique violation" >&2
fi
exit 1
