"""Shared fixtures of pytest-dbsandbox's own suite.

The suite runs under ``dbsandbox run --migrations examples/pytest-shared/migrations`` (schema40:
tables t0..t39, 100 seed rows ``seed1``..``seed100`` each, ids 1..100, ``name`` unique), with two
xdist workers in random order. Tests commit rows with fixed names (``alice``) and assert exact
counts and ids, so they pass only if every test starts from the seed.

A key is also reset by the proxy when its last connection closes. So that this suite proves the
plugin's reset and not that one, ``sandbox_kept_open`` holds a connection to the worker's key for
the whole session, as an application's pooled engine would.
"""

import psycopg
import pytest
import sqlalchemy

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def sandbox_kept_open(dbsandbox_url):
    """One idle connection to this worker's key, open from the first test to the last."""
    with psycopg.connect(dbsandbox_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def conn(dbsandbox):
    """A psycopg 3 connection to the freshly reset sandbox, not in autocommit (tests commit)."""
    with psycopg.connect(dbsandbox.url) as connection:
        yield connection


@pytest.fixture
def conn2(dbsandbox):
    """A psycopg2 connection to the freshly reset sandbox, not in autocommit (tests commit)."""
    import psycopg2

    connection = psycopg2.connect(dbsandbox.url)
    yield connection
    connection.close()


def make_engine(url: str, driver: str) -> sqlalchemy.Engine:
    """A SQLAlchemy engine on ``url`` through ``driver`` (``psycopg`` or ``psycopg2``)."""
    return sqlalchemy.create_engine(
        sqlalchemy.make_url(url).set(drivername=f"postgresql+{driver}")
    )


@pytest.fixture(scope="session")
def app_engine(dbsandbox_url):
    """A worker-wide SQLAlchemy engine (psycopg 3), like an application's module-level engine.

    Its pool keeps connections across tests; only the plugin's reset puts the data back.
    """
    engine = make_engine(dbsandbox_url, "psycopg")
    yield engine
    engine.dispose()


def scalar(connection, sql, params=None):
    """The first column of the first row of ``sql``, for psycopg 3 and psycopg2 connections."""
    if isinstance(connection, psycopg.Connection):
        return connection.execute(sql, params).fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]
