"""The pytest plugin: fixtures that give each test worker its own dbsandbox sandbox.

Run the suite under ``dbsandbox run -- pytest ...``. That command starts the proxy and exports
``DBSANDBOX_HOST`` and ``DBSANDBOX_PORT``; the database name of a connection to the proxy is the
*sandbox key*. This plugin gives every pytest-xdist worker its own key (``gw0``, ``gw1``, ...;
``main`` without xdist), so workers never see each other's rows, and resets the worker's
sandbox before a test with the in-band statement ``SELECT dbsandbox_reset()``.

Fixtures:

* ``dbsandbox_url`` (session): the URL of this worker's sandbox.
* ``dbsandbox`` (function): resets the sandbox, then gives a :class:`Sandbox` (``.url``,
  ``.key``, ``.reset()``, ``.url_with(...)``).

ini options:

* ``dbsandbox_key_prefix`` (default empty): prepended to the worker id to form the key.
* ``dbsandbox_autoreset`` (default false): reset before every test, as if every test asked for
  the ``dbsandbox`` fixture.
"""

from __future__ import annotations

import os
import re
from typing import Optional
from urllib.parse import quote

import pytest

HOST_VARIABLE = "DBSANDBOX_HOST"
PORT_VARIABLE = "DBSANDBOX_PORT"
DEFAULT_HOST = "127.0.0.1"
USER = "dbsandbox"
RESET_STATEMENT = "SELECT dbsandbox_reset()"
ISOLATIONS = ("rollback", "database")
CONNECT_TIMEOUT_SECONDS = 10

#: The proxy's rule for keys; anything else is refused with SQLSTATE 3D000.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,48}")

NOT_UNDER_DBSANDBOX = (
    "pytest-dbsandbox: DBSANDBOX_PORT is not set, so there is no dbsandbox proxy to connect to.\n"
    "Run the suite under dbsandbox, which starts the proxy and sets DBSANDBOX_HOST and "
    "DBSANDBOX_PORT:\n"
    "    dbsandbox run -- pytest ...\n"
    "    dbsandbox run --migrations db/migrations -- pytest -n 4\n"
    "(Starting or attaching to a dbsandbox daemon from pytest itself is not available yet.)"
)

NO_DRIVER = (
    "pytest-dbsandbox needs a PostgreSQL driver to reset the sandbox, and neither psycopg (3) nor "
    "psycopg2 can be imported. Install one of them:\n"
    "    pip install 'psycopg[binary]'      # or: pip install psycopg2-binary"
)


class DbsandboxError(Exception):
    """A problem using dbsandbox from pytest, with a message meant for the user."""


def worker_key(prefix: str = "") -> str:
    """The sandbox key of this test process: ``prefix`` + the xdist worker id, or ``main``.

    Raises :class:`DbsandboxError` when the result breaks the proxy's key rule
    (1 to 48 characters from ``A-Z a-z 0-9 _ -``), naming the prefix as the likely cause.
    """
    key = prefix + os.environ.get("PYTEST_XDIST_WORKER", "main")
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


def proxy_address(environ=None) -> tuple:
    """``(host, port)`` of the proxy, from ``DBSANDBOX_HOST`` and ``DBSANDBOX_PORT``.

    Raises :class:`DbsandboxError` with instructions when ``DBSANDBOX_PORT`` is not set.
    """
    environ = os.environ if environ is None else environ
    port = environ.get(PORT_VARIABLE, "").strip()
    if not port:
        raise DbsandboxError(NOT_UNDER_DBSANDBOX)
    if not port.isdigit():
        raise DbsandboxError(f"pytest-dbsandbox: DBSANDBOX_PORT={port!r} is not a port number")
    host = environ.get(HOST_VARIABLE, "").strip() or DEFAULT_HOST
    return host, int(port)


def sandbox_url(host: str, port: int, key: str, isolation: Optional[str] = None) -> str:
    """The libpq URL of sandbox ``key`` on the proxy at ``host:port``.

    With ``isolation`` the URL carries ``options=-c dbsandbox.isolation=<isolation>``
    (percent-encoded), which the proxy reads when the key's first connection arrives.
    """
    check_key(key)
    if isolation is not None and isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, not {isolation!r}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    url = f"postgresql://{USER}@{host}:{port}/{key}"
    if isolation is not None:
        url += "?options=" + quote(f"-c dbsandbox.isolation={isolation}", safe="")
    return url


