"""A trigger keeps shop_order.total_cents = sum(quantity * price) of its lines."""

from django.db import migrations

CREATE = """
CREATE FUNCTION shop_order_total() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target bigint := COALESCE(NEW.order_id, OLD.order_id);
BEGIN
    UPDATE shop_order SET total_cents = COALESCE((
        SELECT sum(l.quantity * p.price_cents)
        FROM shop_orderline l JOIN shop_product p ON p.id = l.product_id
        WHERE l.order_id = target), 0)
    WHERE id = target;
    RETURN NULL;
END $$;
CREATE TRIGGER shop_orderline_total AFTER INSERT OR UPDATE OR DELETE ON shop_orderline
    FOR EACH ROW EXECUTE FUNCTION shop_order_total();
"""
DROP = """
DROP TRIGGER shop_orderline_total ON shop_orderline;
DROP FUNCTION shop_order_total();
"""


class Migration(migrations.Migration):
    dependencies = [("shop", "0002_seed_products")]
    operations = [migrations.RunSQL(CREATE, DROP)]
