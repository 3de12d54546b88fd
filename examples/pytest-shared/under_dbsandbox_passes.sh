#!/usr/bin/env bash
# The real thing: the suite PASSES under `dbsandbox run`, in random order, with two workers.
#
# Runs, from this directory (its dbsandbox.toml names the migrations), three times with
# three pytest-randomly seeds:
#
#   dbsandbox run --port 0 -- python3 -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed=N
#
# Each xdist worker connects to its own rollback sandbox (key gw0 or gw1) and the autouse
# fixture in conftest.py resets it before every test. Exits 0 only if all three runs pass.
# Environment: DBSANDBOX_BIN (default: ../../target/debug/dbsandbox, built by
# `cargo build -p dbsandbox-cli`), PYTHON (default python3). Extra arguments go to pytest.
set -uo pipefail

EXAMPLE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$EXAMPLE_DIR"
DBSANDBOX_BIN="${DBSANDBOX_BIN:-../../target/debug/dbsandbox}"
PYTHON="${PYTHON:-python3}"

if [[ ! -x "$DBSANDBOX_BIN" ]]; then
  echo "error: $DBSANDBOX_BIN not found; build it (cargo build -p dbsandbox-cli) or set DBSANDBOX_BIN" >&2
  exit 2
fi

failed=()
for seed in 1 2 3; do
  echo "== seed $seed: dbsandbox run --port 0 -- $PYTHON -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed=$seed $*"
  status=0
  PYTHONDONTWRITEBYTECODE=1 "$DBSANDBOX_BIN" run --port 0 -- \
    "$PYTHON" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed="$seed" "$@" ||
    status=$?
  if [[ "$status" != 0 ]]; then
    failed+=("seed $seed (exit status $status)")
  fi
done

if [[ ${#failed[@]} == 0 ]]; then
  echo "OK: under dbsandbox the suite passed with seeds 1, 2 and 3"
  exit 0
fi
echo "FAILED under dbsandbox: ${failed[*]}" >&2
exit 1
