"""Data migration: the catalogue every environment starts with (3 products)."""

from django.db import migrations

CATALOGUE = [("TEA-1", "Green tea", 450), ("MUG-1", "Mug", 1200), ("POT-1", "Tea pot", 3500)]


def seed(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    Product.objects.bulk_create(
        Product(sku=sku, name=name, price_cents=price) for sku, name, price in CATALOGUE
    )


def unseed(apps, schema_editor):
    apps.get_model("shop", "Product").objects.filter(sku__in=[c[0] for c in CATALOGUE]).delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
