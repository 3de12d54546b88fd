"""Commits through SQLAlchemy 2 (ORM and Core, psycopg 3 dialect), and a second engine.

Application code rarely commits through the test's connection: it has its own engine, its
own pool and ``Session.commit()``. These tests do that and still assert absolute values
against the seed (100 rows per table, ids 1..100): ``alice`` gets id 101 in every test,
seed7 of t20 is renamed exactly once. One test opens a second engine and checks that it sees
what the first engine committed; two use a worker-wide engine whose pool keeps a connection
open across tests, as an application's module-level engine does. In a rollback sandbox all these connections share the
worker's transaction and every commit is rolled back at the next reset; on a shared database
the second ``alice`` is an ``IntegrityError`` (``UniqueViolation``).
"""

import datetime

import psycopg
import pytest
import sqlalchemy
from sqlalchemy import ForeignKey, column, func, select, table, text, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class Parent(Base):
    """Table t0 of the schema (mapped, not created: the migrations create it)."""

    __tablename__ = "t0"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=func.now())


class Child(Base):
    """Table t1: its ``parent_id`` references t0."""

    __tablename__ = "t1"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=func.now())
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("t0.id"))


def count(session_or_conn, table) -> int:
    return session_or_conn.scalar(select(func.count()).select_from(table))


def test_session_commit_gets_the_first_id_after_the_seed(engine):
    with Session(engine) as session:
        alice = Parent(name="alice")
        session.add(alice)
        session.commit()
        assert alice.id == 101
    with Session(engine) as session:
        assert count(session, Parent) == 101
        assert session.scalar(select(Parent.id).where(Parent.name == "alice")) == 101


def test_session_commit_of_a_parent_with_children(engine):
    with Session(engine) as session:
        alice = Parent(name="alice")
        session.add(alice)
        session.flush()
        session.add_all([Child(name=f"alice-child-{n}", parent_id=alice.id) for n in (1, 2)])
        session.commit()
    with Session(engine) as session:
        children = session.scalars(
            select(Child.id).join(Parent, Child.parent_id == Parent.id).where(Parent.name == "alice")
        ).all()
        assert children == [101, 102]
        assert count(session, Parent) == 101
        assert count(session, Child) == 102


def test_second_engine_sees_the_first_engines_commits(engine, second_engine):
    with Session(engine) as session:
        session.add_all([Parent(name="alice"), Parent(name="bob")])
        session.commit()
    # Another engine: another pool, another connection, as a second service would have.
    with second_engine.connect() as other:
        names = other.execute(text("select id, name from t0 where id > 100 order by id")).all()
        assert [tuple(row) for row in names] == [(101, "alice"), (102, "bob")]
        assert count(other, Parent.__table__) == 102
        other.execute(text("insert into t0(name) values ('carol')"))
        other.commit()
    # ... and the first engine sees what the second one committed.
    with Session(engine) as session:
        assert session.scalar(select(Parent.id).where(Parent.name == "carol")) == 103
        assert count(session, Parent) == 103


def test_long_lived_application_engine_starts_from_the_seed(app_engine):
    # app_engine lives as long as the worker and its pool keeps a connection open between
    # tests: this test sees the seed only because the sandbox is reset before each test.
    with Session(app_engine) as session:
        alice = Parent(name="alice")
        session.add(alice)
        session.commit()
        assert alice.id == 101
        assert count(session, Parent) == 101


def test_long_lived_application_engine_and_psycopg_see_each_other(app_engine, conn):
    conn.execute("insert into t0(name) values ('alice')")
    conn.commit()
    with Session(app_engine) as session:
        assert session.scalar(select(Parent.id).where(Parent.name == "alice")) == 101
        session.add(Parent(name="bob"))
        session.commit()
    assert conn.execute("select id from t0 where name = 'bob'").fetchone()[0] == 102
    assert conn.execute("select count(*) from t0").fetchone()[0] == 102


def test_caught_integrity_error_then_rollback_and_go_on(engine):
    with Session(engine) as session:
        session.add(Parent(name="alice"))
        session.commit()
        session.add(Parent(name="alice"))
        with pytest.raises(sqlalchemy.exc.IntegrityError) as caught:
            session.commit()
        assert isinstance(caught.value.orig, psycopg.errors.UniqueViolation)
        session.rollback()
        # Same session, same test: more statements and a commit.
        bob = Parent(name="bob")
        session.add(bob)
        session.commit()
        assert bob.id == 103  # the failed insert used 102
        assert count(session, Parent) == 102


def test_core_update_of_a_seed_row_in_engine_begin(engine):
    t20 = table("t20", column("id"), column("name"))
    with engine.begin() as connection:  # commits when the block ends
        renamed = connection.execute(
            update(t20).where(t20.c.name == "seed7").values(name="renamed-seed7")
        )
        assert renamed.rowcount == 1
    with engine.connect() as connection:
        assert connection.scalar(select(t20.c.name).where(t20.c.id == 7)) == "renamed-seed7"
        assert connection.scalar(select(func.count()).where(t20.c.name.like("seed%"))) == 99
