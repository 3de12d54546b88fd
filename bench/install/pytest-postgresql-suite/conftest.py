import os
from pathlib import Path

import pytest
from pytest_postgresql import factories

postgresql_proc = factories.postgresql_proc(
    executable=os.environ["PG_CTL"], load=[Path(__file__).parent / "migrations" / "0001_shop.sql"]
)
postgresql = factories.postgresql("postgresql_proc")


@pytest.fixture
def db(postgresql):
    yield postgresql
