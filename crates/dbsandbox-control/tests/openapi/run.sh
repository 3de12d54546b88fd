#!/usr/bin/env bash
# Validates crates/dbsandbox-control/openapi.json against a running daemon, for CI:
#
#   bash crates/dbsandbox-control/tests/openapi/run.sh
#
# 1. starts `dbsandbox serve --detach` ($DBSANDBOX_BIN, default target/debug/dbsandbox relative
#    to the repository root) in a temporary project on schema40, with its own cache directory;
# 2. checks that the daemon serves the checked-in openapi.json (else the binary is stale);
# 3. explicit checks: curl for the documented errors (bad JSON, unknown route, invalid key), then
#    explicit.py for the happy paths (writes through psql, reset, release, runs), each response
#    checked against the document;
# 4. schemathesis (pinned; installed with pip when missing, in a venv under the cache directory)
#    fuzzes every operation but
#    POST /v1/shutdown, positive and negative data plus the document's links, with the checks
#    not_a_server_error, status_code_conformance, content_type_conformance,
#    response_schema_conformance;
# 5. POST /v1/shutdown, checked, and the daemon must exit; a trap runs `dbsandbox stop` anyway.
#
# Environment: OPENAPI_MAX_EXAMPLES (default 50 per operation), OPENAPI_SEED (default 1: the same
# cases every run; set another to explore), OPENAPI_KEEP=1 keeps the temporary directory.
# Exits non-zero on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
spec="$root/crates/dbsandbox-control/openapi.json"

bin="${DBSANDBOX_BIN:-target/debug/dbsandbox}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "openapi: no dbsandbox binary at $bin: build it (cargo build -p dbsandbox-cli) or set DBSANDBOX_BIN" >&2
  exit 2
fi

schema40="$root/../shared/reference/schema40.sql"
[ -f "$schema40" ] || schema40="$root/examples/pytest-shared/migrations/0001_schema40.sql"

# schemathesis 3.x needs a hypothesis from before 6.131.15 (later ones removed an internal it uses).
st_version=3.39.16
hypothesis_version=6.131.14
# In a virtual environment of its own: installed globally, schemathesis's pytest plugin would load
# into every other pytest run on the machine (seconds of import, warnings).
venv="${OPENAPI_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dbsandbox/openapi-venv}"
st_python="$venv/bin/python"
[ -x "$st_python" ] || python3 -m venv "$venv"
if ! "$st_python" - "$st_version" "$hypothesis_version" <<'EOF' 2>/dev/null; then
import sys, schemathesis, hypothesis
sys.exit(0 if (schemathesis.__version__, hypothesis.__version__) == tuple(sys.argv[1:]) else 1)
EOF
  echo "openapi: installing schemathesis $st_version (hypothesis $hypothesis_version) in $venv" >&2
  PIP_ROOT_USER_ACTION=ignore "$st_python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$st_version" "hypothesis==$hypothesis_version"
fi

work="$(mktemp -d -t dbsandbox-openapi.XXXXXX)"
project="$work/project"
export DBSANDBOX_CACHE_DIR="$work/cache"
mkdir -p "$project/migrations"
cp "$schema40" "$project/migrations/0001_schema40.sql"
printf 'migrations = "migrations"\n' >"$project/dbsandbox.toml"

cleanup() {
  status=$?
  (cd "$project" && "$bin" stop >/dev/null 2>&1) || true
  if [ "${OPENAPI_KEEP:-0}" = 1 ]; then echo "openapi: kept $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cd "$project"
detach="$("$bin" serve --detach --pool-size 4 --idle-timeout 10m)"
api="$(printf '%s' "$detach" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api"])')"
token="$(printf '%s' "$detach" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')"
auth="Authorization: Bearer $token"
echo "openapi: daemon at $api ($bin)"

failures=0
fail() {
  echo "FAIL $*"
  failures=$((failures + 1))
}

