#!/usr/bin/env bash
# CI entry of the pytest-plugin example: the suite runs through pytest-dbsandbox WITHOUT
# `dbsandbox run`. The plugin runs `dbsandbox serve --detach` in this directory (pytest's rootdir,
# whose dbsandbox.toml names migrations/), attaches to or starts this project's daemon, and gives
# each xdist worker its own sandbox, reset before every test (dbsandbox_autoreset in pytest.ini).
#
#   DBSANDBOX_BIN=/path/to/dbsandbox bash examples/pytest-plugin/run.sh [extra pytest arguments]
#
# 1. three runs with two workers in random order (seeds 1, 2, 3): must pass;
# 2. a control run with the reset switched off (-o dbsandbox_autoreset=false): must FAIL with a
#    unique violation, which shows the tests really collide without isolation.
# Installs ../../integrations/python (pip) every time and requirements.txt when an import is
# missing. The daemon is stopped at the end (trap), so none lingers. Environment: DBSANDBOX_BIN
# (default: dbsandbox on PATH; its directory is put first on PATH), PYTHON (default python3).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
PYTHON="${PYTHON:-python3}"
bin="${DBSANDBOX_BIN:-$(command -v dbsandbox || true)}"
if [[ -z "$bin" || ! -x "$bin" ]]; then
  echo "run.sh: set DBSANDBOX_BIN to the dbsandbox binary (not found: '${DBSANDBOX_BIN:-dbsandbox on PATH}')" >&2
  exit 2
fi
DBSANDBOX_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
export DBSANDBOX_BIN PATH="$(dirname "$DBSANDBOX_BIN"):$PATH"
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT DATABASE_URL

pip_install() { PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check "$@"; }
if ! "$PYTHON" -c "import psycopg, psycopg2, sqlalchemy, xdist, pytest_randomly" 2>/dev/null; then
  echo "== pip install -r requirements.txt"
  pip_install -r requirements.txt || { echo "run.sh: pip install -r requirements.txt failed" >&2; exit 2; }
fi
echo "== pip install --no-deps ../../integrations/python"
pip_install --no-deps ../../integrations/python || { echo "run.sh: pip install of pytest-dbsandbox failed" >&2; exit 2; }

trap '"$DBSANDBOX_BIN" stop >/dev/null 2>&1' EXIT
export PYTHONDONTWRITEBYTECODE=1

failed=()
for seed in 1 2 3; do
  echo "== seed $seed: $PYTHON -m pytest -n 2 -p randomly --randomly-seed=$seed $*"
  "$PYTHON" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed="$seed" "$@" ||
    failed+=("seed $seed (exit $?)")
done

echo "== control: the same with the reset switched off (-o dbsandbox_autoreset=false), expected to fail"
out="$(mktemp)"
status=0
"$PYTHON" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed=1 \
  -o dbsandbox_autoreset=false "$@" >"$out" 2>&1 || status=$?
tail -n 5 "$out"
if [[ "$status" == 1 ]] && grep -q "UniqueViolation" "$out"; then
  echo "OK: without the reset the tests collide (unique violations, wrong counts)"
else
  failed+=("control run (exit $status, expected 1 with UniqueViolation)")
fi
rm -f "$out"

if [[ ${#failed[@]} == 0 ]]; then
  echo "pytest-plugin example: OK (3 seeds passed, control failed as expected)"
  exit 0
fi
echo "pytest-plugin example: FAILED: ${failed[*]}" >&2
exit 1
