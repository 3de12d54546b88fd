#!/usr/bin/env bash
# Installs pytest-dbsandbox and its test dependencies, then runs its suite twice, each time with
# two xdist workers in random order, on schema40 (tests/dbsandbox.toml names
# examples/pytest-shared/migrations):
#
#   1. daemon: no DBSANDBOX_URL, so the plugin runs `dbsandbox serve --detach` in the suite's
#      rootdir (integrations/python/tests) and attaches to or starts the project's daemon;
#   2. run:    under `dbsandbox run`, which exports DBSANDBOX_URL and DBSANDBOX_RUN.
#
#   bash integrations/python/run_tests.sh [extra pytest arguments]
#
# Runs from the repository root whatever the current directory. Environment: DBSANDBOX_BIN
# (default target/debug/dbsandbox, built with `cargo build -p dbsandbox-cli` when missing), PYTHON
# (default python3). `dbsandbox stop` ends the suite's daemon at the end (trap), so none lingers.
# Exits non-zero if either pass failed and ends with `pytest-dbsandbox: N passed, M failed`.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
PYTHON="${PYTHON:-python3}"
DBSANDBOX_BIN="${DBSANDBOX_BIN:-target/debug/dbsandbox}"
TESTS="integrations/python/tests"

if [[ ! -x "$DBSANDBOX_BIN" ]]; then
  if [[ "$DBSANDBOX_BIN" != target/debug/dbsandbox ]]; then
    echo "error: DBSANDBOX_BIN=$DBSANDBOX_BIN is not an executable" >&2
    exit 2
  fi
  echo "== $DBSANDBOX_BIN not found: cargo build -p dbsandbox-cli"
  cargo build -p dbsandbox-cli || { echo "error: cargo build -p dbsandbox-cli failed" >&2; exit 2; }
fi
DBSANDBOX_BIN="$(cd "$(dirname "$DBSANDBOX_BIN")" && pwd)/$(basename "$DBSANDBOX_BIN")"
export DBSANDBOX_BIN

echo "== installing ./integrations/python and $TESTS/requirements.txt"
# --no-deps: the `dbsandbox` wheel it depends on is DBSANDBOX_BIN here (scripts/package.sh builds it).
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps ./integrations/python &&
  PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check -r "$TESTS/requirements.txt" ||
  { echo "error: pip install failed" >&2; exit 2; }

tmp="$(mktemp -d)"
cleanup() {
  (cd "$REPO_ROOT/$TESTS" && "$DBSANDBOX_BIN" stop >/dev/null 2>&1)
  rm -rf "$tmp"
}
trap cleanup EXIT
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT

pytest_args=(-n 2 -p randomly -p no:cacheprovider -rfE --rootdir "$TESTS")

echo "== daemon pass: $PYTHON -m pytest ${pytest_args[*]} $TESTS $*"
daemon_status=0
PYTHONDONTWRITEBYTECODE=1 "$PYTHON" -m pytest "${pytest_args[@]}" \
  --junitxml="$tmp/daemon.xml" "$TESTS" "$@" || daemon_status=$?

echo "== run pass: (cd $TESTS && $DBSANDBOX_BIN run --port 0 -- $PYTHON -m pytest ${pytest_args[*]} . $*)"
run_status=0
(cd "$TESTS" && PYTHONDONTWRITEBYTECODE=1 "$DBSANDBOX_BIN" run --port 0 -- \
  "$PYTHON" -m pytest "${pytest_args[@]/#$TESTS/.}" --junitxml="$tmp/run.xml" . "$@") || run_status=$?

# Counts from pytest's JUnit reports (errors count as failed).
counts="$("$PYTHON" - "$tmp/daemon.xml" "$tmp/run.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

passed = failed = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        continue
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = sum(int(s.get("tests", 0)) for s in suites)
    bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    passed += total - bad - skipped
    failed += bad
print(passed, failed)
PY
)"
read -r passed failed <<<"$counts"
status=0
for pass_status in "$daemon_status" "$run_status"; do
  if [[ "$pass_status" != 0 ]]; then
    status="$pass_status"
    if [[ "$failed" == 0 ]]; then
      failed="?"  # pytest failed before or outside the tests (see its output above)
    fi
  fi
done
echo "pytest-dbsandbox: $passed passed, $failed failed (daemon pass: exit $daemon_status, dbsandbox run pass: exit $run_status)"
exit "$status"
