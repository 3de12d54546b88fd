"""The HTTP client against a stub server: request shapes, run scope, token, error mapping.

These need no daemon: they check what pytest_dbsandbox.client sends and how it reports answers.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pytest_dbsandbox import ApiError, Client, DbsandboxError, StartError
from pytest_dbsandbox import client as api


class Stub:
    """A stub daemon: records requests, answers from ``replies[(method, path)]``."""

    def __init__(self):
        self.requests = []
        self.replies = {}
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                stub.requests.append(
                    (self.command, self.path, json.loads(body) if body else None, dict(self.headers))
                )
                status, reply = stub.replies.get((self.command, self.path), (404, {"error": {"code": "not_found", "message": "no such thing"}}))
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.server.shutdown()
    s.server.server_close()


SANDBOX = {"key": "k1", "isolation": "rollback", "url": "postgres://dbsandbox@127.0.0.1:5/k1", "run": None, "owner_pid": 7}


def test_acquire_sends_key_isolation_owner_and_run(stub):
    stub.replies[("POST", "/v1/sandboxes")] = (201, dict(SANDBOX, run="r3"))
    stub.replies[("POST", "/v1/sandboxes/k1/reset?run=r3")] = (200, SANDBOX)
    stub.replies[("DELETE", "/v1/sandboxes/k1?run=r3")] = (200, {"key": "k1", "released": True})
    client = Client(stub.url, token="t0k", run="r3")
    sandbox = client.acquire("k1", "database", owner_pid=7)
    method, path, body, headers = stub.requests[0]
    assert (method, path) == ("POST", "/v1/sandboxes")
    assert body == {"key": "k1", "isolation": "database", "owner_pid": 7, "run": "r3"}
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"] == "application/json"
    assert (sandbox.key, sandbox.url, sandbox.run) == ("k1", SANDBOX["url"], "r3")
    sandbox.reset()
    sandbox.release()
    assert [r[:2] for r in stub.requests[1:]] == [
        ("POST", "/v1/sandboxes/k1/reset?run=r3"),
        ("DELETE", "/v1/sandboxes/k1?run=r3"),
    ]


def test_api_errors_become_api_error_with_code_and_message(stub):
    stub.replies[("POST", "/v1/sandboxes")] = (409, {"error": {"code": "key_in_use", "message": "key k1 is held by pid 9"}})
    with pytest.raises(ApiError) as error:
        Client(stub.url).acquire("k1")
    assert (error.value.status, error.value.code) == (409, "key_in_use")
    assert str(error.value) == "dbsandbox daemon refused POST /v1/sandboxes: key_in_use: key k1 is held by pid 9 (HTTP 409)"
    assert isinstance(error.value, DbsandboxError)


def test_a_non_json_error_body_is_still_reported(stub):
    stub.replies[("GET", "/v1/health")] = (502, "<html>bad gateway</html>")
    with pytest.raises(ApiError, match=r"GET /v1/health: http_error: <html>bad gateway</html> \(HTTP 502\)"):
        Client(stub.url).health()


def test_a_success_without_a_sandbox_is_reported(stub):
    stub.replies[("POST", "/v1/sandboxes")] = (201, {"ok": True})
    with pytest.raises(DbsandboxError, match="answered without a key and url"):
        Client(stub.url).acquire()


def test_keys_are_escaped_in_paths(stub):
    with pytest.raises(ApiError):
        Client(stub.url).reset("a/b")
    assert stub.requests[0][1] == "/v1/sandboxes/a%2Fb/reset"


def test_bad_daemon_address():
    with pytest.raises(DbsandboxError, match="is not a daemon address"):
        Client("127.0.0.1:4000", origin="DBSANDBOX_URL=127.0.0.1:4000")


def test_environment_gives_url_token_and_run():
    client = api.client_from_environment(
        {"DBSANDBOX_URL": "http://127.0.0.1:1/", "DBSANDBOX_TOKEN": "x", "DBSANDBOX_RUN": "r9"}
    )
    assert (client.api, client.token, client.run) == ("http://127.0.0.1:1", "x", "r9")
    assert api.client_from_environment({}) is None


def test_start_timeout_must_be_a_number(tmp_path):
    fake = tmp_path / "dbsandbox"
    fake.write_text("#!/bin/sh\nexec sleep 5\n")
    fake.chmod(0o755)
    with pytest.raises(StartError, match="DBSANDBOX_START_TIMEOUT='soon' is not a number"):
        api.start_or_attach(str(tmp_path), {"DBSANDBOX_BIN": str(fake), "DBSANDBOX_START_TIMEOUT": "soon"})
    with pytest.raises(StartError, match="did not answer within 0.5 s"):
        api.start_or_attach(str(tmp_path), {"DBSANDBOX_BIN": str(fake), "DBSANDBOX_START_TIMEOUT": "0.5"})


def test_serve_detach_json_line_is_parsed_after_other_output(tmp_path):
    fake = tmp_path / "dbsandbox"
    fake.write_text(
        "#!/bin/sh\n[ \"$1 $2\" = 'serve --detach' ] || exit 9\necho 'progress on stderr' >&2\n"
        "echo '{\"api\": \"http://127.0.0.1:41234\", \"token\": null, \"proxy\": \"127.0.0.1:41235\", "
        "\"pid\": 4242, \"project\": \"'\"$PWD\"'\", \"started\": true}'\n"
    )
    fake.chmod(0o755)
    info = api.start_or_attach(str(tmp_path), {"DBSANDBOX_BIN": str(fake), "PATH": "/usr/bin:/bin"})
    assert info["pid"] == 4242 and info["project"] == str(tmp_path) and info["started"] is True


def fake_binary(directory, line):
    """An executable ``dbsandbox`` in ``directory`` that answers ``serve --detach`` with ``line``."""
    directory.mkdir(parents=True, exist_ok=True)
    fake = directory / "dbsandbox"
    fake.write_text(f"#!/bin/sh\necho '{line}'\n")
    fake.chmod(0o755)
    return fake


def test_the_binary_of_this_python_environment_comes_before_path(tmp_path, monkeypatch):
    # The dbsandbox wheel puts the binary beside the environment's python, which need not be on
    # PATH (a virtualenv used without activating it).
    in_environment = fake_binary(tmp_path / "venv" / "bin", "{}")
    on_path = fake_binary(tmp_path / "elsewhere", "{}")
    monkeypatch.setattr(api.sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    assert api.find_binary({"PATH": str(on_path.parent)}) == str(in_environment)
    # DBSANDBOX_BIN still wins.
    assert api.find_binary({"PATH": "", "DBSANDBOX_BIN": str(on_path)}) == str(on_path)
    in_environment.unlink()
    assert api.find_binary({"PATH": str(on_path.parent)}) == str(on_path)


@pytest.mark.parametrize(
    "line, says",
    [
        ('{"api": "http://127.0.0.1:41234", "api_version": 2}', "speaks control API v2"),
        ('{"api": "http://127.0.0.1:41234"}', "reports no control API version"),
    ],
)
def test_a_binary_of_another_control_api_is_refused(tmp_path, monkeypatch, line, says):
    monkeypatch.setattr(api, "_cached", None)  # restored afterwards: other tests keep their daemon
    fake = fake_binary(tmp_path / "bin", line)
    with pytest.raises(DbsandboxError) as error:
        api.connect(str(tmp_path), {"DBSANDBOX_BIN": str(fake), "PATH": "/usr/bin:/bin"}, refresh=True)
    message = str(error.value)
    assert says in message and "this pytest-dbsandbox speaks v1" in message, message
    assert "pip install -U pytest-dbsandbox" in message, message


def test_a_daemon_of_another_control_api_is_refused_through_dbsandbox_url(stub, monkeypatch):
    monkeypatch.setattr(api, "_cached", None)  # restored afterwards: other tests keep their daemon
    stub.replies[("GET", "/v1/health")] = (200, {"status": "ok", "pid": 1, "version": "9.0.0", "api_version": 7})
    with pytest.raises(DbsandboxError, match=r"DBSANDBOX_URL=.* speaks control API v7, but this pytest-dbsandbox speaks v1"):
        api.connect(environ={"DBSANDBOX_URL": stub.url}, refresh=True)
    stub.replies[("GET", "/v1/health")] = (200, {"status": "ok", "pid": 1, "version": "0.1.0", "api_version": 1})
    assert api.connect(environ={"DBSANDBOX_URL": stub.url}, refresh=True).api == stub.url
