"""Accounts: seeded users are read only. Planted: an assumed id (test_register_assigns_next_id,
victim) and a later sign-up (test_signup_new_customer, its polluter)."""

import shop


def test_find_user_by_email(db):
    assert shop.user_name(db, "ada@example.com") == "Ada"


def test_register_assigns_next_id(db):
    """Planted victim: assumes its user gets the id after the seeded ones (3 + 1)."""
    user_id = shop.register_user(db, "new@example.com", "New")
    if shop.planted():
        assert user_id == 4
    else:
        assert user_id > 3
        assert shop.user_id(db, "new@example.com") == user_id


def test_seeded_user_names_in_id_order(db):
    names = [row[0] for row in db.execute("select name from users where id <= 3 order by id")]
    assert names == ["Ada", "Grace", "Linus"]


def test_signup_new_customer(db):
    """Planted polluter of test_register_assigns_next_id: its committed user takes the next id."""
    shop.register_user(db, "zoe@example.com", "Zoe")
    assert shop.user_name(db, "zoe@example.com") == "Zoe"


def test_unknown_email_has_no_user(db):
    assert shop.user_name(db, "nobody@example.com") is None


def test_user_order_history(db):
    skus = [
        row[0]
        for row in db.execute(
            "select p.sku from orders o join products p on p.id = o.product_id where o.user_id = 1 order by o.id"
        )
    ]
    assert skus == ["pro-kit", "t-shirt"]
