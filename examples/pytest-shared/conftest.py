"""Fixtures for the pytest-shared example.

Every test gets a psycopg connection from ``conn``. Where it points is decided once per
worker by ``db_url``:

* ``DATABASE_URL`` is required.
* When ``DBSANDBOX_PORT`` is set, dbsandbox is running and ``DATABASE_URL`` points at its
  proxy. The database name in a connection string is the dbsandbox *sandbox key*, so each
  pytest-xdist worker replaces it with its own worker id (``gw0``, ``gw1``, ...; ``main``
  when xdist is not used) and gets a database of its own.
* Without dbsandbox the URL is used as it is: every worker shares one database, which is
  exactly the situation this example shows failing.
"""

import os

import psycopg
import psycopg.conninfo
import pytest

MISSING_DATABASE_URL = (
    "DATABASE_URL is not set. Run the suite under dbsandbox "
    "(dbsandbox run -- pytest -n 2 --dist loadgroup), or point DATABASE_URL at a database "
    "migrated with migrations/ (see README.md)."
)
GROUPS_IGNORED = (
    "--dist loadgroup ignored the xdist_group marks: this pytest / pytest-xdist combination "
    "does not group tests (pytest-dev/pytest-xdist#1386, pytest 9.2). The groups' tests build "
    "on each other and must run on one worker each; install requirements.txt (pytest<9.2)."
)
groups_ignored = pytest.StashKey[bool]()


def worker_key() -> str:
    """The sandbox key of this test process: the xdist worker id, or ``main``."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_sessionstart(session):
    # Fail fast and visibly in the controlling process: an exit inside an xdist worker
    # shows up only as a crashed worker.
    if not os.environ.get("DATABASE_URL"):
        pytest.exit(MISSING_DATABASE_URL, returncode=2)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    # pytest-xdist tags grouped tests by appending "@group" to their node ids; when that
    # tag is missing the groups are scattered over the workers. Remember it so every test
    # fails with an explanation instead of a misleading count mismatch.
    if getattr(config.option, "loadgroup", False):
        config.stash[groups_ignored] = any(
            item.get_closest_marker("xdist_group") and "@" not in item.nodeid
            for item in items
        )


@pytest.fixture(scope="session")
def db_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.exit(MISSING_DATABASE_URL, returncode=2)
    if os.environ.get("DBSANDBOX_PORT"):
        # Keep host, port, user and options; only the database name (the key) changes.
        return psycopg.conninfo.make_conninfo(url, dbname=worker_key())
    return url


@pytest.fixture
def conn(request, db_url):
    """An autocommit connection: every statement commits, as application code would."""
    if request.config.stash.get(groups_ignored, False):
        pytest.fail(GROUPS_IGNORED, pytrace=False)
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection
