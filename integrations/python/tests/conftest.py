"""Shared fixtures of pytest-dbsandbox's own suite.

The suite's project is this directory (``dbsandbox.toml``: schema40 from
examples/pytest-shared/migrations: tables t0..t39, 100 seed rows ``seed1``..``seed100`` each,
ids 1..100, ``name`` unique). run_tests.sh runs it twice with two xdist workers in random order:
on the daemon the plugin starts or attaches to itself, and under ``dbsandbox run``. Tests commit
rows with fixed names (``alice``) and assert exact counts and ids, so they pass only if every
test starts from the seed.

Sandboxes acquired through the API are not reset when their last connection closes, so the
tests that commit and close prove the plugin's reset.
"""

import os

import psycopg
import pytest
import sqlalchemy
from pytest_dbsandbox import client as api

pytest_plugins = ["pytester"]

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def daemon(dbsandbox_url) -> api.Client:
    """The client of the daemon this process uses (found by the plugin)."""
    return api.connect()


def dbsandbox_binary() -> str:
    return api.find_binary()


def env_without_daemon(**extra) -> dict:
    """The environment minus everything that points at a daemon or a run, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DBSANDBOX_URL", "DBSANDBOX_TOKEN", "DBSANDBOX_RUN", "PYTEST_XDIST_WORKER")
        and not k.startswith("PYTEST_")
    }
    env.update(extra)
    return env


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
