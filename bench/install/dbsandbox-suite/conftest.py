import psycopg
import pytest


@pytest.fixture
def db(dbsandbox_url):
    with psycopg.connect(dbsandbox_url) as conn:
        yield conn
