"""The Django integration end to end: a copy of examples/django plus probe tests, run by
``manage.py test --parallel 2`` (DbsandboxTestRunner) and ``pytest -n 2`` (pytest-django), each
on its own daemon for the copy (real embedded PostgreSQL, template migrated by Django)."""

import json
import os
import re
import shutil
import subprocess
import sys

import psycopg
import pytest
from pytest_dbsandbox import client as api

from conftest import env_without_daemon

pytest.importorskip("django")
pytest.importorskip("pytest_django")

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "..", "examples", "django")
PACKAGE = os.path.dirname(HERE)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the Django example with the probe tests, and its daemon stopped at the end."""
    directory = tmp_path_factory.mktemp("django") / "shop"
    shutil.copytree(EXAMPLE, directory, ignore=shutil.ignore_patterns("__pycache__", "run.sh"))
    for source, name in (("probe_django.py", "test_probe.py"), ("probe_pytest.py", "test_probe_pytest.py")):
        shutil.copy(os.path.join(HERE, "django_probe", source), directory / "shop" / "tests" / name)
    yield directory
    subprocess.run([api.find_binary(), "stop"], cwd=directory, env=project_env(directory),
                   capture_output=True)


def project_env(directory, **extra):
    return env_without_daemon(
        DBSANDBOX_BIN=api.find_binary(),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=PACKAGE,
        PROBE_FILE=str(directory / "probe.jsonl"),
        **extra,
    )


def run(directory, *command, **extra):
    probe = directory / "probe.jsonl"
    if probe.exists():
        probe.unlink()
    done = subprocess.run(
        [sys.executable, *command], cwd=directory, env=project_env(directory, **extra),
        capture_output=True, text=True, timeout=600,
    )
    lines = probe.read_text().splitlines() if probe.exists() else []
    return done, [json.loads(line) for line in lines]


def daemon_of(directory) -> api.Client:
    """The copy's daemon (not api.connect: that would replace this process's own daemon)."""
    info = api.start_or_attach(str(directory), project_env(directory))
    return api.Client(info["api"], info.get("token"))


def workers_and_isolations(records, kind, isolation_tag):
    chosen = [r for r in records if r["kind"] == kind]
    assert chosen, f"no {kind} test recorded"
    pattern = re.compile(rf"dj\d+-0-{isolation_tag}-(w\d+|main)")
    for r in chosen:
        assert pattern.fullmatch(r["key"]), r
        assert r["products"] == 3, r  # the data migration's rows, from the template
        # QuerySet.iterator() on a server-side cursor, in rollback keys too (no workaround)
        assert r["server_side_cursors"] and r["iterated"] == 3, r
    return chosen


def databases_on_server(directory) -> set:
    server = daemon_of(directory).request("GET", "/v1/status")["server"]["url"]
    with psycopg.connect(server) as admin:
        return {row[0] for row in admin.execute("SELECT datname FROM pg_database")}


def test_manage_py_test_parallel_gives_each_worker_its_own_keys(project):
    before = databases_on_server(project)
    done, records = run(project, "manage.py", "test", "--parallel", "2", "-v", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 24 tests" in done.stderr
    test_cases = workers_and_isolations(records, "TestCase", "rb")
    transactions = workers_and_isolations(records, "TransactionTestCase", "db")
    # Workers take their own keys: each process one worker name, never the parent's "main".
    # (How Django spreads the classes over its two workers is up to scheduling.)
    worker_of_pid = {}
    for r in test_cases + transactions:
        worker_of_pid.setdefault(r["pid"], set()).add(r["key"].rsplit("-", 1)[1])
    assert all(len(names) == 1 for names in worker_of_pid.values()), worker_of_pid
    names = [next(iter(names)) for names in worker_of_pid.values()]
    assert len(set(names)) == len(names) and set(names) <= {"w1", "w2"}, worker_of_pid
    # Each TransactionTestCase test got a fresh clone (reset through the API, not a flush).
    clones = [r["clone"] for r in transactions]
    assert len(set(clones)) == len(clones) == 3, clones
    # No test database was created on the server, and every key was released.
    daemon = daemon_of(project)
    assert not [s for s in daemon.sandboxes() if s["key"].startswith("dj")]
    assert {name for name in databases_on_server(project) - before if not name.startswith("dbsandbox_")} == set()


def test_local_time_zone_survives_rolled_back_blocks(project):
    # Django's own suite runs with USE_TZ = False and TIME_ZONE = "America/Chicago": the session
    # time zone is Chicago, and psycopg reads timestamps in the zone the server last reported.
    # The runner used to pass it as a startup option, which a rollback key does not report
    # (ParameterStatus said Etc/UTC): every datetime read back came shifted by six hours.
    settings = project / "shopsite" / "settings_local_time.py"
    settings.write_text("from shopsite.settings import *  # noqa: F401,F403\nUSE_TZ = False\n")
    probe = project / "shop" / "tests" / "test_probe_local_time.py"
    shutil.copy(os.path.join(HERE, "django_probe", "probe_local_time.py"), probe)
    try:
        done, _ = run(project, "manage.py", "test", "--settings", "shopsite.settings_local_time",
                      "shop.tests.test_probe_local_time")
    finally:  # the other tests of the module count the copy's tests
        probe.unlink()
        settings.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Ran 2 tests" in done.stderr, done.stderr


def test_keepdb_is_accepted_and_changes_nothing(project):
    done, records = run(project, "manage.py", "test", "--keepdb", "shop.tests.test_probe")
    assert done.returncode == 0, done.stdout + done.stderr
    assert {r["key"].rsplit("-", 1)[1] for r in records} == {"main"}
    assert len(records) == 6


def test_pytest_django_db_and_transactional_db(project):
    done, records = run(project, "-m", "pytest", "-n", "2", "-p", "no:randomly", "-p",
                        "no:cacheprovider", "-q", "shop/tests/test_probe_pytest.py",
                        "shop/tests/test_probe.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 passed" in done.stdout, done.stdout
    rollback = workers_and_isolations(records, "db", "rb") + workers_and_isolations(records, "TestCase", "rb")
    database = workers_and_isolations(records, "transactional_db", "db") + workers_and_isolations(
        records, "TransactionTestCase", "db")
    assert len({r["pid"] for r in records}) == 2, records  # two xdist workers
    clones = [r["clone"] for r in database]
    assert len(set(clones)) == len(clones), clones
    assert len({r["clone"] for r in rollback}) <= 2  # one rollback key per worker


def test_a_template_without_the_latest_migration_is_reported(project):
    stale = project / "stale.toml"
    stale.write_text(
        # Everything, then shop back to 0002: the template lacks exactly shop.0003.
        'migrate_cmd = "python manage.py migrate --noinput && python manage.py migrate shop 0002"\n'
        'watch = ["shop/migrations"]\n'
    )
    done, records = run(project, "manage.py", "test", "shop.tests.test_probe",
                        DBSANDBOX_CONFIG=str(stale))
    subprocess.run([api.find_binary(), "stop"], cwd=project,
                   env=project_env(project, DBSANDBOX_CONFIG=str(stale)), capture_output=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "lacks migrations shop.0003_order_total_trigger. " in done.stderr, done.stderr
    assert 'migrate_cmd = "python manage.py migrate --noinput"' in done.stderr
    assert records == []


def test_database_from_url_reads_every_part():
    from pytest_dbsandbox.django_settings import database_from_url

    entry = database_from_url(
        "postgresql://app%40corp:s%3Acret@db.example:6543/shop?sslmode=require&options=-c%20search_path%3Dx"
    )
    assert entry == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app@corp",
        "PASSWORD": "s:cret",
        "HOST": "db.example",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require", "options": "-c search_path=x"},
    }
    socket = database_from_url("postgres:///shop?host=/var/run/postgresql", CONN_MAX_AGE=0)
    assert (socket["HOST"], socket["PORT"], socket["CONN_MAX_AGE"]) == ("/var/run/postgresql", "", 0)
    with pytest.raises(api.DbsandboxError, match="not a postgres:// URL"):
        database_from_url("mysql://x/y")
