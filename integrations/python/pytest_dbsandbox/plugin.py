"""The pytest plugin: fixtures that give each test worker its own dbsandbox sandbox.

Each test process (every pytest-xdist worker, or the single pytest process) acquires one sandbox
from the dbsandbox daemon through its HTTP API (``POST /v1/sandboxes``, key
``pytest-<worker>-<pid>``, ``owner_pid`` = this process), resets it before each test that asks
for the ``dbsandbox`` fixture (``POST /v1/sandboxes/{key}/reset``) and releases it when the
session ends (``DELETE``). The daemon is found once per process:

* under ``dbsandbox run -- pytest ...``: ``DBSANDBOX_URL`` and ``DBSANDBOX_RUN`` are set, and the
  sandboxes go to that run's scope;
* otherwise ``dbsandbox serve --detach`` (``$DBSANDBOX_BIN``, else the Python environment's,
  else ``PATH``'s) runs in pytest's rootdir: it attaches to the project's daemon (the nearest
  ``dbsandbox.toml``) or starts one.

Fixtures:

* ``dbsandbox_url`` (session): the URL of this worker's sandbox.
* ``dbsandbox`` (function): resets the sandbox, then gives a :class:`Sandbox` (``.url``,
  ``.key``, ``.isolation``, ``.reset()``, ``.url_with(...)``, ``.info()``).
* ``dbsandbox_points`` (session): in a class- or module-scoped fixture, ``sandbox =
  dbsandbox_points.reset()`` first (a clean start), then the set-up's committed writes, then
  ``dbsandbox_points.take(request)``: each test of that scope is reset to that state (a named
  reset point of the rollback sandbox) instead of the template's.

ini options: ``dbsandbox_isolation`` (``rollback`` or ``database``, default ``rollback``),
``dbsandbox_key_prefix`` (default ``pytest-``), ``dbsandbox_autoreset`` (default false).
Marker: ``@pytest.mark.dbsandbox(isolation="database")`` gives a test the worker's sandbox of
that isolation instead (a second key, acquired on first use).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Dict, List, Optional
from urllib.parse import urlsplit

import pytest

from pytest_dbsandbox import client as api
from pytest_dbsandbox.client import ApiError, DbsandboxError

RESET_STATEMENT = "SELECT dbsandbox_reset()"
ISOLATIONS = api.ISOLATIONS
DEFAULT_KEY_PREFIX = "pytest-"
CONNECT_TIMEOUT_SECONDS = 10

#: The proxy's rule for keys; anything else is refused.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,48}")

#: Key suffix of the worker's second sandbox, for tests marked with the other isolation.
ISOLATION_SUFFIX = {"database": "db", "rollback": "rb"}

NO_DRIVER = (
    "pytest-dbsandbox needs a PostgreSQL driver for an in-band reset, and neither psycopg (3) nor "
    "psycopg2 can be imported. Install one of them:\n"
    "    pip install 'psycopg[binary]'      # or: pip install psycopg2-binary"
)


def worker_id() -> str:
    """The xdist worker id (``gw0``, ``gw1``, ...) or ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def worker_key(prefix: str = DEFAULT_KEY_PREFIX, pid: Optional[int] = None) -> str:
    """The sandbox key of this test process: ``prefix`` + worker id + ``-`` + pid.

    ``pytest-gw0-4242``: unique per worker and per process, so two pytest runs of one project
    at the same time never share a key. Raises :class:`DbsandboxError` when the result breaks
    the key rule (1 to 48 characters from ``A-Z a-z 0-9 _ -``), naming the prefix.
    """
    key = f"{prefix}{worker_id()}-{os.getpid() if pid is None else pid}"
    check_key(key, f"(dbsandbox_key_prefix = {prefix!r})")
    return key


def check_key(key: str, context: str = "") -> None:
    """Raise :class:`DbsandboxError` if ``key`` is not a valid sandbox key."""
    if not KEY_PATTERN.fullmatch(key):
        detail = f" {context}" if context else ""
        raise DbsandboxError(
            f"pytest-dbsandbox: {key!r} is not a valid sandbox key{detail}: a key is 1 to 48 "
            "characters from A-Z a-z 0-9 _ -"
        )


def check_isolation(isolation: str, where: str) -> str:
    if isolation not in ISOLATIONS:
        raise DbsandboxError(
            f"pytest-dbsandbox: {where}: {isolation!r} is not an isolation; use 'rollback' or "
            "'database'"
        )
    return isolation


def sandbox_url(host: str, port: int, key: str) -> str:
    """``postgresql://dbsandbox@HOST:PORT/KEY`` (IPv6 literals bracketed)."""
    check_key(key)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"postgresql://dbsandbox@{host}:{port}/{key}"


