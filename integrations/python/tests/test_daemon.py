"""Against the real daemon: attach-or-start races to one daemon, sandboxes are released at the end
(and when their process dies), API errors become clear exceptions."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import HERE, dbsandbox_binary, env_without_daemon
from pytest_dbsandbox import ApiError, Client, client as api

MIGRATIONS = os.path.abspath(os.path.join(HERE, "..", "..", "..", "examples", "pytest-shared", "migrations"))

START_OR_ATTACH = "import json, sys; from pytest_dbsandbox import client; print(json.dumps(client.start_or_attach(sys.argv[1])))"


@pytest.fixture
def fresh_project(tmp_path):
    """A project directory of its own (so no daemon serves it yet); its daemon is stopped after."""
    project = tmp_path / "project"
    (project / "migrations").mkdir(parents=True)
    (project / "migrations" / "0001_notes.sql").write_text(
        "create table notes (id bigserial primary key, body text not null unique);\n"
        "insert into notes(body) values ('seed');\n"
    )
    (project / "dbsandbox.toml").write_text('migrations = "migrations"\n')
    yield project
    subprocess.run(
        [dbsandbox_binary(), "stop"], cwd=project, env=env_without_daemon(), timeout=120,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def test_two_processes_at_once_get_one_daemon(fresh_project):
    env = env_without_daemon()
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", START_OR_ATTACH, str(fresh_project)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    answers = []
    for racer in racers:
        out, err = racer.communicate(timeout=600)
        assert racer.returncode == 0, err
        answers.append(json.loads(out))
    pids = {answer["pid"] for answer in answers}
    assert len(pids) == 1, answers
    assert {answer["api"] for answer in answers} == {answers[0]["api"]}
    assert sorted(answer["started"] for answer in answers) == [False, True], answers
    assert os.path.realpath(answers[0]["project"]) == os.path.realpath(str(fresh_project))
    health = Client(answers[0]["api"], answers[0].get("token")).health()
    assert health["status"] == "ok"
    assert health["pid"] == answers[0]["pid"]

    # A third caller attaches (started: false) and the fresh project's schema is served.
    third = subprocess.run(
        [sys.executable, "-c", START_OR_ATTACH, str(fresh_project)],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    assert json.loads(third.stdout)["started"] is False
    assert json.loads(third.stdout)["pid"] == health["pid"]
    import psycopg

    daemon = Client(answers[0]["api"], answers[0].get("token"))
    sandbox = daemon.acquire("race-check", owner_pid=os.getpid())
    try:
        with psycopg.connect(sandbox.url) as connection:
            assert connection.execute("select body from notes").fetchall() == [("seed",)]
    finally:
        sandbox.release()


NESTED_RECORDS_KEY = """
import os

def test_record(dbsandbox):
    with open(os.environ["KEY_FILE"], "a") as out:
        out.write(dbsandbox.key + "\\n")
"""


def test_a_pytest_run_releases_its_sandboxes_at_the_end(pytester, monkeypatch, daemon):
    key_file = pytester.path / "keys.txt"
    pytester.makepyfile(
        NESTED_RECORDS_KEY
        + textwrap.dedent(
            """
            import pytest

            @pytest.mark.dbsandbox(isolation="database")
            def test_record_database(dbsandbox):
                test_record(dbsandbox)
            """
        )
    )
    monkeypatch.setenv("KEY_FILE", str(key_file))
    for name in [n for n in os.environ if n.startswith("PYTEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only this plugin: fast
    result = pytester.runpytest_subprocess("-p", "pytest_dbsandbox.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    keys = key_file.read_text().split()
    assert len(keys) == 2 and keys[1] == keys[0] + "-db", keys
    listed = {s["key"] for s in daemon.sandboxes()}
    assert not set(keys) & listed, f"left over after the run: {set(keys) & listed}"


def test_a_killed_owner_process_loses_its_sandbox(daemon):
    script = (
        "import os, sys; from pytest_dbsandbox import client; "
        "s = client.connect().acquire('orphan-%d' % os.getpid(), owner_pid=os.getpid()); "
        "print(s.key, flush=True); os._exit(0)"  # no release: the daemon must notice
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    key = done.stdout.strip()
    deadline = time.monotonic() + 10
    while key in {s["key"] for s in daemon.sandboxes()}:
        assert time.monotonic() < deadline, f"{key} still held 10 s after its owner exited"
        time.sleep(0.2)


def test_key_in_use_is_a_clear_error(dbsandbox, daemon):
    with pytest.raises(ApiError) as error:
        daemon.acquire(dbsandbox.key, owner_pid=os.getpid())
    assert error.value.status == 409
    assert error.value.code == "key_in_use"
    assert "key_in_use" in str(error.value) and "POST /v1/sandboxes" in str(error.value)


def test_unknown_key_is_not_found(daemon):
    with pytest.raises(ApiError) as error:
        daemon.reset("no-such-key-anywhere")
    assert (error.value.status, error.value.code) == (404, "not_found")


def test_invalid_key_is_refused_by_the_daemon(daemon):
    with pytest.raises(ApiError) as error:
        daemon.acquire("has space", owner_pid=os.getpid())
    assert (error.value.status, error.value.code) == (400, "invalid_key")


def test_connect_is_once_per_process(daemon):
    assert api.connect() is daemon
    assert os.environ["DBSANDBOX_URL"] == daemon.api
