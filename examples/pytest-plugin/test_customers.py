"""Sign-ups with a fixed email: each test would collide with the others without isolation."""

import psycopg
import pytest
import shop


def count_customers(url):
    with psycopg.connect(url) as connection:
        return connection.execute("select count(*) from customers").fetchone()[0]


def test_sign_up_gets_id_4(dbsandbox_url):
    assert shop.sign_up("new@example.com", "New") == 4  # 3 seeded customers
    assert count_customers(dbsandbox_url) == 4


def test_sign_up_the_same_email_again(dbsandbox_url):
    assert shop.sign_up("new@example.com", "Again") == 4
    assert count_customers(dbsandbox_url) == 4


def test_duplicate_email_is_refused(dbsandbox_url):
    shop.sign_up("new@example.com", "New")
    with pytest.raises(psycopg.errors.UniqueViolation):
        shop.sign_up("new@example.com", "Twice")
    assert count_customers(dbsandbox_url) == 4


def test_delete_a_seeded_customer(dbsandbox_url):
    with psycopg.connect(dbsandbox_url) as connection:
        connection.execute("delete from customers where email = 'linus@example.com'")
        connection.commit()
    assert count_customers(dbsandbox_url) == 2
    assert shop.sign_up("new@example.com", "New") == 4  # sequences are not reused, as on PostgreSQL


@pytest.mark.parametrize("name", ["Ann", "Bob", "Cyd"])
def test_rename_ada(dbsandbox_url, name):
    import psycopg2

    connection = psycopg2.connect(dbsandbox_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("update customers set name = %s where name = 'Ada' returning id", (name,))
            assert cursor.fetchall() == [(1,)]  # Ada is still there: no earlier rename leaked in
        connection.commit()
    finally:
        connection.close()