def reset_sandbox(url: str, driver: Optional[str] = None) -> None:
    """Reset the sandbox ``url`` names: run ``SELECT dbsandbox_reset()`` on a short-lived connection.

    ``driver`` is ``"psycopg"``, ``"psycopg2"`` or ``None`` (psycopg 3 if importable, else
    psycopg2). The reset rolls back everything the key's connections wrote, restores sequences to
    their template values and resets session state; connections of the key stay open.
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
            f"pytest-dbsandbox: could not reset the sandbox at {url} with {driver}: {error}\n"
            "Is `dbsandbox run` still running, and is this suite running under it?"
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
    """This worker's sandbox, as the ``dbsandbox`` fixture gives it to a test.

    Attributes:
        key: the sandbox key (the database name on the proxy), e.g. ``gw0``.
        url: ``postgresql://dbsandbox@HOST:PORT/KEY``, for any libpq-based driver or SQLAlchemy
            (``sqlalchemy.make_url(url).set(drivername="postgresql+psycopg")``).
    """

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host = host
        self.port = port
        self.key = key
        self.url = sandbox_url(host, port, key)

    def reset(self) -> None:
        """Put the sandbox back to the template's state (``SELECT dbsandbox_reset()``)."""
        reset_sandbox(self.url)

    def url_with(self, isolation: Optional[str] = "database", key_suffix: str = "db") -> str:
        """The URL of another key, ``<key>-<key_suffix>``, with ``isolation`` requested.

        ``isolation="database"`` gives that key a whole clone with real commits, DDL that needs
        no transaction (``VACUUM``, ``CREATE INDEX CONCURRENTLY``), real isolation levels and
        locks. The first connection of a key decides its isolation, so the key must differ from
        the worker's own (rollback) key: ``key_suffix`` cannot be empty.

        A database-isolation key is *not* reset by this plugin and keeps what was committed to
        it until ``dbsandbox run`` ends (or ``dbsandbox release KEY``): give each test that
        commits there its own ``key_suffix``.
        """
        if not key_suffix:
            raise ValueError(
                "key_suffix must not be empty: the worker's own key already has its isolation"
            )
        return sandbox_url(self.host, self.port, f"{self.key}-{key_suffix}", isolation)

    def __repr__(self) -> str:
        return f"Sandbox(key={self.key!r}, url={self.url!r})"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the plugin's ini options."""
    parser.addini(
        "dbsandbox_key_prefix",
        "prefix of this run's sandbox keys (key = prefix + xdist worker id, or + 'main')",
        default="",
    )
    parser.addini(
        "dbsandbox_autoreset",
        "reset the worker's sandbox before every test, not only those using the dbsandbox fixture",
        type="bool",
        default=False,
    )


def _fail(error: DbsandboxError):
    """Fail the requesting test's setup with ``error``'s message and no traceback."""
    pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def _dbsandbox_worker(pytestconfig: pytest.Config) -> Sandbox:
    """The :class:`Sandbox` of this worker (not reset here)."""
    try:
        host, port = proxy_address()
        key = worker_key(pytestconfig.getini("dbsandbox_key_prefix"))
        available_driver()
    except DbsandboxError as error:
        problem = error
    else:
        return Sandbox(host, port, key)
    _fail(problem)  # outside the except block: the message is shown once, without a chain


@pytest.fixture(scope="session")
def dbsandbox_url(_dbsandbox_worker: Sandbox) -> str:
    """The URL of this worker's sandbox: ``postgresql://dbsandbox@HOST:PORT/KEY``.

    The key is ``dbsandbox_key_prefix`` + the xdist worker id (``gw0``, ...) or ``main``. Fails
    with instructions when the suite does not run under ``dbsandbox run``.
    """
    return _dbsandbox_worker.url


@pytest.fixture
def dbsandbox(_dbsandbox_worker: Sandbox) -> Sandbox:
    """Reset this worker's sandbox, then give the test its :class:`Sandbox`.

    Everything committed by earlier tests of this worker, through any connection, is gone; the
    sequences are back at their template values.
    """
    try:
        _dbsandbox_worker.reset()
    except DbsandboxError as error:
        problem = error
    else:
        return _dbsandbox_worker
    _fail(problem)


@pytest.fixture(autouse=True)
def _dbsandbox_autoreset(request: pytest.FixtureRequest) -> None:
    """With ``dbsandbox_autoreset = true``, request ``dbsandbox`` (and so a reset) for every test."""
    if request.config.getini("dbsandbox_autoreset"):
        request.getfixturevalue("dbsandbox")