# The daemon embeds openapi.json at build time: a different document means a stale binary.
curl -sS --fail "$api/openapi.json" -o "$work/served.json"
if ! python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
  "$work/served.json" "$spec"; then
  echo "openapi: the daemon serves a different openapi.json than $spec: rebuild $bin" >&2
  exit 1
fi
echo "ok   GET /openapi.json is the checked-in document"

# curl_check LABEL STATUS CODE CURL-ARGS…: the status, a JSON content type and the error code.
curl_check() {
  local label="$1" want_status="$2" want_code="$3"
  shift 3
  local out="$work/curl.out" headers="$work/curl.headers" got
  got="$(curl -sS -o "$out" -D "$headers" -w '%{http_code}' -H "$auth" "$@")"
  if [ "$got" != "$want_status" ]; then
    fail "$label: status $got, expected $want_status: $(head -c 300 "$out")"
  elif ! grep -qi '^content-type: application/json' "$headers"; then
    fail "$label: not JSON: $(grep -i '^content-type' "$headers" || echo 'no content-type')"
  elif ! python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["error"]["code"] != sys.argv[2])' \
    "$out" "$want_code" 2>/dev/null; then
    fail "$label: error code is not $want_code: $(head -c 300 "$out")"
  else
    echo "ok   $label -> $got $want_code"
  fi
}
curl_check "bad JSON body" 400 bad_request -X POST -H 'Content-Type: application/json' \
  --data '{"key": ' "$api/v1/sandboxes"
curl_check "unknown route" 404 not_found "$api/v1/no-such-route"
curl_check "invalid key" 400 invalid_key "$api/v1/sandboxes/not%20a%20key"
curl_check "invalid key (reset)" 400 invalid_key -X POST "$api/v1/sandboxes/$(printf 'k%.0s' {1..49})/reset"

"$st_python" "$here/explicit.py" "$spec" "$api" "$token" || failures=$((failures + 1))

# Fuzzing, with the daemon's token. Security parameters are not generated: negative tests would
# put bytes in headers that the HTTP parser rejects before the API sees them (explicit.py checks
# the 401 answers).
# hooks.py drops negative path parameters that schemathesis would not URL-quote.
examples="${OPENAPI_MAX_EXAMPLES:-50}"
seed="${OPENAPI_SEED:-1}"
echo "openapi: schemathesis $st_version, $examples examples per operation, seed $seed"
started=$SECONDS
if ! (cd "$work" && PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=hooks \
  "$st_python" -m schemathesis.cli run "$spec" \
  --base-url "$api" \
  --header "$auth" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path /v1/shutdown \
  --data-generation-method all \
  --generation-with-security-parameters false \
  --stateful links \
  --hypothesis-max-examples "$examples" \
  --hypothesis-seed "$seed" \
  --hypothesis-database none \
  --request-timeout 30000 \
  --experimental-no-failfast \
  --no-color); then
  fail "schemathesis found responses that do not match openapi.json (above)"
fi
echo "openapi: schemathesis took $((SECONDS - started)) s"

# The daemon survived the fuzzing, then shuts down on request.
curl_ok() { curl -sS --fail -o /dev/null "$@"; }
curl_ok "$api/v1/health" || fail "the daemon does not answer /v1/health after fuzzing"
body="$(curl -sS -X POST -w ' %{http_code}' -H "$auth" "$api/v1/shutdown")"
if [ "$body" = '{"stopping":true} 202' ]; then
  echo "ok   POST /v1/shutdown -> 202"
else
  fail "POST /v1/shutdown: $body"
fi
for _ in $(seq 1 150); do
  curl_ok --max-time 1 "$api/v1/health" 2>/dev/null || break
  sleep 0.2
done
if curl_ok --max-time 1 "$api/v1/health" 2>/dev/null; then
  fail "the daemon still answers 30 s after POST /v1/shutdown"
fi

if [ "$failures" -ne 0 ]; then
  echo "openapi: $failures failure(s)"
  exit 1
fi
echo "openapi: all checks passed"
