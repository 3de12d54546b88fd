"""Settings for Django's own test suite (tests/runtests.py --settings=dbsandbox_settings).

Two modes, chosen by DJANGO_CONFORMANCE_MODE (conformance/django/run.sh sets it):

* ``direct``: Django's own runner against the embedded server as its admin role
  (PGHOST/PGPORT/PGUSER/PGPASSWORD): Django creates ``test_django_default`` and
  ``test_django_other`` itself, and clones them for ``--parallel`` workers.
* ``dbsandbox``: ``pytest_dbsandbox.django.DbsandboxTestRunner``; the aliases point at sandbox
  keys, cloned from the template that migrate_template.py built (DATABASE_URL is the template
  while it runs, a key of ``dbsandbox run`` during the tests; the runner replaces it either way).

'default' and 'other' are two test databases, as Django's suite wants (its multi-database tests).
"""

import os

from pytest_dbsandbox.django_settings import database_from_url

MODE = os.environ.get("DJANGO_CONFORMANCE_MODE", "dbsandbox")


def direct_database(name):
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "USER": os.environ["PGUSER"],
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
    }


def sandbox_database(suffix):
    entry = database_from_url(os.environ.get("DATABASE_URL", "postgres://localhost/django"))
    # Two names, so that Django sees two test databases (its test signature includes NAME).
    entry["NAME"] = f"{entry['NAME']}{suffix}"
    return entry


if MODE == "direct":
    DATABASES = {"default": direct_database("django_default"), "other": direct_database("django_other")}
elif MODE == "dbsandbox":
    DATABASES = {"default": sandbox_database(""), "other": sandbox_database("_other")}
    TEST_RUNNER = "pytest_dbsandbox.django.DbsandboxTestRunner"
else:
    raise SystemExit(f"DJANGO_CONFORMANCE_MODE must be direct or dbsandbox, not {MODE!r}")

SECRET_KEY = "django_tests_secret_key"
# Faster than the default hasher; what Django's own test settings use.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = False
