"""The plugin's own behaviour: key and URL, the daemon's view, options and errors (nested runs)."""

import os
import sys

import pytest
from conftest import env_without_daemon
from pytest_dbsandbox import DbsandboxError, plugin

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
KEY = f"pytest-{WORKER}-{os.getpid()}"


def test_key_is_worker_and_pid_and_url_names_it(dbsandbox_url, dbsandbox):
    assert dbsandbox.key == KEY
    assert dbsandbox.url == dbsandbox_url
    assert dbsandbox_url.startswith("postgresql://")
    assert dbsandbox_url.endswith(f"/{KEY}")
    if os.environ.get("DBSANDBOX_RUN"):
        # Under `dbsandbox run`, the sandbox is in the run's scope, on the run's proxy.
        assert f":{os.environ['DBSANDBOX_PORT']}/" in dbsandbox_url


def test_the_daemon_lists_this_workers_lease(dbsandbox, daemon):
    listed = {s["key"]: s for s in daemon.sandboxes()}
    assert KEY in listed, sorted(listed)
    lease = listed[KEY]
    assert lease["owner_pid"] == os.getpid()
    assert lease["isolation"] == "rollback"
    assert lease["run"] == (os.environ.get("DBSANDBOX_RUN") or None)


def test_the_reset_goes_through_the_api(dbsandbox):
    import psycopg

    with psycopg.connect(dbsandbox.url) as connection:  # the daemon counts resets of a live sandbox
        connection.execute("insert into t6(name, parent_id) values ('alice', 1)")
        connection.commit()
        before = dbsandbox.info()["stats"]["resets"]
        dbsandbox.reset()
        assert dbsandbox.info()["stats"]["resets"] == before + 1
        assert connection.execute("select count(*) from t6").fetchone()[0] == 100


class TestClassSetUpSurvivesEachTestsReset:
    """A class fixture's committed rows are the state each test of the class starts from (a
    reset point), not wiped by the per-test reset as they were."""

    @pytest.fixture(scope="class", autouse=True)
    def class_author(self, dbsandbox_points, request):
        import psycopg

        sandbox = dbsandbox_points.reset()
        with psycopg.connect(sandbox.url) as connection:
            connection.execute("insert into t6(name, parent_id) values ('class author', 1)")
        dbsandbox_points.take(request)

    @pytest.mark.parametrize("round_", [1, 2, 3])
    def test_each_test_starts_from_the_class_state(self, dbsandbox, round_):
        import psycopg

        with psycopg.connect(dbsandbox.url) as connection:
            count = "select count(*) from t6 where name = %s"
            assert connection.execute(count, ("class author",)).fetchone()[0] == 1
            assert connection.execute(count, ("test row",)).fetchone()[0] == 0
            assert connection.execute("select count(*) from t6").fetchone()[0] == 101
            connection.execute("insert into t6(name, parent_id) values ('test row', 1)")


def test_outside_the_class_each_test_starts_from_the_seed_again(dbsandbox):
    import psycopg

    with psycopg.connect(dbsandbox.url) as connection:
        assert connection.execute("select count(*) from t6").fetchone()[0] == 100


def test_a_point_in_a_function_fixture_is_refused(dbsandbox_points, request):
    with pytest.raises(DbsandboxError, match="class-, module-"):
        dbsandbox_points.take(request)


def test_url_with_refuses_the_workers_own_key_and_unknown_isolations(dbsandbox):
    with pytest.raises(ValueError, match="key_suffix must not be empty"):
        dbsandbox.url_with(isolation="database", key_suffix="")
    with pytest.raises(ValueError, match="isolation must be one of"):
        dbsandbox.url_with(isolation="serializable", key_suffix="x")
    with pytest.raises(DbsandboxError, match="not a valid sandbox key"):
        dbsandbox.url_with(key_suffix="x" * 48)


def test_ipv6_host_is_bracketed():
    assert plugin.sandbox_url("::1", 6543, "gw0") == "postgresql://dbsandbox@[::1]:6543/gw0"


