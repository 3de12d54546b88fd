#!/usr/bin/env bash
# Installs pytest-dbsandbox and its test dependencies, then runs its suite under `dbsandbox run`
# with two xdist workers in random order, on schema40 (examples/pytest-shared/migrations).
#
#   bash integrations/python/run_tests.sh [extra pytest arguments]
#
# Runs from the repository root whatever the current directory. Environment: DBSANDBOX_BIN
# (default target/debug/dbsandbox, built with `cargo build -p dbsandbox-cli` when missing), PYTHON
# (default python3). Exits with pytest's status and ends with `pytest-dbsandbox: N passed, M failed`.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
DBSANDBOX_BIN="${DBSANDBOX_BIN:-target/debug/dbsandbox}"

if [[ ! -x "$DBSANDBOX_BIN" ]]; then
  echo "== $DBSANDBOX_BIN not found: cargo build -p dbsandbox-cli"
  cargo build -p dbsandbox-cli || { echo "error: cargo build -p dbsandbox-cli failed" >&2; exit 2; }
fi

echo "== installing ./integrations/python and integrations/python/tests/requirements.txt"
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check ./integrations/python \
  -r integrations/python/tests/requirements.txt ||
  { echo "error: pip install failed" >&2; exit 2; }

report="$(mktemp)"
trap 'rm -f "$report"' EXIT
echo "== $DBSANDBOX_BIN run --port 0 --migrations examples/pytest-shared/migrations -- $PYTHON -m pytest -n 2 -p randomly integrations/python/tests $*"
status=0
PYTHONDONTWRITEBYTECODE=1 "$DBSANDBOX_BIN" run --port 0 --migrations examples/pytest-shared/migrations -- \
  "$PYTHON" -m pytest -n 2 -p randomly -p no:cacheprovider -rfE \
  --junitxml="$report" integrations/python/tests "$@" || status=$?

# Counts from pytest's JUnit report (errors count as failed).
counts="$("$PYTHON" - "$report" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (ET.ParseError, OSError):
    print("0 0")
    sys.exit()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - failed - skipped, failed)
PY
)"
read -r passed failed <<<"$counts"
if [[ "$status" != 0 && "$failed" == 0 ]]; then
  failed="?"  # pytest failed before or outside the tests (see its output above)
fi
echo "pytest-dbsandbox: $passed passed, $failed failed"
exit "$status"
