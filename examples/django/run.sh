#!/usr/bin/env bash
# CI entry of the Django example: the shop's suite through pytest-dbsandbox's Django integration,
# WITHOUT `dbsandbox run`. The runner (TEST_RUNNER in shopsite/settings.py) and the pytest-django
# fixture run `dbsandbox serve --detach` here (dbsandbox.toml: the template is migrated with
# `python manage.py migrate`, fingerprinted on shop/migrations and the models), then take a
# rollback key for TestCase and a database key for TransactionTestCase per worker.
#
#   DBSANDBOX_BIN=/path/to/dbsandbox bash examples/django/run.sh
#
# 1. python manage.py test --parallel 2           must pass (18 tests)
# 2. python manage.py test --keepdb               must pass (--keepdb is harmless)
# 3. pytest -n 2 -p randomly (pytest-django)      must pass (23 tests), seeds 1 and 2
# 4. control: Django's own DiscoverRunner on a plain database of the same server (test database
#    created by Django, TestCase in one transaction, flush after TransactionTestCase): must FAIL
#    with a duplicate key, because a second connection's commit leaks out of a TestCase and
#    flush loses the data migration's rows and does not reset sequences.
# Installs ../../integrations/python (pip) every time and requirements.txt when an import is
# missing; the daemon is stopped at the end (trap). Environment: DBSANDBOX_BIN (default:
# dbsandbox on PATH), PYTHON (default python3).
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
unset DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT DATABASE_URL SHOP_TEST_RUNNER

pip_install() { PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --disable-pip-version-check "$@"; }
if ! "$PYTHON" -c "import django, pytest_django, psycopg, xdist, pytest_randomly" 2>/dev/null; then
  echo "== pip install -r requirements.txt"
  pip_install -r requirements.txt || { echo "run.sh: pip install -r requirements.txt failed" >&2; exit 2; }
fi
# --no-deps: pytest-dbsandbox depends on the `dbsandbox` wheel (the binary), replaced here by
# DBSANDBOX_BIN; scripts/package-test.sh installs the real pair.
echo "== pip install --no-deps ../../integrations/python"
pip_install --no-deps ../../integrations/python || { echo "run.sh: pip install of pytest-dbsandbox failed" >&2; exit 2; }

trap '"$DBSANDBOX_BIN" stop >/dev/null 2>&1' EXIT
# Bytecode caches under shop/migrations would count as watched files and change the fingerprint.
export PYTHONDONTWRITEBYTECODE=1

failed=()
expect_ok() {  # expect_ok LABEL 'Ran N tests|N passed' COMMAND...
  local label="$1" summary="$2" out status=0
  shift 2
  echo "== $label: $*"
  out="$(mktemp)"
  "$@" >"$out" 2>&1 || status=$?
  tail -n 4 "$out"
  if [[ "$status" != 0 ]] || ! grep -q "$summary" "$out"; then
    cat "$out" >&2
    failed+=("$label (exit $status)")
  fi
  rm -f "$out"
}

expect_ok "manage.py test --parallel 2" "Ran 18 tests" "$PYTHON" manage.py test --parallel 2
expect_ok "manage.py test --keepdb" "Ran 18 tests" "$PYTHON" manage.py test --keepdb
for seed in 1 2; do
  expect_ok "pytest -n 2 seed $seed" "23 passed" \
    "$PYTHON" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed="$seed"
done

echo "== control: Django's own DiscoverRunner on a plain database of the same server, expected to fail"
server_url="$("$PYTHON" -c "from pytest_dbsandbox import client; print(client.connect('.').request('GET', '/v1/status')['server']['url'])")"
out="$(mktemp)"
status=0
DATABASE_URL="$server_url" SHOP_TEST_RUNNER=django.test.runner.DiscoverRunner \
  "$PYTHON" manage.py test --noinput >"$out" 2>&1 || status=$?
grep -E "^(FAIL|ERROR):|^FAILED" "$out"
if [[ "$status" == 1 ]] && grep -q "duplicate key value" "$out" && grep -q "^FAILED" "$out"; then
  echo "OK: without sandboxes the tests see each other's data (leaked commit, flushed catalogue, sequences)"
else
  cat "$out" >&2
  failed+=("control run (exit $status, expected 1 with a duplicate key)")
fi
rm -f "$out"

if [[ ${#failed[@]} == 0 ]]; then
  echo "django example: OK (manage.py test --parallel 2, --keepdb and pytest -n 2 passed; control failed as expected)"
  exit 0
fi
echo "django example: FAILED: ${failed[*]}" >&2
exit 1
