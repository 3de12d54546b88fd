"""The example's only set-up: the application reads DATABASE_URL, so point it at the worker's
sandbox. Isolation itself is pytest-dbsandbox's job (``dbsandbox_autoreset = true`` in pytest.ini).
"""

import pytest


@pytest.fixture(scope="session", autouse=True)
def database_url(dbsandbox_url):
    mp = pytest.MonkeyPatch()
    mp.setenv("DATABASE_URL", dbsandbox_url)
    yield dbsandbox_url
    mp.undo()