def test_worker_key_rule():
    assert plugin.worker_key("pytest-", pid=42) == f"pytest-{WORKER}-42"
    with pytest.raises(DbsandboxError, match="dbsandbox_key_prefix = 'a b'"):
        plugin.worker_key("a b", pid=42)


def test_psycopg2_is_the_fallback_driver_of_the_in_band_helper(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    assert plugin.available_driver() == "psycopg2"


def test_no_driver_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(DbsandboxError) as error:
        plugin.available_driver()
    assert "neither psycopg (3) nor psycopg2" in str(error.value)
    assert "pip install 'psycopg[binary]'" in str(error.value)


def test_in_band_reset_helper_still_works(dbsandbox):
    import psycopg

    with psycopg.connect(dbsandbox.url) as connection:
        connection.execute("insert into t5(name, parent_id) values ('alice', 1)")
        connection.commit()
        plugin.reset_sandbox(dbsandbox.url)
        assert connection.execute("select count(*) from t5").fetchone()[0] == 100


USES_FIXTURES = """
def test_uses_the_sandbox(dbsandbox):
    pass

def test_uses_the_url(dbsandbox_url):
    pass

def test_without_database():
    pass
"""


def run_nested(pytester, monkeypatch, env=None, *args):
    """Run the nested suite in a subprocess with exactly ``env`` (default: this environment
    without the ``PYTEST_*`` variables, so the nested run is not taken for an xdist worker).

    Only this plugin is loaded (other installed plugins can take seconds to import).
    """
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env = dict(env, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    with monkeypatch.context() as patch:  # runpytest_subprocess passes a copy of os.environ
        for name in list(os.environ):
            if name not in env:
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return pytester.runpytest_subprocess("-p", "pytest_dbsandbox.plugin", "-p", "no:cacheprovider", *args)


def assert_clean_failure(result, *patterns):
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(list(patterns))
    output = result.stdout.str()
    assert "Traceback" not in output
    assert "During handling" not in output  # shown once, not as a chain of exceptions


def test_no_daemon_and_no_binary_says_what_to_do(pytester, monkeypatch):
    pytester.makepyfile(USES_FIXTURES)
    (pytester.path / "empty-bin").mkdir()
    env = env_without_daemon(PATH=str(pytester.path / "empty-bin"))
    env.pop("DBSANDBOX_BIN", None)
    result = run_nested(pytester, monkeypatch, env)
    assert_clean_failure(
        result,
        "*DBSANDBOX_URL is not set and `dbsandbox` is neither in this Python environment nor on PATH*",
        "*pip install pytest-dbsandbox*",
        "*DBSANDBOX_BIN=/path/to/dbsandbox*",
        "*dbsandbox run -- pytest*",
    )


def test_bad_dbsandbox_bin_is_named(pytester, monkeypatch):
    pytester.makepyfile(USES_FIXTURES)
    result = run_nested(pytester, monkeypatch, env_without_daemon(DBSANDBOX_BIN="/nonexistent/dbsandbox"))
    assert_clean_failure(result, "*DBSANDBOX_BIN='/nonexistent/dbsandbox' is not an executable file*")


def test_a_failing_serve_detach_shows_its_stderr(pytester, monkeypatch):
    fake = pytester.path / "fake-dbsandbox"
    fake.write_text("#!/bin/sh\necho \"dbsandbox: error: no PostgreSQL binaries ($*)\" >&2\nexit 2\n")
    fake.chmod(0o755)
    pytester.makepyfile(USES_FIXTURES)
    result = run_nested(pytester, monkeypatch, env_without_daemon(DBSANDBOX_BIN=str(fake)))
    assert_clean_failure(
        result,
        "*serve --detach` in * failed (exit status 2)*",
        "*dbsandbox: error: no PostgreSQL binaries (serve --detach)*",
    )


def test_serve_detach_without_a_json_line_is_reported(pytester, monkeypatch):
    fake = pytester.path / "fake-dbsandbox"
    fake.write_text("#!/bin/sh\necho 'listening somewhere'\n")
    fake.chmod(0o755)
    pytester.makepyfile(USES_FIXTURES)
    result = run_nested(pytester, monkeypatch, env_without_daemon(DBSANDBOX_BIN=str(fake)))
    assert_clean_failure(result, "*exited 0 but did not print the expected JSON line*listening somewhere*")


def test_unreachable_dbsandbox_url_is_reported(pytester, monkeypatch):
    pytester.makepyfile(USES_FIXTURES)
    result = run_nested(pytester, monkeypatch, env_without_daemon(DBSANDBOX_URL="http://127.0.0.1:9"))
    assert_clean_failure(
        result, "*cannot reach the dbsandbox daemon at http://127.0.0.1:9*found through DBSANDBOX_URL*"
    )


def test_invalid_options_are_reported(pytester, monkeypatch, dbsandbox):
    pytester.makeini("[pytest]\ndbsandbox_key_prefix = no spaces\n")
    pytester.makepyfile("def test_url(dbsandbox_url):\n    pass\n")
    result = run_nested(pytester, monkeypatch)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'no spaces*' is not a valid sandbox key (dbsandbox_key_prefix = 'no spaces')*"])

    pytester.makeini("[pytest]\ndbsandbox_isolation = snapshot\n")
    result = run_nested(pytester, monkeypatch)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*dbsandbox_isolation (ini option): 'snapshot' is not an isolation; use 'rollback' or 'database'*"])


NESTED_SUITE = """
import os
import psycopg


def insert_alice(url):
    with psycopg.connect(url) as connection:
        new_id = connection.execute("insert into t0(name) values ('alice') returning id").fetchone()[0]
        connection.commit()
        return new_id


def test_key_has_the_prefix(dbsandbox_url):
    assert dbsandbox_url.endswith("/{prefix}main-%d" % os.getpid())


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
def test_autoreset_ini_option_resets_before_every_test(pytester, monkeypatch, dbsandbox, autoreset, outcomes):
    # dbsandbox: this process found the daemon and exported DBSANDBOX_URL, which the nested run
    # (whose rootdir has no dbsandbox.toml) inherits.
    prefix = f"ar{autoreset[0]}-"
    pytester.makeini(f"[pytest]\ndbsandbox_key_prefix = {prefix}\ndbsandbox_autoreset = {autoreset}\n")
    pytester.makepyfile(NESTED_SUITE.format(prefix=prefix))
    result = run_nested(pytester, monkeypatch)
    result.assert_outcomes(**outcomes)
    if autoreset == "false":
        result.stdout.fnmatch_lines(["*test_second_alice*", "*UniqueViolation*"])


def test_isolation_ini_option_gives_database_sandboxes(pytester, monkeypatch, dbsandbox):
    pytester.makeini("[pytest]\ndbsandbox_isolation = database\n")
    pytester.makepyfile(
        """
        import psycopg
        import pytest

        def test_database(dbsandbox):
            assert dbsandbox.isolation == "database"
            with psycopg.connect(dbsandbox.url, autocommit=True) as connection:
                connection.execute("vacuum t0")

        @pytest.mark.dbsandbox(isolation="rollback")
        def test_marked_rollback(dbsandbox):
            assert dbsandbox.isolation == "rollback"
            assert dbsandbox.key.endswith("-rb")
        """
    )
    result = run_nested(pytester, monkeypatch)
    result.assert_outcomes(passed=2)


def test_bad_marker_is_reported(pytester, monkeypatch, dbsandbox):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.dbsandbox(isolation="snapshot")
        def test_bad(dbsandbox):
            pass

        @pytest.mark.dbsandbox("database")
        def test_positional(dbsandbox):
            pass
        """
    )
    result = run_nested(pytester, monkeypatch)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.dbsandbox(isolation=...): 'snapshot' is not an isolation*",
            "*the dbsandbox marker takes only isolation=...*",
        ]
    )
