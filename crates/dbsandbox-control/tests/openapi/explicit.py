"""Explicit request/response checks of the control API against openapi.json (run by run.sh).

Usage: python3 explicit.py OPENAPI_JSON API_URL TOKEN

Walks the happy paths the fuzzer rarely reaches (a key that wrote rows, its reset and release, a
run with keys of both isolations) and the documented errors, and checks for each response that its
status is documented for the operation, that it is JSON, and that its body matches the documented
schema. Writes go through psql when it is installed (skipped otherwise). Prints one line per check
and a closing "N passed, N failed" line; exits 1 on any failure.
"""

import json
import shutil
import subprocess
import sys
import time

import requests
import schemathesis

spec_path, api, token = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
schema = schemathesis.from_path(spec_path, base_url=api)
spec = json.load(open(spec_path))
passed, failed = 0, 0


def check(label, method, path, template, *, expect, code=None, body=None, raw=None, params=None,
          authorized=True):
    """One request (with the daemon's token unless not `authorized`); `template` is the documented
    path ("/v1/sandboxes/{key}") or None for an undocumented route. Returns the parsed JSON body
    (or None)."""
    global passed, failed
    problems = []
    headers = {"Authorization": f"Bearer {token}"} if authorized else {}
    kwargs = {"params": params, "timeout": 60, "headers": headers}
    if raw is not None:
        kwargs["data"] = raw
        headers["Content-Type"] = "application/json"
    elif body is not None:
        kwargs["json"] = body
    response = requests.request(method, api + path, **kwargs)
    try:
        data = response.json()
    except ValueError:
        data = None
        problems.append("body is not JSON")
    if not response.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {response.headers.get('content-type')!r}")
    if response.status_code != expect:
        problems.append(f"status {response.status_code}, expected {expect}")
    if code is not None and not (isinstance(data, dict) and data.get("error", {}).get("code") == code):
        problems.append(f"error code is not {code!r}")
    if template is not None:
        documented = spec["paths"][template][method.lower()]["responses"]
        if str(response.status_code) not in documented:
            problems.append(f"status {response.status_code} is not documented for {method} {template}")
        else:
            try:
                schema[template][method].validate_response(response)
            except Exception as e:  # noqa: BLE001 - schemathesis raises several kinds
                problems.append(f"response does not match the schema: {str(e).splitlines()[0]}")
    if problems:
        failed += 1
        print(f"FAIL {label}: {method} {path} -> {response.status_code} {response.text[:400]}")
        for p in problems:
            print(f"     {p}")
    else:
        passed += 1
        print(f"ok   {label}: {method} {path} -> {response.status_code}")
    return data


def expect_true(label, condition, detail=""):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok   {label}")
    else:
        failed += 1
        print(f"FAIL {label} {detail}")


def psql(url, sql, options=""):
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "PGOPTIONS": options}
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def psql_value(url, sql):
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    done = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, env=env,
                          capture_output=True, text=True)
    return done.stdout


def tables_of(key, run=None, want=None):
    """GET the sandbox until its tables are `want` (PostgreSQL publishes table statistics, which
    database keys read, within about a second), at most 5 s."""
    params = {"run": run} if run else None
    deadline = time.monotonic() + 5
    while True:
        data = check(f"get {key}", "GET", f"/v1/sandboxes/{key}", "/v1/sandboxes/{key}", expect=200, params=params)
        tables = data.get("tables") if isinstance(data, dict) else None
        if want is None or tables == want or time.monotonic() > deadline:
            return tables
        time.sleep(0.25)


has_psql = shutil.which("psql") is not None

# Documented errors.
check("bad JSON", "POST", "/v1/sandboxes", "/v1/sandboxes", raw="{not json", expect=400, code="bad_request")
check("array body", "POST", "/v1/sandboxes", "/v1/sandboxes", raw='["k", null, null, null]', expect=400, code="bad_request")
check("unknown field", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"kee": "x"}, expect=400, code="bad_request")
check("wrong type", "POST", "/v1/runs", "/v1/runs", body={"port": "6543"}, expect=400, code="bad_request")
check("invalid key in body", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"key": "no spaces"}, expect=400, code="invalid_key")
check("invalid key in path", "GET", "/v1/sandboxes/no%20spaces", "/v1/sandboxes/{key}", expect=400, code="invalid_key")
check("key too long", "DELETE", "/v1/sandboxes/" + "k" * 49, "/v1/sandboxes/{key}", expect=400, code="invalid_key")
check("unknown key", "GET", "/v1/sandboxes/nobody", "/v1/sandboxes/{key}", expect=404, code="not_found")
check("unknown run", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"run": "r999999"}, expect=404, code="not_found")
check("unknown run", "GET", "/v1/runs/r999999", "/v1/runs/{id}", expect=404, code="not_found")
check("no such owner", "POST", "/v1/runs", "/v1/runs", body={"owner_pid": 4294967295}, expect=400, code="bad_request")
check("unknown route", "GET", "/v1/nothing-here", None, expect=404, code="not_found")
check("wrong method", "PUT", "/v1/health", None, expect=405, code="method_not_allowed")
check("no token", "GET", "/v1/status", "/v1/status", expect=401, code="unauthorized", authorized=False)
check("no token, shutdown", "POST", "/v1/shutdown", "/v1/shutdown", expect=401, code="unauthorized", authorized=False)
check("health needs no token", "GET", "/v1/health", "/v1/health", expect=200, authorized=False)
check("empty password off loopback", "POST", "/v1/runs", "/v1/runs", body={"listen": "0.0.0.0", "password": ""},
      expect=400, code="bad_request")

