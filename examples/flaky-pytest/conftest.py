"""One autocommit connection per test to DATABASE_URL: every write commits and stays for the
tests after it (no cleanup, no rollback), as in many real suites."""

import pytest

import shop


@pytest.fixture
def db():
    with shop.connect() as connection:
        yield connection
