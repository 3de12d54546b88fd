"""SQLAlchemy 2 (Core and ORM) on both drivers, and a worker-wide engine whose pool stays open."""

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from conftest import make_engine


class Base(DeclarativeBase):
    pass


class T0(Base):
    """Seeded table t0 of schema40 (the columns the tests use)."""

    __tablename__ = "t0"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_core_insert_commits_id_101(dbsandbox, driver):
    engine = make_engine(dbsandbox.url, driver)
    try:
        with engine.begin() as connection:
            new_id = connection.execute(
                text("insert into t0(name) values ('alice') returning id")
            ).scalar_one()
        with engine.connect() as connection:
            count = connection.execute(text("select count(*) from t0")).scalar_one()
    finally:
        engine.dispose()
    assert (new_id, count) == (101, 101)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_orm_session_commit(dbsandbox, driver):
    engine = make_engine(dbsandbox.url, driver)
    try:
        with Session(engine) as session:
            session.add_all([T0(name="alice"), T0(name="bob")])
            session.commit()
            names = session.scalars(sqlalchemy.select(T0.name).where(T0.id > 100).order_by(T0.id))
            assert names.all() == ["alice", "bob"]
            assert session.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(T0)) == 102
    finally:
        engine.dispose()


def test_worker_engine_commit(dbsandbox, app_engine):
    with Session(app_engine) as session:
        session.add(T0(name="alice"))
        session.commit()
        assert session.scalar(sqlalchemy.select(T0.id).where(T0.name == "alice")) == 101
        assert session.scalar(sqlalchemy.select(sqlalchemy.func.count()).select_from(T0)) == 101


def test_worker_engine_delete(dbsandbox, app_engine):
    with app_engine.begin() as connection:
        connection.execute(text("delete from t39 where id > 90"))
        connection.execute(text("insert into t39(name) values ('alice')"))
    with app_engine.connect() as connection:
        assert connection.execute(text("select count(*) from t39")).scalar_one() == 91
        assert connection.execute(text("select max(id) from t39")).scalar_one() == 101
