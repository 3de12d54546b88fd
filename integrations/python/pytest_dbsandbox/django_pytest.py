"""pytest-django through dbsandbox: a ``django_db_setup`` that points the test databases at sandboxes.

:mod:`pytest_dbsandbox.plugin` registers this module when pytest-django is active (ini option
``dbsandbox_django = false`` to keep pytest-django's own databases). Being registered after
pytest-django, its fixture wins over pytest-django's; a ``django_db_setup`` in a conftest.py
still wins over both. ``db`` then runs in a rollback key, ``transactional_db`` (and
``live_server``) in a database key reset through the API after each test; each xdist worker
takes its own keys. ``--reuse-db``, ``--create-db`` and ``--no-migrations`` have nothing to do:
the template holds the migrations.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker):
    """Sandboxes for the session's test databases instead of CREATE DATABASE + migrate."""
    from pytest_dbsandbox.django import setup_databases, teardown_databases

    verbosity = max(0, request.config.option.verbose)
    with django_db_blocker.unblock():
        state = setup_databases(verbosity=verbosity, project_dir=str(request.config.rootpath))
    yield
    with django_db_blocker.unblock():
        teardown_databases(state, verbosity)
