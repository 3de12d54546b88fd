"""dbsandbox flaky's pytest plugin (loaded with -p dbsandbox_flaky_order): runs exactly the tests
listed in $DBSANDBOX_FLAKY_ORDER, in that order, in one process, and writes each test's outcome
to $DBSANDBOX_FLAKY_RESULTS as JSON lines. Needs nothing beyond pytest."""

import json
import os

import pytest

_ORDER = os.environ.get("DBSANDBOX_FLAKY_ORDER")
_RESULTS = os.environ.get("DBSANDBOX_FLAKY_RESULTS")
_outcomes = {}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pytest-xdist turns -n N into dist=load in its pytest_cmdline_main, then starts workers in
    # its trylast pytest_configure: one process keeps the order exact.
    if getattr(config.option, "dist", None) not in (None, "no"):
        config.option.dist = "no"
    if getattr(config.option, "numprocesses", None):
        config.option.numprocesses = 0
    if hasattr(config.option, "tx"):
        config.option.tx = []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if not _ORDER:
        return
    with open(_ORDER, encoding="utf-8") as f:
        wanted = [line.rstrip("\n") for line in f if line.strip()]
    by_id = {item.nodeid: item for item in items}
    chosen = [by_id[i] for i in wanted if i in by_id]
    keep = set(id(item) for item in chosen)
    dropped = [item for item in items if id(item) not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = chosen


def pytest_runtest_logreport(report):
    if not _RESULTS:
        return
    previous = _outcomes.get(report.nodeid)
    if report.when == "call" or report.outcome != "passed" or previous is None:
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "skipped"
        else:
            outcome = "passed"
        # A failure in any phase (setup, call, teardown) fails the test.
        if previous and previous["outcome"] == "failed":
            return
        message = None
        if report.failed:
            message = str(report.longrepr)[-8000:]
        _outcomes[report.nodeid] = {"id": report.nodeid, "outcome": outcome, "message": message}


def pytest_sessionfinish(session, exitstatus):
    if not _RESULTS:
        return
    with open(_RESULTS, "w", encoding="utf-8") as f:
        for entry in _outcomes.values():
            f.write(json.dumps(entry) + "\n")
