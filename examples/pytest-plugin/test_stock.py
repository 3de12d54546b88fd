"""Stock levels: exact quantities after each test's orders."""

import psycopg
import pytest
import shop


def quantity(url, sku):
    with psycopg.connect(url) as connection:
        return connection.execute("select quantity from stock where sku = %s", (sku,)).fetchone()[0]


def test_one_book_sold(dbsandbox_url):
    shop.place_order("ada@example.com", "book", 1500)
    assert quantity(dbsandbox_url, "book") == 9


def test_ten_books_sold_empties_the_shelf(dbsandbox_url):
    for _ in range(10):
        shop.place_order("linus@example.com", "book", 1500)
    assert quantity(dbsandbox_url, "book") == 0
    with pytest.raises(Exception, match="stock_quantity_check"):
        shop.place_order("linus@example.com", "book", 1500)  # the 11th: no book left
    assert quantity(dbsandbox_url, "book") == 0


@pytest.mark.dbsandbox(isolation="database")
def test_real_commits_with_database_isolation(dbsandbox):
    # This test gets a whole clone of its own with real transactions (a second sandbox of the
    # worker): another connection does not see uncommitted rows.
    with psycopg.connect(dbsandbox.url) as writer, psycopg.connect(dbsandbox.url, autocommit=True) as reader:
        writer.execute("update stock set quantity = 0 where sku = 'pen'")
        assert reader.execute("select quantity from stock where sku = 'pen'").fetchone()[0] == 100
        writer.commit()
        assert reader.execute("select quantity from stock where sku = 'pen'").fetchone()[0] == 0
