#!/usr/bin/env bash
# Django's own test suite, modules of issue 10, two ways, compared test by test:
#   (a) direct    Django's own runner (DiscoverRunner) against the embedded server: Django creates
#                 test_django_default / test_django_other there and clones them per worker;
#   (b) dbsandbox pytest_dbsandbox.django.DbsandboxTestRunner through `dbsandbox run`: every test
#                 database and worker is a key, cloned from a template migrate_template.py built.
# Both with --parallel 2 (DJANGO_PARALLEL). (b) may differ from (a) only in the tests listed in
# conformance/django/django.differences, each with its reason.
#
#   bash conformance/django/run.sh SRC_DIR [direct|dbsandbox ...]
#
# SRC_DIR is Django's sdist unpacked (it carries tests/), at the version pinned below:
#   pip download --no-binary :all: --no-deps django==5.2.19 && tar xzf django-5.2.19.tar.gz
# It is never copied into this repository. DJANGO_VENV: a virtualenv with Django from SRC_DIR and
# the modules' requirements (default SRC_DIR/.conformance-venv, made here when missing).
# DJANGO_MODULES: the test modules (default: issue 10's). DJANGO_PROJECT: the dbsandbox project
# directory (default SRC_DIR/.dbsandbox-project). DJANGO_OUT keeps the logs (default: a
# temporary directory); DJANGO_NO_RERUN=1 skips the rerun of differing tests (the bench uses it);
# DBSANDBOX_BIN the binary. Each mode's wall time goes to DJANGO_OUT/times.txt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
DJANGO_VERSION=5.2.19

usage() { echo "usage: bash conformance/django/run.sh SRC_DIR [direct|dbsandbox ...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
[ -f "$1/tests/runtests.py" ] || { echo "django: $1 has no tests/runtests.py (an unpacked Django sdist)" >&2; exit 2; }
src="$(cd "$1" && pwd)"; shift
modes=("$@"); [ ${#modes[@]} -eq 0 ] && modes=(direct dbsandbox)
for m in "${modes[@]}"; do case "$m" in direct|dbsandbox) ;; *) usage ;; esac; done

bin="${DBSANDBOX_BIN:-$root/target/debug/dbsandbox}"
[ -x "$bin" ] || { echo "django: no dbsandbox binary at $bin (cargo build -p dbsandbox-cli, or set DBSANDBOX_BIN)" >&2; exit 2; }
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
venv="${DJANGO_VENV:-$src/.conformance-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # tests/requirements/postgres.txt, and of py3.txt what these modules import (tblib: --parallel
  # tracebacks; Pillow: model_fields' ImageField tests); pytest: pytest-dbsandbox depends on it.
  "$venv/bin/pip" install -q --disable-pip-version-check "$src" "psycopg[binary]>=3.1.8" \
    "psycopg-pool>=3.2.0" tblib Pillow pytest
fi
version="$("$venv/bin/python" -c 'import django; print(django.__version__)')"
if [ "$version" != "$DJANGO_VERSION" ]; then
  echo "django: the virtualenv has Django $version, the recorded outcomes are for $DJANGO_VERSION (continuing)" >&2
fi
module_list="${DJANGO_MODULES:-basic transactions transaction_hooks select_for_update postgres_tests queries model_fields}"
read -r -a modules <<<"$module_list"
parallel="${DJANGO_PARALLEL:-2}"

out="${DJANGO_OUT:-$(mktemp -d -t dbsandbox-django.XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# One project (one daemon, one embedded server) for both modes, the same for every run of this
# SRC_DIR (DJANGO_PROJECT), so its template is built once per fingerprint: what Django's
# create_test_db would make of a new test database for these modules.
project="${DJANGO_PROJECT:-$src/.dbsandbox-project}"
mkdir -p "$project"
cat >"$project/dbsandbox.toml" <<TOML
migrate_cmd = "$venv/bin/python $here/migrate_template.py $src/tests ${modules[*]}"
watch = ["$here/dbsandbox_settings.py", "$here/migrate_template.py"]
# postgres_tests' migrations create untrusted extensions (bloom, ...), and the direct run is the
# server's superuser too: the same role both ways.
superuser = true
TOML
export PYTHONPATH="$here:$root/integrations/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1 DBSANDBOX_PROJECT_DIR="$project" DBSANDBOX_BIN="$bin"
stop_daemon() { (cd "$project" && "$bin" stop >/dev/null 2>&1) || true; }
trap stop_daemon EXIT

# runtests MODE NAME [LABEL ...]: Django's runner on the modules (or the labels), logged to
# $out/NAME.log, its outcomes to $out/NAME.xml. The suite's failures are data, not an error here.
runtests() {
  local mode="$1" name="$2"; shift 2
  local labels=("$@"); [ ${#labels[@]} -eq 0 ] && read -r -a labels <<<"$module_list"
  (cd "$src/tests" && DJANGO_CONFORMANCE_MODE="$mode" timeout -s INT "${DJANGO_MODE_TIMEOUT:-3600}" \
      "$venv/bin/python" -W ignore::ResourceWarning runtests.py --settings=dbsandbox_settings \
      --noinput -v 2 --parallel "$parallel" "${labels[@]}") >"$out/$name.log" 2>&1 || true
  python3 "$here/outcomes.py" "$out/$name.log" "$out/$name.xml"
}

run_mode() {
  local mode="$1" name="$2"; shift 2
  local start end; start=$(date +%s.%N)
  case "$mode" in
    direct)
      local status_json
      status_json="$(cd "$project" && "$bin" run --port 0 --quiet -- "$bin" status --json)"
      (eval "export $(python3 "$root/conformance/peers/admin_dsn.py" --env <<<"$status_json")"
       runtests direct "$name" "$@")
      ;;
    dbsandbox)
      export -f runtests; export src venv out here parallel module_list
      (cd "$project" && "$bin" run --port 0 --quiet -- bash -c 'runtests dbsandbox "$@"' _ "$name" "$@")
      ;;
  esac
  end=$(date +%s.%N)
  local seconds; seconds=$(python3 -c "print(f'{$end - $start:.1f}')")
  echo "$name $seconds" >>"$out/times.txt"
  echo "django $name: $(grep -E '^(Ran |OK|FAILED)' "$out/$name.log" | tr '\n' ' ')(${seconds}s; log $out/$name.log)"
}

# The template is built (or found in the cache) before the modes' timing starts; its own time
# is recorded as "template" (a cache hit when the fingerprint was seen before).
template_start=$(date +%s.%N)
(cd "$project" && "$bin" run --port 0 --quiet -- true)
echo "template $(python3 -c "print(f'{$(date +%s.%N) - $template_start:.1f}')")" >>"$out/times.txt"
for mode in "${modes[@]}"; do
  run_mode "$mode" "$mode"
done

# Rerun just the tests that differed, both ways, so that a test that failed once on a loaded
# machine is not taken for a difference (compare.py counts only differences seen twice).
if [[ " ${modes[*]} " == *" direct "* && " ${modes[*]} " == *" dbsandbox "* && -z "${DJANGO_NO_RERUN:-}" ]]; then
  python3 "$here/compare.py" "$out" "$here/django.differences" --suspects >"$out/suspects.txt"
  if [ -s "$out/suspects.txt" ]; then
    mapfile -t suspects <"$out/suspects.txt"
    run_mode direct direct-rerun "${suspects[@]}"
    run_mode dbsandbox dbsandbox-rerun "${suspects[@]}"
  fi
fi

[[ " ${modes[*]} " == *" direct "* ]] || exit 0
python3 "$here/compare.py" "$out" "$here/django.differences"