# Daemon.
check("health", "GET", "/v1/health", "/v1/health", expect=200)
status = check("status", "GET", "/v1/status", "/v1/status", expect=200)
check("templates", "GET", "/v1/templates", "/v1/templates", expect=200)
check("pool", "GET", "/v1/pool", "/v1/pool", expect=200)
used = check("databases", "GET", "/v1/databases", "/v1/databases", expect=200)
expect_true("the daemon uses its template",
            isinstance(used, dict) and isinstance(status, dict) and status["template"]["name"] in used["databases"])
check("refresh", "POST", "/v1/refresh", "/v1/refresh", expect=200)

# API leases: a rollback key and a database key that wrote rows, reset, release.
check("acquire, empty body", "POST", "/v1/sandboxes", "/v1/sandboxes", raw="", expect=201)
rb = check("acquire rollback", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"key": "explicit-rb"}, expect=201)
check("acquire again", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"key": "explicit-rb"}, expect=409, code="key_in_use")
db = check("acquire database", "POST", "/v1/sandboxes", "/v1/sandboxes",
           body={"key": "explicit-db", "isolation": "database", "owner_pid": 1}, expect=201)
if has_psql and isinstance(rb, dict) and isinstance(db, dict):
    psql(rb["url"], "insert into t0(name) values ('explicit')")
    psql(db["url"], "insert into t1(name, parent_id) values ('explicit', 1)")
    written = [{"table": "public.t0", "rows": 101}]
    expect_true("rollback key lists what it wrote", tables_of("explicit-rb", want=written) == written)
    written = [{"table": "public.t1", "rows": 101}]
    expect_true("database key lists what it wrote", tables_of("explicit-db", want=written) == written)
else:
    print("skip writes through the proxy (no psql)")
snap = "/v1/sandboxes/{key}/snapshot"
check("snapshot without a name", "POST", "/v1/sandboxes/explicit-rb/snapshot", snap, raw="", expect=400, code="bad_request")
check("reset to a point never taken", "POST", "/v1/sandboxes/explicit-rb/reset", "/v1/sandboxes/{key}/reset",
      body={"to": "nowhere"}, expect=404, code="not_found")
if has_psql and isinstance(rb, dict):
    check("snapshot", "POST", "/v1/sandboxes/explicit-rb/snapshot", snap, body={"name": "class"}, expect=200)
    psql(rb["url"], "insert into t0(name) values ('after the point')")
    written = [{"table": "public.t0", "rows": 102}]
    expect_true("the write after the point shows", tables_of("explicit-rb", want=written) == written)
    check("reset to the point", "POST", "/v1/sandboxes/explicit-rb/reset", "/v1/sandboxes/{key}/reset",
          body={"to": "class"}, expect=200)
    rows = psql_value(rb["url"], "select count(*) from t0")
    expect_true("the reset to the point kept the set-up's row and dropped the later one", rows.strip() == "101")
    # A database key's point is a copy of its clone (taken with no connection open); a table the
    # key's clients made before it stays theirs in the copy the reset gives.
    psql(db["url"], "create table made_by_the_test(x int)")
    check("snapshot of a database key", "POST", "/v1/sandboxes/explicit-db/snapshot", snap, body={"name": "class"},
          expect=200)
    psql(db["url"], "insert into t1(name, parent_id) values ('after the point', 1)")
    before = check("get explicit-db", "GET", "/v1/sandboxes/explicit-db", "/v1/sandboxes/{key}", expect=200)
    check("reset a database key to its point", "POST", "/v1/sandboxes/explicit-db/reset", "/v1/sandboxes/{key}/reset",
          body={"to": "class"}, expect=200)
    after = check("get explicit-db", "GET", "/v1/sandboxes/explicit-db", "/v1/sandboxes/{key}", expect=200)
    expect_true("the database key got a new clone", isinstance(before, dict) and isinstance(after, dict)
                and before["database"] != after["database"])
    rows = psql_value(db["url"], "select count(*) from t1")
    expect_true("the database key's reset to its point kept the set-up's row only", rows.strip() == "101")
    rows = psql_value(db["url"], "select count(*) from t1 where name = 'after the point'")
    expect_true("the row written after the database key's point is gone", rows.strip() == "0")
    psql(db["url"], "insert into made_by_the_test values (1); drop table made_by_the_test")
