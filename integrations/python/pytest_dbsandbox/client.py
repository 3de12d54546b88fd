"""Finding the dbsandbox daemon and talking to its HTTP control API, with the standard library only.

The contract is ``crates/dbsandbox-control/API.md``:

1. ``DBSANDBOX_URL`` set (``dbsandbox run`` exports it, with ``DBSANDBOX_RUN``): use that daemon,
   with ``DBSANDBOX_TOKEN`` when set, and put sandboxes in run ``DBSANDBOX_RUN``'s scope.
2. Otherwise run ``$DBSANDBOX_BIN serve --detach`` (else the ``dbsandbox`` of this Python
   environment, which the ``dbsandbox`` wheel installs, else ``dbsandbox`` on ``PATH``) in the
   project directory: it attaches to the project's daemon or starts one, and prints one JSON line.

Either way the daemon's control API version (``api_version``) must be :data:`API_VERSION`.

:func:`connect` does that once per process. :class:`Client` acquires, resets and releases
sandboxes; every API error (``{"error": {"code", "message"}}``) becomes a :class:`ApiError`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from typing import Any, Dict, List, Optional
from urllib.parse import quote, urlencode, urlsplit

URL_VARIABLE = "DBSANDBOX_URL"
TOKEN_VARIABLE = "DBSANDBOX_TOKEN"
RUN_VARIABLE = "DBSANDBOX_RUN"
BIN_VARIABLE = "DBSANDBOX_BIN"
START_TIMEOUT_VARIABLE = "DBSANDBOX_START_TIMEOUT"

#: ``serve --detach`` may build the template from the migrations first: allow it time.
DEFAULT_START_TIMEOUT_SECONDS = 600.0
#: Acquiring may wait for the pool to make a clone.
REQUEST_TIMEOUT_SECONDS = 120.0
ISOLATIONS = ("rollback", "database")
#: The control API version this plugin speaks (``api_version`` in ``GET /v1/health``).
API_VERSION = 1


class DbsandboxError(Exception):
    """A problem using dbsandbox, with a message meant for the user."""


class ApiError(DbsandboxError):
    """The daemon answered a request with an error (``{"error": {"code", "message"}}``).

    Attributes: ``status`` (HTTP status), ``code`` (``key_in_use``, ``not_found``, ...),
    ``api_message`` (the daemon's message), ``method`` and ``path`` of the request.
    """

    def __init__(self, method: str, path: str, status: int, code: str, api_message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.api_message = api_message
        super().__init__(
            f"dbsandbox daemon refused {method} {path}: {code}: {api_message} (HTTP {status})"
        )


class StartError(DbsandboxError):
    """``dbsandbox serve --detach`` could not be run, failed, or printed no usable JSON line."""


def environment_binary() -> Optional[str]:
    """The ``dbsandbox`` the ``dbsandbox`` wheel put in this Python environment's scripts
    directory (a virtualenv's ``bin``), if any: found even when that is not on ``PATH``."""
    name = "dbsandbox.exe" if os.name == "nt" else "dbsandbox"
    directories = [sysconfig.get_path("scripts"), os.path.dirname(sys.executable)]
    try:
        directories.append(sysconfig.get_path("scripts", f"{os.name}_user"))
    except KeyError:
        pass
    for directory in directories:
        candidate = os.path.join(directory or "", name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def check_api_version(reported: Any, origin: str) -> None:
    """Refuse a daemon whose ``api_version`` is not :data:`API_VERSION` (``origin``: where it
    was found)."""
    if reported == API_VERSION:
        return
    speaks = (
        f"speaks control API v{reported}"
        if reported is not None
        else "reports no control API version (it is older than the versioned API)"
    )
    raise DbsandboxError(
        f"dbsandbox: the daemon found through {origin} {speaks}, but this pytest-dbsandbox "
        f"speaks v{API_VERSION}. Install matching versions: `pip install -U pytest-dbsandbox` "
        "brings the dbsandbox binary it speaks to (the `dbsandbox` package); `dbsandbox --version` "
        "names a binary's control API."
    )


def find_binary(environ=None) -> str:
    """The dbsandbox executable: ``$DBSANDBOX_BIN``, else the one in this Python environment
    (:func:`environment_binary`), else ``dbsandbox`` on ``PATH``."""
    environ = os.environ if environ is None else environ
    configured = environ.get(BIN_VARIABLE, "").strip()
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return os.path.abspath(configured)
        found = shutil.which(configured, path=environ.get("PATH"))
        if found:
            return found
        raise StartError(
            f"dbsandbox: DBSANDBOX_BIN={configured!r} is not an executable file, so the dbsandbox "
            "daemon cannot be started. Point DBSANDBOX_BIN at the dbsandbox binary, or unset it "
            "to use `dbsandbox` from PATH."
        )
    found = environment_binary() or shutil.which("dbsandbox", path=environ.get("PATH"))
    if not found:
        raise StartError(
            "dbsandbox: no dbsandbox daemon to use: DBSANDBOX_URL is not set and `dbsandbox` is "
            "neither in this Python environment nor on PATH (nor DBSANDBOX_BIN set), so it cannot "
            "be started.\n"
            "`pip install pytest-dbsandbox` installs it (the `dbsandbox` package);\n"
            "Either put the dbsandbox binary on PATH (or set DBSANDBOX_BIN=/path/to/dbsandbox): the "
            "tests then start or attach to the project's daemon themselves;\n"
            "or run the tests under it: dbsandbox run -- pytest ..."
        )
    return found


def start_or_attach(project_dir: str, environ=None, timeout: Optional[float] = None) -> Dict[str, Any]:
    """Run ``dbsandbox serve --detach`` in ``project_dir`` and return its JSON line as a dict.

    It attaches to the project's daemon or starts one (concurrent callers get the same daemon):
    ``{"api", "token", "proxy", "pid", "project", "started"}``. Raises :class:`StartError` with
    the command's stderr when it fails.
    """
    environ = dict(os.environ if environ is None else environ)
    binary = find_binary(environ)
    if timeout is None:
        raw = environ.get(START_TIMEOUT_VARIABLE, "").strip()
        try:
            timeout = float(raw) if raw else DEFAULT_START_TIMEOUT_SECONDS
        except ValueError:
            raise StartError(f"dbsandbox: {START_TIMEOUT_VARIABLE}={raw!r} is not a number of seconds")
    command = [binary, "serve", "--detach"]
    shown = f"`{' '.join(command)}` in {project_dir}"
    try:
        done = subprocess.run(
            command,
            cwd=project_dir,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        stderr = (error.stderr or b"").decode("utf-8", "replace").strip()
        raise StartError(
            f"dbsandbox: {shown} did not answer within {timeout:g} s"
            + (f"; its output:\n{stderr}" if stderr else "")
            + f"\n(set {START_TIMEOUT_VARIABLE} to wait longer)"
        ) from None
    except OSError as error:
        raise StartError(f"dbsandbox: could not run {shown}: {error}") from None
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise StartError(
            f"dbsandbox: {shown} failed (exit status {done.returncode}):\n"
            + (stderr or "(nothing on stderr)")
        )
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        info = json.loads(lines[-1]) if lines else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("api"), str):
        raise StartError(
            f"dbsandbox: {shown} exited 0 but did not print the expected JSON line "
            f'({{"api": ..., "proxy": ..., "pid": ...}}); stdout was {stdout.strip()!r}'
            + (f", stderr:\n{stderr}" if stderr else "")
        )
    return info


class Sandbox:
    """A sandbox the daemon handed out: ``key``, ``url``, ``isolation``, ``run`` and the raw JSON."""

    def __init__(self, client: "Client", data: Dict[str, Any]) -> None:
        self.client = client
        self.data = data
        self.key: str = data["key"]
        self.url: str = data["url"]
        self.isolation: str = data.get("isolation") or "rollback"
        self.run: Optional[str] = data.get("run")

    def reset(self, to: Optional[str] = None) -> None:
        """Back to the template's state, or to the reset point ``to`` (see :meth:`snapshot`):
        ``POST /v1/sandboxes/{key}/reset``."""
        self.client.reset(self.key, run=self.run, to=to)

    def snapshot(self, name: str) -> None:
        """Take the named reset point ``name``: the sandbox's state now, which
        ``reset(to=name)`` comes back to (rollback sandboxes; no connection of the key may be
        inside a transaction block). ``POST /v1/sandboxes/{key}/snapshot``."""
        self.client.snapshot(self.key, name, run=self.run)

    def release(self) -> None:
        """Give the sandbox back: ``DELETE /v1/sandboxes/{key}``."""
        self.client.release(self.key, run=self.run)

    def info(self) -> Dict[str, Any]:
        """``GET /v1/sandboxes/{key}``: the Sandbox object with stats and written ``tables``."""
        return self.client.get(self.key, run=self.run)

    def __repr__(self) -> str:
        return f"Sandbox(key={self.key!r}, isolation={self.isolation!r}, url={self.url!r})"


class Client:
    """The daemon's HTTP control API at ``api`` (``http://127.0.0.1:PORT``).

    ``run``: the run scope (``DBSANDBOX_RUN``) that acquired sandboxes go to; per-key requests
    then carry ``?run=<id>``. ``origin`` says how the daemon was found, for error messages.
    """

    def __init__(
        self,
        api: str,
        token: Optional[str] = None,
        run: Optional[str] = None,
        origin: str = "",
        daemon: Optional[Dict[str, Any]] = None,
    ) -> None:
        parts = urlsplit(api)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DbsandboxError(
                f"dbsandbox: {api!r} is not a daemon address like http://127.0.0.1:41234"
                + (f" ({origin})" if origin else "")
            )
        self.api = api.rstrip("/")
        self.token = token or None
        self.run = run or None
        self.origin = origin
        self.daemon = daemon or {}
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._base = parts.path.rstrip("/")

    # -- transport -----------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT_SECONDS) -> Any:
        """Send one request; return the decoded JSON body, or raise :class:`ApiError`."""
        connection_class = (
            http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        )
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        connection = connection_class(self._host, self._port, timeout=timeout)
        try:
            connection.request(method, self._base + path, body=payload, headers=headers)
            response = connection.getresponse()
            status = response.status
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise DbsandboxError(
                f"dbsandbox: cannot reach the dbsandbox daemon at {self.api} ({method} {path}: "
                f"{error})" + (f"; it was found through {self.origin}" if self.origin else "")
            ) from None
        finally:
            connection.close()
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text) if text.strip() else None
        except ValueError:
            data = None
        if 200 <= status < 300:
            if data is None and text.strip():
                raise DbsandboxError(
                    f"dbsandbox: the daemon at {self.api} answered {method} {path} with HTTP {status} "
                    f"and a body that is not JSON: {text[:300]!r}"
                )
            return data
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or "error")
            message = str(error.get("message") or "")
        else:
            code = {401: "unauthorized", 404: "not_found"}.get(status, "http_error")
            message = text.strip()[:300] or http.client.responses.get(status, "")
        raise ApiError(method, path, status, code, message)

    def _key_path(self, key: str, suffix: str = "", run: Optional[str] = None) -> str:
        path = f"/v1/sandboxes/{quote(key, safe='')}{suffix}"
        if run:
            path += "?" + urlencode({"run": run})
        return path

    # -- the API -------------------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """``GET /v1/health``: ``{"status": "ok", "pid": ..., "version": ...}``."""
        return self.request("GET", "/v1/health")

    def acquire(
        self,
        key: Optional[str] = None,
        isolation: Optional[str] = None,
        owner_pid: Optional[int] = None,
        run: Optional[str] = None,
    ) -> Sandbox:
        """``POST /v1/sandboxes``: a sandbox for ``key`` (in this client's run scope, if any).

        ``owner_pid`` defaults to this process: the daemon releases the sandbox when it is gone.
        """
        if isolation is not None and isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
        body: Dict[str, Any] = {"owner_pid": os.getpid() if owner_pid is None else owner_pid}
        if key is not None:
            body["key"] = key
        if isolation is not None:
            body["isolation"] = isolation
        run = run or self.run
        if run:
            body["run"] = run
        data = self.request("POST", "/v1/sandboxes", body)
        if not isinstance(data, dict) or "key" not in data or "url" not in data:
            raise DbsandboxError(
                f"dbsandbox: POST /v1/sandboxes answered without a key and url: {data!r}"
            )
        if data.get("run") is None and run:
            data = dict(data, run=run)
        return Sandbox(self, data)

    def reset(self, key: str, run: Optional[str] = None, to: Optional[str] = None) -> Dict[str, Any]:
        """``POST /v1/sandboxes/{key}/reset`` (to the reset point ``to``, if given)."""
        body = {"to": to} if to is not None else None
        return self.request("POST", self._key_path(key, "/reset", run), body)

    def snapshot(self, key: str, name: str, run: Optional[str] = None) -> Dict[str, Any]:
        """``POST /v1/sandboxes/{key}/snapshot``: take the reset point ``name``."""
        return self.request("POST", self._key_path(key, "/snapshot", run), {"name": name})

    def release(self, key: str, run: Optional[str] = None) -> Dict[str, Any]:
        """``DELETE /v1/sandboxes/{key}``."""
        return self.request("DELETE", self._key_path(key, "", run))

    def get(self, key: str, run: Optional[str] = None) -> Dict[str, Any]:
        """``GET /v1/sandboxes/{key}`` (with ``tables``)."""
        return self.request("GET", self._key_path(key, "", run))

    def sandboxes(self) -> List[Dict[str, Any]]:
        """``GET /v1/sandboxes``: API leases and the keys of every run."""
        data = self.request("GET", "/v1/sandboxes")
        return list((data or {}).get("sandboxes") or [])

    def __repr__(self) -> str:
        return f"Client(api={self.api!r}, run={self.run!r})"


def client_from_environment(environ=None) -> Optional[Client]:
    """A :class:`Client` from ``DBSANDBOX_URL`` (+ token, run), or ``None`` when it is not set."""
    environ = os.environ if environ is None else environ
    url = environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    run = environ.get(RUN_VARIABLE, "").strip() or None
    origin = f"{URL_VARIABLE}={url}" + (f" (run {run})" if run else "")
    return Client(url, environ.get(TOKEN_VARIABLE, "").strip() or None, run, origin)


_lock = threading.Lock()
_cached: Optional[Client] = None


def connect(project_dir: Optional[str] = None, environ=None, refresh: bool = False) -> Client:
    """The daemon of this process, found once: ``DBSANDBOX_URL``, else ``serve --detach``.

    After starting or attaching, ``DBSANDBOX_URL`` (and ``DBSANDBOX_TOKEN``) are exported to
    ``os.environ``, so subprocesses (and nested test runs) use the same daemon.
    """
    global _cached
    with _lock:
        if _cached is not None and not refresh:
            return _cached
        client = client_from_environment(environ)
        if client is not None:
            check_api_version((client.health() or {}).get("api_version"), client.origin)
        else:
            directory = os.path.abspath(project_dir or os.getcwd())
            info = start_or_attach(directory, environ)
            check_api_version(info.get("api_version"), f"`dbsandbox serve --detach` in {directory}")
            client = Client(
                info["api"],
                info.get("token"),
                None,
                f"`dbsandbox serve --detach` in {directory}",
                daemon=info,
            )
            if environ is None:
                os.environ[URL_VARIABLE] = client.api
                if client.token:
                    os.environ[TOKEN_VARIABLE] = client.token
        _cached = client
        return client
