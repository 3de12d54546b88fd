"""dbsandbox's migrate_cmd for Django's own test suite: build the template as Django would.

    python migrate_template.py DJANGO_TESTS_DIR MODULE ...

With DATABASE_URL set to the template under construction (dbsandbox sets it), installs the
apps of the given test modules the way tests/runtests.py does, then does what Django's
``create_test_db`` does to a new test database: ``migrate --run-syncdb`` (the test apps without
migrations are synced, postgres_tests' migrations create its extensions and models) and
``createcachetable``. Every test database of the run is then a clone of this one.
"""

import os
import sys
import tempfile


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: migrate_template.py DJANGO_TESTS_DIR MODULE ...", file=sys.stderr)
        return 2
    tests_dir, modules = os.path.abspath(sys.argv[1]), sys.argv[2:]
    sys.path[:0] = [tests_dir, os.path.dirname(os.path.abspath(__file__))]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dbsandbox_settings")
    os.environ["DJANGO_CONFORMANCE_MODE"] = "dbsandbox"
    os.environ["TMPDIR"] = tempfile.mkdtemp(prefix="django-template-")
    os.chdir(tests_dir)
    import runtests  # Django's runner, for its app set-up; importing it runs no tests

    runtests.setup_run_tests(0, None, None, test_labels=modules)
    from django.core.management import call_command

    call_command("migrate", run_syncdb=True, interactive=False, verbosity=0, database="default")
    call_command("createcachetable", database="default", verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