def reset_sandbox(url: str, driver: Optional[str] = None) -> None:
    """Reset the rollback sandbox ``url`` names in-band: ``SELECT dbsandbox_reset()``.

    The fixtures reset through the HTTP API instead; this helper is for code that only has a
    URL. ``driver`` is ``"psycopg"``, ``"psycopg2"`` or ``None`` (psycopg 3 if importable, else
    psycopg2).
    """
    driver = driver or available_driver()
    try:
        if driver == "psycopg":
            import psycopg

            with psycopg.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
            ) as connection:
                connection.execute(RESET_STATEMENT)
        elif driver == "psycopg2":
            import psycopg2

            connection = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
            try:
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(RESET_STATEMENT)
            finally:
                connection.close()
        else:
            raise ValueError(f"driver must be 'psycopg' or 'psycopg2', not {driver!r}")
    except ImportError as error:
        raise DbsandboxError(NO_DRIVER) from error
    except Exception as error:
        if isinstance(error, (DbsandboxError, ValueError)):
            raise
        raise DbsandboxError(
            f"pytest-dbsandbox: could not reset the sandbox at {url} with {driver}: {error}"
        ) from error


def available_driver() -> str:
    """``"psycopg"`` if psycopg 3 can be imported, else ``"psycopg2"``; else :class:`DbsandboxError`."""
    try:
        import psycopg  # noqa: F401

        return "psycopg"
    except ImportError:
        pass
    try:
        import psycopg2  # noqa: F401

        return "psycopg2"
    except ImportError:
        raise DbsandboxError(NO_DRIVER) from None


class Sandbox:
    """A sandbox of this worker, as the ``dbsandbox`` fixture gives it to a test.

    Attributes:
        key: the sandbox key (the database name on the proxy), e.g. ``pytest-gw0-4242``.
        url: ``postgresql://dbsandbox@HOST:PORT/KEY`` (as the daemon gives it), for any
            libpq-based driver or SQLAlchemy
            (``sqlalchemy.make_url(url).set(drivername="postgresql+psycopg")``).
        isolation: ``rollback`` or ``database``.
    """

    def __init__(self, worker: "Worker", lease: api.Sandbox) -> None:
        self._worker = worker
        self._lease = lease
        self.key = lease.key
        self.isolation = lease.isolation
        self.url = lease.url.replace("postgres://", "postgresql://", 1)
        parts = urlsplit(self.url)
        self.host = parts.hostname or ""
        self.port = parts.port

    def reset(self, to: Optional[str] = None) -> None:
        """Back to the template's state, or to the reset point ``to``
        (``POST /v1/sandboxes/{key}/reset``).

        Rollback isolation: everything every connection of the key wrote is rolled back and the
        sequences restored; connections stay open, and one inside a transaction block stays in
        it. Database isolation: the key gets a fresh clone.
        """
        self._lease.reset(to=to)

    def snapshot(self, name: str) -> None:
        """Take the reset point ``name`` (rollback isolation): the state now, which
        ``reset(to=name)`` comes back to. No connection of the key may be inside a transaction
        block. ``dbsandbox_points.take(request)`` does this for a class or module fixture."""
        self._lease.snapshot(name)

    def info(self) -> dict:
        """The daemon's view of the sandbox: stats and the tables written since the last reset."""
        return self._lease.info()

    def url_with(self, isolation: Optional[str] = "database", key_suffix: str = "db") -> str:
        """The URL of another sandbox of this worker, key ``<key>-<key_suffix>``, with ``isolation``.

        ``isolation="database"`` gives that key a whole clone with real commits, statements that
        cannot run in a transaction (``VACUUM``, ``CREATE INDEX CONCURRENTLY``), real isolation
        levels and locks. The sandbox is acquired on the first call and released when the session
        ends; it is *not* reset between tests, so give each test that commits there its own
        ``key_suffix`` (or call ``reset`` on ``dbsandbox`` with the marker instead).
        """
        if not key_suffix:
            raise ValueError(
                "key_suffix must not be empty: the worker's own key already has its isolation"
            )
        if isolation is not None and isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
        key = f"{self._worker.key}-{key_suffix}"
        check_key(key)
        return self._worker.sandbox(key, isolation or self._worker.isolation).url

    def __repr__(self) -> str:
        return f"Sandbox(key={self.key!r}, isolation={self.isolation!r}, url={self.url!r})"


