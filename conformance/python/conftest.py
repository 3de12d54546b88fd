"""Fixtures for the dbsandbox conformance suite (psycopg 3).

Run under ``dbsandbox run``, which exports ``DBSANDBOX_HOST`` and ``DBSANDBOX_PORT``.
The database name of a connection string is the sandbox *key*; every test uses its own
key (``py_`` + the test name), so tests never see each other, and resets its sandbox
in-band (``SELECT dbsandbox_reset()``) before and after it runs.
"""

import hashlib
import os
import re

import psycopg
import psycopg.conninfo
import pytest

RESET = "SELECT dbsandbox_reset()"


def key_for(name: str) -> str:
    """A sandbox key from a test name: [A-Za-z0-9_-]{1,48}, unique per test name."""
    key = "py_" + re.sub(r"[^A-Za-z0-9_-]", "_", name.removeprefix("test_"))
    if len(key) > 48:  # keep it readable and unique: a prefix plus a hash of the whole name
        key = key[:39] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return key


def url_for(key: str) -> str:
    host = os.environ.get("DBSANDBOX_HOST")
    port = os.environ.get("DBSANDBOX_PORT")
    if not host or not port:
        pytest.exit(
            "DBSANDBOX_HOST/DBSANDBOX_PORT are not set: run this suite through "
            "`dbsandbox run --migrations conformance/migrations -- pytest` (see conformance/run.sh)",
            returncode=2,
        )
    return psycopg.conninfo.make_conninfo(
        host=host, port=port, dbname=key, user="dbsandbox", connect_timeout=10
    )


def reset_sandbox(url: str) -> None:
    """The in-band reset, tolerant of one thing only: a proxy without the rollback engine
    passes the statement to PostgreSQL, which answers 42883 (no such function). Then each
    key is a fresh database anyway; the tests that need a real reset call it strictly."""
    with psycopg.connect(url, autocommit=True) as c:
        try:
            c.execute(RESET)
        except psycopg.errors.UndefinedFunction:
            pass


class Sandbox:
    """One test's sandbox: its key and a factory for connections to it."""

    def __init__(self, key: str):
        self.key = key
        self.url = url_for(key)
        self._conns: list[psycopg.Connection] = []

    def connect(self, autocommit: bool = True, **kwargs) -> psycopg.Connection:
        c = psycopg.connect(self.url, autocommit=autocommit, **kwargs)
        self._conns.append(c)
        return c

    def close_all(self) -> None:
        for c in self._conns:
            c.close()
        self._conns.clear()


@pytest.fixture
def sandbox(request):
    """The one-line per-test reset: every test starts and ends with a clean sandbox."""
    box = Sandbox(getattr(request, "param", None) or key_for(request.node.name))
    reset_sandbox(box.url)
    yield box
    box.close_all()
    reset_sandbox(box.url)


@pytest.fixture
def conn(sandbox):
    """An autocommit connection to the test's sandbox, as application code would have."""
    return sandbox.connect()


def sqlstate_of(excinfo) -> str | None:
    return excinfo.value.sqlstate
