"""pytest-dbsandbox: a dbsandbox PostgreSQL sandbox per pytest worker, reset before each test.

The fixtures live in :mod:`pytest_dbsandbox.plugin`, which pytest loads through the ``pytest11``
entry point; the names below are re-exported for type hints and for helpers outside fixtures.
"""

from pytest_dbsandbox.plugin import (
    DbsandboxError,
    Sandbox,
    reset_sandbox,
    sandbox_url,
    worker_key,
)

__all__ = ["DbsandboxError", "Sandbox", "reset_sandbox", "sandbox_url", "worker_key"]
__version__ = "0.1.0"
