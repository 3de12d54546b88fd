#!/usr/bin/env bash
# Self-test of the example, independent of dbsandbox: the suite PASSES when each xdist
# worker has its own database.
#
# Does by hand what `dbsandbox run` does: starts a throwaway PostgreSQL, creates migrated
# databases gw0 and gw1, sets DBSANDBOX_PORT so conftest.py swaps the database name in
# DATABASE_URL for the worker id, and runs `pytest -n 2 --dist loadgroup`. The database named
# in DATABASE_URL does not exist, so a worker that failed to swap could not connect.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/throwaway_pg.sh"

pg_start
pg_create_migrated_db gw0
pg_create_migrated_db gw1

export DBSANDBOX_PORT=1
export DATABASE_URL="postgresql://postgres@127.0.0.1:$PG_PORT/not-a-database"
echo "running the suite with 2 workers, each on its own database (gw0, gw1); expected to pass"

status=0
run_suite "$@" || status=$?

if [[ "$status" == 0 ]]; then
  echo "OK: with one database per worker the suite passed"
  exit 0
fi
echo "UNEXPECTED: pytest exited with status $status with one database per worker" >&2
exit 1
