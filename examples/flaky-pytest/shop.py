"""The shop under test in the planted pytest suite for `dbsandbox flaky`.

Every function runs on an autocommit psycopg connection to ``DATABASE_URL``, so what a test
writes stays committed for the tests after it: exactly what order-dependent tests are made of.
"""

import os

import psycopg


def connect():
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def planted():
    """Whether the planted faults are on: ``FLAKY_PLANTED=0`` switches every one of them off."""
    return os.environ.get("FLAKY_PLANTED", "1") != "0"


def _one(db, sql, params=()):
    row = db.execute(sql, params).fetchone()
    return None if row is None else row[0]


def register_user(db, email, name):
    return _one(db, "insert into users (email, name) values (%s, %s) returning id", (email, name))


def user_name(db, email):
    return _one(db, "select name from users where email = %s", (email,))


def user_id(db, email):
    return _one(db, "select id from users where email = %s", (email,))


def product_price(db, sku):
    return _one(db, "select price_cents from products where sku = %s", (sku,))


def add_product(db, sku, name, price_cents, stock):
    return _one(
        db,
        "insert into products (sku, name, price_cents, stock) values (%s, %s, %s, %s) returning id",
        (sku, name, price_cents, stock),
    )


def change_stock(db, sku, delta):
    return _one(db, "update products set stock = stock + %s where sku = %s returning stock", (delta, sku))


def stock(db, sku):
    return _one(db, "select stock from products where sku = %s", (sku,))


def discontinue_product(db, sku):
    return db.execute("delete from products where sku = %s", (sku,)).rowcount


def create_coupon(db, code, percent_off):
    db.execute("insert into coupons (code, percent_off) values (%s, %s)", (code, percent_off))


def launch_welcome_campaign(db):
    """The welcome campaign's coupon, created or brought back to 10 % (idempotent, as an admin
    action would be)."""
    db.execute(
        "insert into coupons (code, percent_off) values ('WELCOME10', 10) "
        "on conflict (code) do update set percent_off = excluded.percent_off"
    )


def delete_coupon(db, code):
    return db.execute("delete from coupons where code = %s", (code,)).rowcount


def discounted_price(db, sku, code):
    """The product's price after the coupon, or None when either is unknown."""
    return _one(
        db,
        "select (p.price_cents * (100 - c.percent_off) / 100)::int "
        "from products p, coupons c where p.sku = %s and c.code = %s",
        (sku, code),
    )


def place_order(db, email, sku, quantity):
    """Places an order for a product and returns (order id, total in cents)."""
    return db.execute(
        "insert into orders (user_id, product_id, quantity, total_cents) "
        "select u.id, p.id, %(q)s, p.price_cents * %(q)s from users u, products p "
        "where u.email = %(email)s and p.sku = %(sku)s returning id, total_cents",
        {"q": quantity, "email": email, "sku": sku},
    ).fetchone()


def cancel_order(db, order_id):
    return db.execute("delete from orders where id = %s", (order_id,)).rowcount


def setting(db, key):
    return _one(db, "select value from settings where key = %s", (key,))


def set_setting(db, key, value):
    db.execute(
        "insert into settings (key, value) values (%s, %s) "
        "on conflict (key) do update set value = excluded.value",
        (key, value),
    )


def format_price(db, cents):
    """A price in cents as the shop prints it, in the configured currency."""
    return f"{cents // 100}.{cents % 100:02d} {setting(db, 'currency')}"


def gross_price(db, sku):
    return _one(
        db,
        "select (p.price_cents * (100 + s.value::int) / 100)::int "
        "from products p, settings s where p.sku = %s and s.key = 'tax_rate_percent'",
        (sku,),
    )


def add_review(db, sku, email, rating, body):
    db.execute(
        "insert into reviews (product_id, user_id, rating, body) "
        "select p.id, u.id, %s, %s from products p, users u where p.sku = %s and u.email = %s",
        (rating, body, sku, email),
    )


def average_rating(db, sku):
    return _one(
        db,
        "select avg(r.rating)::float8 from reviews r join products p on p.id = r.product_id where p.sku = %s",
        (sku,),
    )


def subscribe(db, email, topic):
    db.execute(
        "insert into newsletter (email, topic) values (%s, %s) on conflict (email) do nothing", (email, topic)
    )


def audit(db, actor, action):
    db.execute("insert into audit_log (actor, action) values (%s, %s)", (actor, action))


def audit_actions(db, actor):
    return [row[0] for row in db.execute("select action from audit_log where actor = %s order by id", (actor,))]
