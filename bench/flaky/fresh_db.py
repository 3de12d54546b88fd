"""pytest plugin for the bench's fair variant of detect-test-pollution: every pytest process
starts on a fresh clone (the daemon swaps the `default` key's clone for a new one), as each of
dbsandbox flaky's runs does. Loaded with PYTEST_ADDOPTS='-p fresh_db'."""

import os
import urllib.error
import urllib.request


def pytest_sessionstart(session):
    base, run = os.environ["DBSANDBOX_URL"], os.environ["DBSANDBOX_RUN"]
    request = urllib.request.Request(
        f"{base}/v1/sandboxes/default/reset?run={run}", data=b"{}", method="POST"
    )
    token = os.environ.get("DBSANDBOX_TOKEN")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            reply.read()
    except urllib.error.HTTPError as e:
        # 404: no connection used the key yet, so it is still the template's state.
        if e.code != 404:
            raise