class Worker:
    """This test process's sandboxes on the daemon: acquired on first use, released at the end."""

    def __init__(self, daemon: api.Client, key: str, isolation: str) -> None:
        self.daemon = daemon
        self.key = key
        self.isolation = isolation
        self.sandboxes: Dict[str, Sandbox] = {}

    def sandbox(self, key: str, isolation: str) -> Sandbox:
        """The sandbox ``key`` of this worker, acquired with ``isolation`` the first time."""
        existing = self.sandboxes.get(key)
        if existing is not None:
            if existing.isolation != isolation:
                raise DbsandboxError(
                    f"pytest-dbsandbox: sandbox {key!r} was acquired with isolation "
                    f"{existing.isolation!r} earlier in this session; use another key_suffix for "
                    f"isolation {isolation!r}"
                )
            return existing
        try:
            lease = self.daemon.acquire(key, isolation, os.getpid())
        except ApiError as error:
            if error.code == "key_in_use":
                raise DbsandboxError(
                    f"pytest-dbsandbox: sandbox key {key!r} is already held by another process on "
                    f"the daemon at {self.daemon.api} ({error.api_message}). Keys are "
                    "<prefix><worker>-<pid>: set another dbsandbox_key_prefix, or release the key "
                    f"(DELETE {self.daemon.api}/v1/sandboxes/{key})"
                ) from None
            raise
        sandbox = Sandbox(self, lease)
        self.sandboxes[key] = sandbox
        return sandbox

    def for_isolation(self, isolation: str) -> Sandbox:
        """The worker's main sandbox, or its second one for the other isolation."""
        if isolation == self.isolation:
            return self.sandbox(self.key, isolation)
        return self.sandbox(f"{self.key}-{ISOLATION_SUFFIX[isolation]}", isolation)

    def release_all(self) -> list:
        """Release every sandbox acquired here; returns the errors (already gone is fine)."""
        problems = []
        for key, sandbox in list(self.sandboxes.items()):
            try:
                sandbox._lease.release()
            except ApiError as error:
                if error.code != "not_found":
                    problems.append(error)
            except DbsandboxError as error:
                problems.append(error)
            self.sandboxes.pop(key, None)
        return problems


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the plugin's ini options."""
    parser.addini(
        "dbsandbox_key_prefix",
        "prefix of this run's sandbox keys (key = prefix + xdist worker id or 'main' + '-' + pid)",
        default=DEFAULT_KEY_PREFIX,
    )
    parser.addini(
        "dbsandbox_isolation",
        "isolation of the worker's sandbox: rollback (one never-committed transaction, reset in "
        "about a millisecond) or database (a whole clone with real commits)",
        default="rollback",
    )
    parser.addini(
        "dbsandbox_autoreset",
        "reset the worker's sandbox before every test, not only those using the dbsandbox fixture",
        type="bool",
        default=False,
    )
    parser.addini(
        "dbsandbox_django",
        "with pytest-django: its test databases are dbsandbox sandboxes (db: a rollback key, "
        "transactional_db: a database key), see pytest_dbsandbox.django_pytest",
        type="bool",
        default=True,
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("django") and config.getini("dbsandbox_django"):
        from pytest_dbsandbox import django_pytest

        config.pluginmanager.register(django_pytest, "dbsandbox-django")
    config.addinivalue_line(
        "markers",
        "dbsandbox(isolation='database'): give the test the worker's sandbox of that isolation "
        "('rollback' or 'database'), reset before the test",
    )


def _fail(error: Exception):
    """Fail the requesting test's setup with ``error``'s message and no traceback."""
    pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def _dbsandbox_worker(pytestconfig: pytest.Config):
    """This process's :class:`Worker`: the daemon found, nothing acquired yet; releases at the end."""
    problem = None
    try:
        isolation = check_isolation(
            (pytestconfig.getini("dbsandbox_isolation") or "rollback").strip(),
            "dbsandbox_isolation (ini option)",
        )
        key = worker_key(pytestconfig.getini("dbsandbox_key_prefix"))
        daemon = api.connect(str(pytestconfig.rootpath))
    except DbsandboxError as error:
        problem = error
    if problem is not None:
        _fail(problem)  # outside the except block: the message is shown once, without a chain
    worker = Worker(daemon, key, isolation)
    yield worker
    problems = worker.release_all()
    if problems:
        raise DbsandboxError(
            "pytest-dbsandbox: could not release: " + "; ".join(str(p) for p in problems)
        )


def _main_sandbox(worker: Worker) -> Sandbox:
    problem = None
    try:
        return worker.for_isolation(worker.isolation)
    except DbsandboxError as error:
        problem = error
    _fail(problem)


class ResetPoints:
    """The reset points taken by class- and module-scoped fixtures of this worker, innermost
    last: each test's reset goes back to the innermost one still in scope."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.names: List[str] = []

    def take(self, request: pytest.FixtureRequest) -> None:
        """Make the worker's sandbox state now the one every test of ``request``'s scope starts
        from (call it at the end of a class- or module-scoped fixture's set-up, once its writes
        are committed). The point is dropped when that scope ends."""
        if request.scope not in ("class", "module", "package", "session"):
            raise DbsandboxError(
                "pytest-dbsandbox: dbsandbox_points.take(request) belongs in a class-, module-, "
                f"package- or session-scoped fixture (this one is {request.scope}-scoped): a "
                "function-scoped fixture runs again for each test anyway"
            )
        sandbox = _main_sandbox(self.worker)
        name = "pytest-" + hashlib.sha1(request.node.nodeid.encode("utf-8")).hexdigest()[:24]
        try:
            sandbox.snapshot(name)
        except ApiError as error:
            raise DbsandboxError(
                f"pytest-dbsandbox: cannot take a reset point for {request.node.nodeid}: "
                f"{error.api_message}"
            ) from None
        if name in self.names:
            del self.names[self.names.index(name):]
        self.names.append(name)
        request.addfinalizer(lambda: self._leave(name))

    def _leave(self, name: str) -> None:
        if name in self.names:
            del self.names[self.names.index(name):]

    def innermost(self) -> Optional[str]:
        return self.names[-1] if self.names else None

    def reset(self) -> Sandbox:
        """Reset the worker's main sandbox to the innermost point still in scope (or the
        template) and return it: the start of a class or module fixture's set-up, which must not
        build on what the test before it left."""
        sandbox = _main_sandbox(self.worker)
        sandbox.reset(to=self.innermost())
        return sandbox


@pytest.fixture(scope="session")
def dbsandbox_points(_dbsandbox_worker: Worker) -> ResetPoints:
    """Reset points for class- and module-level set-up: ``dbsandbox_points.take(request)`` at the
    end of such a fixture makes its committed state the one ``dbsandbox`` resets each test of
    that scope to (the worker's main, rollback sandbox)."""
    return _points_of(_dbsandbox_worker)


def _points_of(worker: Worker) -> ResetPoints:
    points = getattr(worker, "_points", None)
    if points is None:
        points = ResetPoints(worker)
        worker._points = points
    return points


@pytest.fixture(scope="session")
def dbsandbox_url(_dbsandbox_worker: Worker) -> str:
    """The URL of this worker's sandbox: ``postgresql://dbsandbox@HOST:PORT/KEY``.

    Session-wide: for engines and pools created once per worker. Not reset by itself; tests that
    take ``dbsandbox`` (or ``dbsandbox_autoreset = true``) reset it.
    """
    return _main_sandbox(_dbsandbox_worker).url


@pytest.fixture
def dbsandbox(request: pytest.FixtureRequest, _dbsandbox_worker: Worker) -> Sandbox:
    """Reset this worker's sandbox, then give the test its :class:`Sandbox`.

    Everything committed by earlier tests of this worker, through any connection, is gone; the
    sequences are back at their template values (or, inside a class or module whose fixture took
    a reset point with ``dbsandbox_points.take(request)``, at that point's state). With ``@pytest.mark.dbsandbox(isolation=...)``
    the test gets the worker's sandbox of that isolation.
    """
    problem = None
    try:
        isolation = _dbsandbox_worker.isolation
        marker = request.node.get_closest_marker("dbsandbox")
        if marker is not None:
            unknown = set(marker.kwargs) - {"isolation"}
            if marker.args or unknown:
                raise DbsandboxError(
                    "pytest-dbsandbox: the dbsandbox marker takes only isolation=...: "
                    "@pytest.mark.dbsandbox(isolation='database')"
                )
            isolation = check_isolation(
                marker.kwargs.get("isolation", isolation), "@pytest.mark.dbsandbox(isolation=...)"
            )
        sandbox = _dbsandbox_worker.for_isolation(isolation)
        point = None
        if sandbox is _main_sandbox(_dbsandbox_worker):
            point = _points_of(_dbsandbox_worker).innermost()
        sandbox.reset(to=point)
        return sandbox
    except DbsandboxError as error:
        problem = error
    _fail(problem)


@pytest.fixture(autouse=True)
def _dbsandbox_autoreset(request: pytest.FixtureRequest) -> None:
    """With ``dbsandbox_autoreset = true`` or the marker, request ``dbsandbox`` for every test."""
    if request.config.getini("dbsandbox_autoreset") or request.node.get_closest_marker("dbsandbox"):
        request.getfixturevalue("dbsandbox")
