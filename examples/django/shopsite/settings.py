"""Settings of the example shop: PostgreSQL from DATABASE_URL, tests through dbsandbox.

dbsandbox runs `python manage.py migrate` with DATABASE_URL pointing at the template it builds
(dbsandbox.toml); the test runner then points the test databases at sandboxes, whatever
DATABASES says. Without DATABASE_URL (`run.sh`'s control run sets it) the default is a local
server, never used by the tests through dbsandbox.
"""

import os

from pytest_dbsandbox.django_settings import database_from_url

SECRET_KEY = "example-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "America/Chicago"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "shop",
]
DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", "postgres://postgres@localhost:5432/shop")
    ),
}
ROOT_URLCONF = "shopsite.urls"
STATIC_URL = "/static/"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The one line: Django's test databases become dbsandbox sandboxes.
TEST_RUNNER = os.environ.get("SHOP_TEST_RUNNER", "pytest_dbsandbox.django.DbsandboxTestRunner")