check("reset rollback", "POST", "/v1/sandboxes/explicit-rb/reset", "/v1/sandboxes/{key}/reset", expect=200)
check("reset database", "POST", "/v1/sandboxes/explicit-db/reset", "/v1/sandboxes/{key}/reset", expect=200)
expect_true("rollback key is clean after reset", tables_of("explicit-rb") == [])
check("the reset to the template dropped the point", "POST", "/v1/sandboxes/explicit-rb/reset",
      "/v1/sandboxes/{key}/reset", body={"to": "class"}, expect=404, code="not_found")
check("a database key's reset to the template dropped its point", "POST", "/v1/sandboxes/explicit-db/reset",
      "/v1/sandboxes/{key}/reset", body={"to": "class"}, expect=404, code="not_found")
check("list sandboxes", "GET", "/v1/sandboxes", "/v1/sandboxes", expect=200)
check("release", "DELETE", "/v1/sandboxes/explicit-rb", "/v1/sandboxes/{key}", expect=200)
check("release again", "DELETE", "/v1/sandboxes/explicit-rb", "/v1/sandboxes/{key}", expect=404, code="not_found")
check("release database", "DELETE", "/v1/sandboxes/explicit-db", "/v1/sandboxes/{key}", expect=200)

# A run with keys made by connections (rollback by default, database by option).
run = check("open run", "POST", "/v1/runs", "/v1/runs", body={"isolation": "rollback", "reset_on_close": False}, expect=201)
if isinstance(run, dict):
    rid = run["id"]
    if has_psql:
        base = run["database_url"].rsplit("/", 1)[0]
        psql(base + "/run-rb", "insert into t0(name) values ('run')")
        database = "-c dbsandbox.isolation=database"
        psql(base + "/run-db", "insert into t1(name, parent_id) values ('run', 1)", options=database)
        got = check("get run", "GET", f"/v1/runs/{rid}", "/v1/runs/{id}", expect=200)
        keys = got.get("keys", {}) if isinstance(got, dict) else {}
        expect_true("run lists its keys", sorted(keys) == ["run-db", "run-rb"], str(sorted(keys)))
        check("run key by ?run=", "GET", "/v1/sandboxes/run-rb", "/v1/sandboxes/{key}", params={"run": rid}, expect=200)
        got = check("run key without ?run=", "GET", "/v1/sandboxes/run-db", "/v1/sandboxes/{key}", expect=200)
        expect_true("a run key shows the isolation its connection chose",
                    isinstance(got, dict) and got.get("isolation") == "database", str(got))
        written = [{"table": "public.t1", "rows": 101}]
        expect_true("a run's database key lists what it wrote", tables_of("run-db", run=rid, want=written) == written)
        got = check("reset a run's database key", "POST", "/v1/sandboxes/run-db/reset", "/v1/sandboxes/{key}/reset",
                    params={"run": rid}, expect=200)
        expect_true("the reset swapped its clone",
                    isinstance(got, dict) and got.get("stats", {}).get("clones_used") == 2, str(got))
        check("acquire in the run", "POST", "/v1/sandboxes", "/v1/sandboxes", body={"key": "run-rb", "run": rid},
              expect=409, code="key_in_use")
    check("list runs", "GET", "/v1/runs", "/v1/runs", expect=200)
    check("close run", "DELETE", f"/v1/runs/{rid}", "/v1/runs/{id}", expect=200)
    check("close run again", "DELETE", f"/v1/runs/{rid}", "/v1/runs/{id}", expect=404, code="not_found")
    second = check("open run, lease", "POST", "/v1/runs", "/v1/runs", body={"lease_seconds": 60}, expect=201)
    if isinstance(second, dict):
        port = int(second["proxy"].rsplit(":", 1)[1])
        check("open run on a taken port", "POST", "/v1/runs", "/v1/runs", body={"port": port}, expect=409,
              code="port_in_use")
        moved = check("open run on a taken port, fallback", "POST", "/v1/runs", "/v1/runs",
                      body={"port": port, "port_fallback": True}, expect=201)
        for opened in (second, moved):
            if isinstance(opened, dict):
                check("close run", "DELETE", f"/v1/runs/{opened['id']}", "/v1/runs/{id}", expect=200)

print(f"explicit: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
