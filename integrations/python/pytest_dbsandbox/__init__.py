"""pytest-dbsandbox: a dbsandbox PostgreSQL sandbox per pytest worker, reset before each test.

The fixtures live in :mod:`pytest_dbsandbox.plugin`, which pytest loads through the ``pytest11``
entry point; :mod:`pytest_dbsandbox.client` finds or starts the dbsandbox daemon and speaks its
HTTP API (standard library only). For Django, :mod:`pytest_dbsandbox.django` has the test runner
(``TEST_RUNNER = "pytest_dbsandbox.django.DbsandboxTestRunner"``) and
:mod:`pytest_dbsandbox.django_pytest` the pytest-django integration. The names below are
re-exported for type hints and for helpers outside fixtures.
"""

from pytest_dbsandbox.client import ApiError, Client, DbsandboxError, StartError, connect
from pytest_dbsandbox.plugin import (
    Sandbox,
    reset_sandbox,
    sandbox_url,
    worker_key,
)

__all__ = [
    "ApiError",
    "Client",
    "DbsandboxError",
    "Sandbox",
    "StartError",
    "connect",
    "reset_sandbox",
    "sandbox_url",
    "worker_key",
]
__version__ = "0.2.0"
