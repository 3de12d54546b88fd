"""Database isolation: ``@pytest.mark.dbsandbox(isolation="database")`` and ``url_with``.

In a rollback sandbox all connections of a key share one transaction, so a row one connection
has not committed yet is already visible to the others. Under database isolation each connection
is a real server session: uncommitted rows stay private and a COMMIT publishes them.

The marker gives the test the worker's database-isolation sandbox (key ``<key>-db``), reset (a
fresh clone) before each marked test. ``url_with`` keys are not reset by the plugin, so each test
uses its own ``key_suffix``.
"""

import psycopg
import psycopg2
import pytest
import sqlalchemy
from sqlalchemy import text
from conftest import make_engine, scalar



def database_name(url):
    return sqlalchemy.make_url(url).database


def test_url_with_names_a_separate_key_acquired_with_that_isolation(dbsandbox, daemon):
    url = dbsandbox.url_with(isolation="database", key_suffix="iso")
    assert database_name(url) == dbsandbox.key + "-iso"
    assert dbsandbox.url_with(isolation="database", key_suffix="iso") == url  # acquired once
    listed = {s["key"]: s for s in daemon.sandboxes()}
    assert listed[dbsandbox.key + "-iso"]["isolation"] == "database"
    assert listed[dbsandbox.key]["isolation"] == "rollback"
    with pytest.raises(Exception, match="acquired with isolation 'database'"):
        dbsandbox.url_with(isolation="rollback", key_suffix="iso")


@pytest.mark.dbsandbox(isolation="database")
@pytest.mark.parametrize("attempt", [1, 2])
def test_marker_gives_a_fresh_database_clone_with_real_commits(dbsandbox, attempt):
    # Runs twice on the same worker's "-db" key: the reset before each gives a fresh clone, so
    # the committed alice of the first attempt is gone in the second (id 101, 101 rows both times).
    assert dbsandbox.isolation == "database"
    assert dbsandbox.key.endswith("-db")
    with psycopg.connect(dbsandbox.url) as writer, psycopg.connect(dbsandbox.url, autocommit=True) as reader:
        assert scalar(reader, "select count(*) from t0") == 100
        assert scalar(writer, "insert into t0(name) values ('alice') returning id") == 101
        assert scalar(reader, "select count(*) from t0") == 100  # a real, private transaction
        writer.commit()
        assert scalar(reader, "select count(*) from t0") == 101
        reader.execute("vacuum t0")  # refused in a rollback sandbox


def test_unmarked_tests_keep_the_rollback_sandbox(dbsandbox):
    assert dbsandbox.isolation == "rollback"
    assert not dbsandbox.key.endswith("-db")


def test_database_isolation_commit_is_real_and_visible_to_a_second_connection(dbsandbox):
    url = dbsandbox.url_with(isolation="database", key_suffix="commit")
    with psycopg.connect(url) as writer, psycopg.connect(url, autocommit=True) as reader:
        assert scalar(writer, "insert into t0(name) values ('alice') returning id") == 101
        # Not committed yet: a real transaction, invisible to the other session.
        assert scalar(reader, "select count(*) from t0") == 100
        writer.commit()
        assert scalar(reader, "select id from t0 where name = 'alice'") == 101
        assert scalar(reader, "select count(*) from t0") == 101
    # The commit outlives both connections: a new connection of the key still sees it.
    with psycopg.connect(url) as later:
        assert scalar(later, "select count(*) from t0 where name = 'alice'") == 1
    # The worker's own rollback sandbox never saw any of it.
    with psycopg.connect(dbsandbox.url) as own:
        assert scalar(own, "select count(*) from t0") == 100


def test_rollback_key_shares_uncommitted_rows_for_contrast(dbsandbox):
    url = dbsandbox.url_with(isolation="rollback", key_suffix="shared")
    assert database_name(url) == dbsandbox.key + "-shared"
    with psycopg.connect(url) as writer, psycopg.connect(url, autocommit=True) as reader:
        writer.execute("insert into t0(name) values ('alice')")
        assert scalar(reader, "select count(*) from t0") == 101  # one shared transaction
        writer.rollback()
        assert scalar(reader, "select count(*) from t0") == 100


def test_database_isolation_runs_statements_refused_in_a_transaction(dbsandbox):
    url = dbsandbox.url_with(isolation="database", key_suffix="vacuum")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("vacuum t0")
        connection.execute("create index concurrently t0_payload on t0 ((payload->>'k'))")
        assert scalar(connection, "select count(*) from pg_indexes where indexname = 't0_payload'") == 1
    with psycopg.connect(dbsandbox.url, autocommit=True) as rollback_connection:
        with pytest.raises(psycopg.Error) as refused:
            rollback_connection.execute("vacuum t0")
        assert refused.value.sqlstate == "25001"


def test_psycopg2_accepts_the_database_isolation_url(dbsandbox):
    url = dbsandbox.url_with(isolation="database", key_suffix="pg2")
    writer = psycopg2.connect(url)
    reader = psycopg2.connect(url)
    reader.autocommit = True
    try:
        with writer.cursor() as cursor:
            cursor.execute("insert into t0(name) values ('alice')")
        assert scalar(reader, "select count(*) from t0") == 100
        writer.commit()
        assert scalar(reader, "select id from t0 where name = 'alice'") == 101
    finally:
        writer.close()
        reader.close()


def test_sqlalchemy_accepts_the_database_isolation_url(dbsandbox):
    url = dbsandbox.url_with(isolation="database", key_suffix="sqla")
    assert database_name(url) == dbsandbox.key + "-sqla"
    writer_engine = make_engine(url, "psycopg")
    reader_engine = make_engine(url, "psycopg2")
    try:
        with writer_engine.connect() as writer, reader_engine.connect() as reader:
            writer.execute(text("insert into t0(name) values ('alice')"))
            assert reader.execute(text("select count(*) from t0")).scalar_one() == 100
            reader.rollback()  # end the reader's snapshot, as a new request would
            writer.commit()
            assert reader.execute(text("select count(*) from t0")).scalar_one() == 101
    finally:
        writer_engine.dispose()
        reader_engine.dispose()
