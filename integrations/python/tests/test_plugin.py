"""The plugin's own behaviour: URL and key, options, errors, with nested pytest runs (pytester)."""

import os
import sys

import pytest
from pytest_dbsandbox import DbsandboxError, plugin

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def test_url_is_the_workers_key_on_the_proxy(dbsandbox_url, dbsandbox):
    host = os.environ.get("DBSANDBOX_HOST", "127.0.0.1")
    expected = f"postgresql://dbsandbox@{host}:{os.environ['DBSANDBOX_PORT']}/{WORKER}"
    assert dbsandbox_url == expected
    assert dbsandbox.url == expected
    assert dbsandbox.key == WORKER


def test_url_with_refuses_the_workers_own_key_and_unknown_isolations(dbsandbox):
    with pytest.raises(ValueError, match="key_suffix must not be empty"):
        dbsandbox.url_with(isolation="database", key_suffix="")
    with pytest.raises(ValueError, match="isolation must be one of"):
        dbsandbox.url_with(isolation="serializable", key_suffix="x")
    with pytest.raises(DbsandboxError, match="not a valid sandbox key"):
        dbsandbox.url_with(key_suffix="x" * 48)


def test_ipv6_host_is_bracketed():
    assert plugin.sandbox_url("::1", 6543, "gw0") == "postgresql://dbsandbox@[::1]:6543/gw0"


def test_psycopg2_is_the_fallback_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    assert plugin.available_driver() == "psycopg2"


def test_no_driver_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(DbsandboxError) as error:
        plugin.available_driver()
    assert "neither psycopg (3) nor psycopg2" in str(error.value)
    assert "pip install 'psycopg[binary]'" in str(error.value)


def test_without_dbsandbox_port_the_fixture_says_to_use_dbsandbox_run(pytester, monkeypatch):
    monkeypatch.delenv("DBSANDBOX_PORT")
    pytester.makepyfile(
        """
        def test_uses_the_sandbox(dbsandbox):
            pass

        def test_uses_the_url(dbsandbox_url):
            pass

        def test_without_database():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*pytest-dbsandbox: DBSANDBOX_PORT is not set*",
            "*dbsandbox run -- pytest*",
            "*not available yet*",
        ]
    )
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "During handling" not in output  # shown once, not as a chain of exceptions


def test_invalid_key_prefix_is_reported(pytester):
    pytester.makeini("[pytest]\ndbsandbox_key_prefix = no spaces\n")
    pytester.makepyfile("def test_url(dbsandbox_url):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*'no spaces*' is not a valid sandbox key (dbsandbox_key_prefix = 'no spaces')*"]
    )


NESTED_SUITE = """
import psycopg
import pytest


@pytest.fixture(scope="session", autouse=True)
def kept_open(dbsandbox_url):
    # Keeps the key open, so only the plugin's reset can undo a test's commits.
    with psycopg.connect(dbsandbox_url, autocommit=True) as connection:
        yield connection


def insert_alice(url):
    with psycopg.connect(url) as connection:
        new_id = connection.execute("insert into t0(name) values ('alice') returning id").fetchone()[0]
        connection.commit()
        return new_id


def test_key_has_the_prefix(dbsandbox_url):
    assert dbsandbox_url.endswith("/{prefix}{worker}")


def test_first_alice(dbsandbox_url):
    assert insert_alice(dbsandbox_url) == 101


def test_second_alice(dbsandbox_url):
    assert insert_alice(dbsandbox_url) == 101
"""


@pytest.mark.parametrize(
    "autoreset, outcomes",
    [("true", {"passed": 3}), ("false", {"passed": 2, "failed": 1})],
    ids=["autoreset", "no-autoreset"],
)
def test_autoreset_ini_option_resets_before_every_test(pytester, autoreset, outcomes):
    prefix = f"ar{autoreset[0]}-"  # art- / arf-: a key of its own for each nested run
    pytester.makeini(
        f"[pytest]\ndbsandbox_key_prefix = {prefix}\ndbsandbox_autoreset = {autoreset}\n"
    )
    pytester.makepyfile(NESTED_SUITE.format(prefix=prefix, worker=WORKER))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(**outcomes)
    if autoreset == "false":
        result.stdout.fnmatch_lines(["*test_second_alice*", "*UniqueViolation*"])
