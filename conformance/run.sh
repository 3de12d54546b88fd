#!/usr/bin/env bash
# Run the dbsandbox conformance suites through `dbsandbox run` with real drivers.
#
#   bash conformance/run.sh              # all four suites
#   bash conformance/run.sh python       # one of: python | node | rust | java
#
# Builds nothing of dbsandbox itself: the binary is $DBSANDBOX_BIN, or target/release/dbsandbox,
# or target/debug/dbsandbox (relative to the repository root), whichever exists first.
# Installs each suite's dependencies when missing (pip install -r, npm ci; cargo fetches its own).
# Prints one line per suite and exits non-zero if any suite failed. Each suite's full output
# goes to $CONFORMANCE_LOGS (default: a temporary directory) and is shown when it fails.
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

if [ -z "${DBSANDBOX_BIN:-}" ]; then
  for candidate in "$root/target/release/dbsandbox" "$root/target/debug/dbsandbox"; do
    if [ -x "$candidate" ]; then DBSANDBOX_BIN="$candidate"; break; fi
  done
fi
if [ -z "${DBSANDBOX_BIN:-}" ] || [ ! -x "$DBSANDBOX_BIN" ]; then
  echo "conformance: no dbsandbox binary: build it (cargo build -p dbsandbox-cli) or set DBSANDBOX_BIN" >&2
  exit 2
fi

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(python node rust java)
for s in "${suites[@]}"; do
  case "$s" in python|node|rust|java) ;; *) echo "conformance: unknown suite '$s' (python|node|rust|java)" >&2; exit 2 ;; esac
done

# Each suite's `dbsandbox run` starts (or attaches to) its directory's daemon: stop them at the end,
# so that no daemon outlives the suites.
stop_daemons() {
  for s in "${suites[@]}"; do
    (cd "$here/$s" && "$DBSANDBOX_BIN" stop >/dev/null 2>&1) || true
  done
}
trap stop_daemons EXIT

logs="${CONFORMANCE_LOGS:-$(mktemp -d -t dbsandbox-conformance.XXXXXX)}"
mkdir -p "$logs"
PYTHON="${PYTHON:-python3}"

install_python() {
  if ! "$PYTHON" -c 'import psycopg, psycopg2, pytest, sys; v = tuple(int(x) for x in pytest.__version__.split(".")[:2]); sys.exit(v >= (9, 2))' 2>/dev/null; then
    "$PYTHON" -m pip install -q -r "$here/python/requirements.txt"
  fi
}
install_node() {
  if [ ! -d "$here/node/node_modules/pg" ] || [ ! -d "$here/node/node_modules/pg-copy-streams" ] || [ ! -d "$here/node/node_modules/pg-cursor" ] \
     || [ "$here/node/package-lock.json" -nt "$here/node/node_modules/.package-lock.json" ]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
# pgjdbc from Debian (libpostgresql-jdbc-java: Maven Central is not reachable here); the suite is
# one source file that `java` compiles and runs itself.
PGJDBC_JAR="${PGJDBC_JAR:-/usr/share/java/postgresql.jar}"
install_java() {
  if [ ! -f "$PGJDBC_JAR" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpostgresql-jdbc-java >/dev/null
  fi
  command -v java >/dev/null && [ -f "$PGJDBC_JAR" ]
}
install_rust() {
  # compile before starting dbsandbox, so the build is not counted in the run
  cargo test --manifest-path "$here/rust/Cargo.toml" --no-run --quiet
}

run_suite() {
  local suite="$1"
  case "$suite" in
    python) (cd "$here/python" && "$DBSANDBOX_BIN" run --port 0 --migrations "$here/migrations" -- \
                "$PYTHON" -m pytest -q -rA) ;;
    node)   (cd "$here/node" && "$DBSANDBOX_BIN" run --port 0 --migrations "$here/migrations" -- \
                npm test --silent) ;;
    rust)   (cd "$here/rust" && "$DBSANDBOX_BIN" run --port 0 --migrations "$here/migrations" -- \
                cargo test --no-fail-fast --quiet) ;;
    java)   (cd "$here/java" && "$DBSANDBOX_BIN" run --port 0 --migrations "$here/migrations" -- \
                java -cp "$PGJDBC_JAR" Conformance.java) ;;
  esac
}

failed=0
suites_passed=0
suites_failed=0
for suite in "${suites[@]}"; do
  log="$logs/$suite.log"
  start=$(date +%s)
  if ! "install_$suite" >"$log" 2>&1; then
    echo "conformance $suite: FAILED to install dependencies (see $log)"
    tail -n 20 "$log" | sed 's/^/    /'
    failed=1
    suites_failed=$((suites_failed + 1))
    continue
  fi
  run_suite "$suite" >>"$log" 2>&1
  status=$?
  secs=$(( $(date +%s) - start ))
  # the runner's own closing counts, for the one-line summary
  case "$suite" in
    python) counts=$(grep -E '(passed|failed|error).* in [0-9.]+s' "$log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//') ;;
    node|java) counts=$(printf 'pass %s, fail %s' "$(grep -E '^# pass ' "$log" | tail -n 1 | awk '{print $3}')" "$(grep -E '^# fail ' "$log" | tail -n 1 | awk '{print $3}')") ;;
    rust)   counts=$(grep -E '^test result:' "$log" | awk '{p+=$4; f+=$6} END {printf "%d passed, %d failed", p, f}') ;;
  esac
  if [ "$status" -eq 0 ]; then
    echo "conformance $suite: ok ($counts; ${secs}s; log $log)"
    suites_passed=$((suites_passed + 1))
  else
    echo "conformance $suite: FAILED, exit $status ($counts; ${secs}s; log $log)"
    tail -n 40 "$log" | sed 's/^/    /'
    failed=1
    suites_failed=$((suites_failed + 1))
  fi
done
# One closing line in the plain form CI reads: suites, not tests (each suite's counts are above).
echo "conformance: $suites_passed passed, $suites_failed failed"
exit $failed
