#!/usr/bin/env bash
# The planted suites under examples/flaky-*, hunted by `dbsandbox flaky` on the embedded server:
# each must give exactly the findings its expected.json plants (examples/flaky-assert.py), and
# the same suite with FLAKY_PLANTED=0 (every fault off) must give none.
#   bash scripts/flaky-examples.sh [pytest|jest|node-test|rust ...]   # default: all four
# DBSANDBOX_BIN: the binary (default target/debug/dbsandbox). FLAKY_RUNS: detection runs (12:
# the planted random test, failing one time in two, then misses every detection run with
# probability 2^-12; the default of 10 is for people). The clean hunts need fewer: nothing in them
# depends on order or chance.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${DBSANDBOX_BIN:-$root/target/debug/dbsandbox}"
runs="${FLAKY_RUNS:-12}"
out="$(mktemp -d /tmp/flaky-examples.XXXXXX)"
export DBSANDBOX_CACHE_DIR="${DBSANDBOX_CACHE_DIR:-$out/cache}"
trap '"$bin" stop --all >/dev/null 2>&1 || true' EXIT

hunt() {  # name dir command...
  local name=$1 dir=$2; shift 2
  echo "---- $name: dbsandbox flaky -- $*"
  (cd "$dir" && bash setup.sh >/dev/null)
  local status=0
  (cd "$dir" && "$bin" flaky --runs "$runs" --min-runs "$runs" --format json \
      --junit-out "$out/$name.xml" --html "$out/$name.html" -- "$@" >"$out/$name.json") || status=$?
  if [ "$status" -ne 1 ]; then
    echo "$name: dbsandbox flaky exited $status (1 expected: findings)"; return 1
  fi
  python3 "$root/examples/flaky-assert.py" "$dir/expected.json" "$out/$name.json"
  status=0
  (cd "$dir" && FLAKY_PLANTED=0 "$bin" flaky --quiet --runs 6 --min-runs 6 --format json -- "$@" >"$out/$name-clean.json") || status=$?
  python3 "$root/examples/flaky-assert.py" --clean "$out/$name-clean.json"
  [ "$status" -eq 0 ] || { echo "$name (clean): exit $status, 0 expected"; return 1; }
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(pytest jest node-test rust)
for suite in "${suites[@]}"; do
  case "$suite" in
    pytest) hunt pytest "$root/examples/flaky-pytest" python3 -m pytest -q ;;
    jest) hunt jest "$root/examples/flaky-jest" npx jest ;;
    node-test) hunt node-test "$root/examples/flaky-node-test" node --test test/ ;;
    rust)
      # Shares compiled dependencies with the conformance suite's Rust crate.
      CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/conformance/rust/target}" \
        hunt rust "$root/examples/flaky-rust" cargo test ;;
    *) echo "unknown suite $suite (pytest, jest, node-test, rust)"; exit 2 ;;
  esac
done
echo "reports in $out"
