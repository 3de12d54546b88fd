"""Fixtures for the pytest-shared example.

Where the tests connect is decided once per worker by ``db_url``:

* Under ``dbsandbox run`` (``DBSANDBOX_PORT`` is set) each pytest-xdist worker connects to
  ``postgresql://test@DBSANDBOX_HOST:DBSANDBOX_PORT/<key>``, where the database name is the
  dbsandbox *sandbox key*: the worker id (``gw0``, ``gw1``, ...; ``main`` without xdist). A key
  is a rollback sandbox: all connections of the key share one transaction, COMMITs are
  absorbed, and ``SELECT dbsandbox_reset()`` puts the key back to the migrated seed.
* Without dbsandbox, ``DATABASE_URL`` is used as it is: every worker shares that one database
  and nothing is reset, which is exactly the situation this example shows failing.

The feature this example is about is the autouse fixture ``fresh_sandbox``: one line resets
the worker's sandbox before every test, so every test starts from the seed (100 rows per
table, sequences at 100) whatever the previous test committed, through whatever driver.
"""

import os

import psycopg
import pytest
import sqlalchemy

MISSING_DATABASE_URL = (
    "Neither DBSANDBOX_PORT nor DATABASE_URL is set. Run the suite under dbsandbox "
    "(dbsandbox run -- python3 -m pytest -n 2 -p randomly), or point DATABASE_URL at a database "
    "migrated with migrations/ (see README.md)."
)


def worker_key() -> str:
    """The sandbox key of this test process: the xdist worker id, or ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def under_dbsandbox() -> bool:
    return bool(os.environ.get("DBSANDBOX_PORT"))


def pytest_sessionstart(session):
    # Fail fast and visibly in the controlling process: an exit inside an xdist worker
    # shows up only as a crashed worker.
    if not under_dbsandbox() and not os.environ.get("DATABASE_URL"):
        pytest.exit(MISSING_DATABASE_URL, returncode=2)


@pytest.fixture(scope="session")
def db_url() -> str:
    """The libpq URL of this worker's database: its own sandbox, or the shared database."""
    if under_dbsandbox():
        host = os.environ.get("DBSANDBOX_HOST", "127.0.0.1")
        port = os.environ["DBSANDBOX_PORT"]
        return f"postgresql://test@{host}:{port}/{worker_key()}"
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit(MISSING_DATABASE_URL, returncode=2)
    return url


@pytest.fixture(autouse=True)
def fresh_sandbox(db_url):
    """Reset this worker's sandbox before every test: the whole isolation code of the suite."""
    if under_dbsandbox():
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SELECT dbsandbox_reset()")  # <- the one line: back to the seed


@pytest.fixture
def conn(db_url):
    """A plain psycopg connection, not in autocommit: tests commit as application code does."""
    with psycopg.connect(db_url) as connection:
        yield connection


def make_engine(db_url: str) -> sqlalchemy.Engine:
    """A SQLAlchemy engine (psycopg 3 dialect, default connection pool) on ``db_url``."""
    url = sqlalchemy.make_url(db_url).set(drivername="postgresql+psycopg")
    return sqlalchemy.create_engine(url)


@pytest.fixture(scope="session")
def app_engine(db_url):
    """One engine for the whole worker, like an application's module-level engine.

    Its pool keeps a connection open from the first test that uses it to the end of the run,
    so the sandbox never sees its last connection close and never resets by itself: the
    explicit reset in ``fresh_sandbox`` is what puts it back to the seed between tests.
    """
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(db_url):
    """A SQLAlchemy engine, as an application would create it; its pool is closed after the test."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def second_engine(db_url):
    """Another, independent engine on the same database (its own pool, its own connections)."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()
