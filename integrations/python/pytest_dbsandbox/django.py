"""Django's test databases as dbsandbox sandboxes: a test runner, and the functions behind it.

``TEST_RUNNER = "pytest_dbsandbox.django.DbsandboxTestRunner"`` (or, under pytest-django, the
``django_db_setup`` of :mod:`pytest_dbsandbox.django_pytest`) replaces Django's creation of test
databases: no ``CREATE DATABASE``, no migrations per run. The project's migrations are in
dbsandbox's template already (``migrate_cmd = "python manage.py migrate"`` in ``dbsandbox.toml``,
fingerprinted on the files named by ``watch``), and every PostgreSQL alias is pointed at
sandboxes acquired through the daemon's API:

* ``TestCase`` (and ``SimpleTestCase``): a **rollback** key. Django's class atomic block and the
  per-test atomic blocks become savepoints of the key's one transaction, so ``setUpTestData``
  is made once per class and every test starts from it.
* ``TransactionTestCase`` (``LiveServerTestCase`` …): a **database** key (its own clone, real
  commits). After each test the key is reset through the API, which swaps in a fresh clone from
  the pool, instead of Django's flush; the connections are closed so the next test reconnects.
* ``--parallel N``: each worker process acquires its own pair of keys.
* ``--keepdb``: nothing to keep; ignored.

Keys are ``dj<pid>-<alias number>-<rb|db>-<worker>``, owned by the process that acquired them
(the daemon releases them if it dies) and released at teardown.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

from django.core.management import call_command
from django.db import connections
from django.test import TestCase, TransactionTestCase
from django.test.runner import DiscoverRunner
from django.test.utils import setup_databases as django_setup_databases
from django.test.utils import teardown_databases as django_teardown_databases

from pytest_dbsandbox import client as api
from pytest_dbsandbox.client import ApiError, DbsandboxError
from pytest_dbsandbox.django_settings import database_from_url

ROLLBACK = "rollback"
DATABASE = "database"
ISOLATION_TAG = {ROLLBACK: "rb", DATABASE: "db"}
#: The settings a sandbox URL replaces; restored at teardown.
CONNECTION_SETTINGS = ("NAME", "USER", "PASSWORD", "HOST", "PORT")
RESTORED_SETTINGS = CONNECTION_SETTINGS + ("OPTIONS", "DISABLE_SERVER_SIDE_CURSORS")
PROJECT_DIR_VARIABLE = "DBSANDBOX_PROJECT_DIR"


def is_postgresql(alias: str) -> bool:
    return connections[alias].vendor == "postgresql"


class AliasGroup:
    """Aliases that name one test database (Django's test signature), and their sandboxes."""

    def __init__(self, number: int, aliases: List[str]) -> None:
        self.number = number
        self.aliases = aliases
        self.originals = {
            alias: {name: connections[alias].settings_dict.get(name) for name in RESTORED_SETTINGS}
            for alias in aliases
        }
        #: Server-side cursors (QuerySet.iterator()) fail in this group's rollback keys.
        self.rollback_without_server_side_cursors = False
        self.current: Optional[str] = None  # the key the aliases point at

    def update(self, isolation: str, url: str) -> None:
        """Point every alias of the group at ``url`` (in place: new threads see it too)."""
        for alias in self.aliases:
            settings = connections[alias].settings_dict
            settings.update(url_settings(url))
            settings["DISABLE_SERVER_SIDE_CURSORS"] = bool(
                self.originals[alias]["DISABLE_SERVER_SIDE_CURSORS"]
            ) or (isolation == ROLLBACK and self.rollback_without_server_side_cursors)

    def restore(self) -> None:
        for alias in self.aliases:
            connections[alias].settings_dict.update(self.originals[alias])
        self.current = None


class Sandboxes:
    """This run's mapping of Django aliases onto dbsandbox keys, shared by forked workers."""

    def __init__(self, client: api.Client, groups: List[AliasGroup], parallel: int) -> None:
        self.client = client
        self.groups = groups
        self.parallel = parallel
        self.owner = os.getpid()
        self.worker = "main"
        self.leases: Dict[str, api.Sandbox] = {}  # acquired by this process

    def key(self, group: AliasGroup, isolation: str, worker: Optional[str] = None) -> str:
        return f"dj{self.owner}-{group.number}-{ISOLATION_TAG[isolation]}-{worker or self.worker}"

    def lease(self, group: AliasGroup, isolation: str) -> api.Sandbox:
        """This process's sandbox of ``isolation`` for ``group``, acquired the first time."""
        key = self.key(group, isolation)
        if key not in self.leases:
            try:
                self.leases[key] = self.client.acquire(key, isolation, os.getpid())
            except ApiError as error:
                if error.code == "key_in_use":
                    raise DbsandboxError(
                        f"dbsandbox: sandbox key {key!r} is held by another process "
                        f"({error.api_message}); release it: dbsandbox release {key}"
                    ) from None
                raise
        return self.leases[key]

    def point(self, isolation: str, aliases: Optional[List[str]] = None) -> None:
        """Point every group (or those holding ``aliases``) at its ``isolation`` sandbox.

        The settings dict is updated in place (new threads see it too) and the aliases' open
        connections are closed, so the next query connects to the sandbox.
        """
        for group in self.groups:
            if aliases is not None and not set(aliases) & set(group.aliases):
                continue
            sandbox = self.lease(group, isolation)
            if group.current == sandbox.key:
                continue
            close_connections(group.aliases)
            group.update(isolation, sandbox.url)
            group.current = sandbox.key

    def reset(self, isolation: str, aliases: List[str]) -> None:
        """Reset this process's ``isolation`` sandboxes of ``aliases`` (closing connections first)."""
        for group in self.groups:
            if not set(aliases) & set(group.aliases):
                continue
            key = self.key(group, isolation)
            if key in self.leases:
                close_connections(group.aliases)
                self.leases[key].reset()

    def start_worker(self, worker_id: int) -> None:
        """In a ``--parallel`` worker: forget the parent's leases, take this worker's keys."""
        self.worker = f"w{worker_id}"
        self.leases = {}
        for group in self.groups:
            group.current = None
        self.point(ROLLBACK)

    def release_all(self) -> List[Exception]:
        """Release every key of the run (workers' too); already gone is fine."""
        problems: List[Exception] = []
        workers = ["main"] + [f"w{n}" for n in range(1, self.parallel + 1)]
        close_connections([alias for group in self.groups for alias in group.aliases])
        for group in self.groups:
            for worker in workers:
                for isolation in ISOLATION_TAG:
                    try:
                        self.client.release(self.key(group, isolation, worker), run=self.client.run)
                    except ApiError as error:
                        if error.code != "not_found":
                            problems.append(error)
                    except DbsandboxError as error:
                        problems.append(error)
            group.restore()
        self.leases = {}
        return problems


def url_settings(url: str) -> Dict[str, Any]:
    """The connection settings of a sandbox URL (``postgres://dbsandbox@host:port/key``)."""
    entry = database_from_url(url)
    return {name: entry[name] for name in CONNECTION_SETTINGS}


def server_side_cursors_work(alias: str) -> bool:
    """Whether a server-side cursor (what ``QuerySet.iterator()`` uses) works on ``alias`` now."""
    from django.db import DatabaseError, transaction

    connection = connections[alias]
    try:
        with transaction.atomic(using=alias):
            cursor = connection.chunked_cursor()
            try:
                cursor.execute("SELECT 1")
                cursor.fetchall()
            finally:
                cursor.close()
        return True
    except DatabaseError:
        return False
    finally:
        connection.close()


def close_connections(aliases: List[str]) -> None:
    for alias in aliases:
        connections[alias].close()


#: The run's sandboxes while test databases are set up (one per process: Django's are global).
_active: Optional[Sandboxes] = None


def group_aliases(aliases) -> Tuple[List[List[str]], List[str], Dict[str, str]]:
    """PostgreSQL aliases grouped by test database, the other aliases, and the mirrors."""
    groups: Dict[Any, List[str]] = {}
    others: List[str] = []
    mirrors: Dict[str, str] = {}
    for alias in connections:
        if alias not in aliases:
            continue
        test = connections[alias].settings_dict.get("TEST") or {}
        if test.get("MIRROR"):
            mirrors[alias] = test["MIRROR"]
        elif is_postgresql(alias):
            signature = connections[alias].creation.test_db_signature()
            groups.setdefault(signature, []).append(alias)
        else:
            others.append(alias)
    return list(groups.values()), others, mirrors


def check_migrations(alias: str) -> None:
    """Fail clearly when the template lacks migrations of the project (stale or no migrate_cmd)."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        missing = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:8])
        more = f" (and {len(plan) - 8} more)" if len(plan) > 8 else ""
        raise DbsandboxError(
            f"dbsandbox: the template of database {alias!r} lacks migrations {missing}{more}. "
            "dbsandbox builds the template with its migrate command, so in dbsandbox.toml set\n"
            '    migrate_cmd = "python manage.py migrate --noinput"\n'
            '    watch = ["<app>/migrations", ...]   # so an edited migration rebuilds it\n'
            "with settings that read DATABASE_URL (see database_from_url)."
        )
    connections[alias].close()


def setup_databases(
    aliases=None,
    parallel: int = 0,
    verbosity: int = 1,
    project_dir: Optional[str] = None,
    **django_kwargs: Any,
) -> Dict[str, Any]:
    """Point Django's PostgreSQL aliases at sandboxes; other backends get Django's own setup.

    Returns the state :func:`teardown_databases` takes. ``django_kwargs`` go to Django's
    ``setup_databases`` for the other aliases (``interactive``, ``keepdb``, ...).
    """
    global _active
    if _active is not None:
        raise DbsandboxError("dbsandbox: test databases are already set up in this process")
    if parallel > 1 and multiprocessing.get_start_method() != "fork":
        raise DbsandboxError(
            f"dbsandbox: --parallel needs the fork start method of multiprocessing (Linux's "
            f"default); here it is {multiprocessing.get_start_method()!r}. Run without --parallel "
            "or use pytest-django with pytest-xdist (-n N), whose workers take their own keys."
        )
    aliases = set(connections) if aliases is None else set(aliases)
    groups, others, mirrors = group_aliases(aliases)
    if not groups:  # no PostgreSQL alias: nothing for dbsandbox, and no daemon to start
        return {
            "sandboxes": None,
            "others": django_setup_databases(verbosity, aliases=others, parallel=parallel, **django_kwargs),
            "parallel": parallel,
        }
    directory = project_dir or os.environ.get(PROJECT_DIR_VARIABLE) or os.getcwd()
    client = api.connect(directory)
    sandboxes = Sandboxes(
        client, [AliasGroup(n, members) for n, members in enumerate(groups)], parallel
    )
    for group in sandboxes.groups:
        for alias in group.aliases:
            install_worker_hook(alias, sandboxes)
    _active = sandboxes
    try:
        sandboxes.point(ROLLBACK)
        for group in sandboxes.groups:
            if not server_side_cursors_work(group.aliases[0]):
                group.rollback_without_server_side_cursors = True
                group.update(ROLLBACK, sandboxes.lease(group, ROLLBACK).url)
                if verbosity >= 1:
                    print(
                        "dbsandbox: server-side cursors fail in rollback sandboxes of this "
                        "daemon: DISABLE_SERVER_SIDE_CURSORS is set for TestCase"
                    )
        for mirror, target in mirrors.items():
            connections[mirror].creation.set_as_test_mirror(connections[target].settings_dict)
        for group in sandboxes.groups:
            if verbosity >= 1:
                print(
                    f"dbsandbox: {', '.join(repr(a) for a in group.aliases)} -> sandbox "
                    f"{group.current} (rollback; TransactionTestCase: database)"
                )
        if "default" in aliases and "default" not in others and "default" not in mirrors:
            check_migrations("default")
        other_config = None
        if others:
            other_config = django_setup_databases(
                verbosity, aliases=others, parallel=parallel, **django_kwargs
            )
    except BaseException:
        sandboxes.release_all()
        _active = None
        raise
    install_test_case_hooks()
    return {"sandboxes": sandboxes, "others": other_config, "parallel": parallel}


def teardown_databases(state: Dict[str, Any], verbosity: int = 1, **django_kwargs: Any) -> None:
    """Release the run's sandboxes and restore the aliases' settings."""
    global _active
    problems: List[Exception] = []
    sandboxes: Optional[Sandboxes] = state["sandboxes"]
    if sandboxes is not None:
        uninstall_test_case_hooks()
        problems = sandboxes.release_all()
        _active = None
    if state.get("others"):
        django_teardown_databases(
            state["others"], verbosity, parallel=state.get("parallel", 0), **django_kwargs
        )
    if problems:
        raise DbsandboxError("dbsandbox: could not release: " + "; ".join(map(str, problems)))


def install_worker_hook(alias: str, sandboxes: Sandboxes) -> None:
    """Make ``--parallel`` workers (forked) take their own keys instead of Django's clones."""
    creation = connections[alias].creation

    def setup_worker_connection(worker_id):
        if sandboxes.worker != f"w{worker_id}":
            sandboxes.start_worker(worker_id)

    creation.setup_worker_connection = setup_worker_connection


# -- TestCase / TransactionTestCase: which key, and how a TransactionTestCase is undone ------

_originals: Dict[str, Any] = {}


def _databases(test_class) -> List[str]:
    return list(test_class._databases_names(include_mirrors=True))


def _use_database_keys(test_class) -> None:
    sandboxes = _active
    if sandboxes is not None and not issubclass(test_class, TestCase):
        sandboxes.point(DATABASE, _databases(test_class))


def _transactional_pre_setup_class(cls):  # Django >= 5.1: a classmethod, run by setUpClass
    _use_database_keys(cls)
    return _originals["_pre_setup"].__func__(cls)


def _transactional_pre_setup(self):  # Django < 5.1: per test
    _use_database_keys(type(self))
    return _originals["_pre_setup"](self)


def _enter_atomics(cls):
    sandboxes = _active
    if sandboxes is not None:
        sandboxes.point(ROLLBACK, _databases(cls))
    return _originals["_enter_atomics"].__func__(cls)


def _transactional_fixture_teardown(self):
    """Instead of flushing: reset the test's database keys (a fresh clone each), reconnect."""
    sandboxes = _active
    if sandboxes is None:
        return _originals["_fixture_teardown"](self)
    managed = {alias for group in sandboxes.groups for alias in group.aliases}
    names = self._databases_names(include_mirrors=False)
    sandboxes.reset(DATABASE, [alias for alias in names if alias in managed])
    for alias in names:
        if alias not in managed:  # another backend (SQLite, ...): Django's own flush
            call_command(
                "flush",
                verbosity=0,
                interactive=False,
                database=alias,
                reset_sequences=False,
                allow_cascade=self.available_apps is not None,
                inhibit_post_migrate=self.available_apps is not None,
            )


def install_test_case_hooks() -> None:
    if _originals:
        return
    _originals["_pre_setup"] = TransactionTestCase.__dict__["_pre_setup"]
    _originals["_fixture_teardown"] = TransactionTestCase.__dict__["_fixture_teardown"]
    _originals["_enter_atomics"] = TestCase.__dict__["_enter_atomics"]
    if isinstance(_originals["_pre_setup"], classmethod):
        TransactionTestCase._pre_setup = classmethod(_transactional_pre_setup_class)
    else:
        TransactionTestCase._pre_setup = _transactional_pre_setup
    TransactionTestCase._fixture_teardown = _transactional_fixture_teardown
    TestCase._enter_atomics = classmethod(_enter_atomics)


def uninstall_test_case_hooks() -> None:
    if not _originals:
        return
    TransactionTestCase._pre_setup = _originals.pop("_pre_setup")
    TransactionTestCase._fixture_teardown = _originals.pop("_fixture_teardown")
    TestCase._enter_atomics = _originals.pop("_enter_atomics")


class DbsandboxTestRunner(DiscoverRunner):
    """``DiscoverRunner`` whose test databases are dbsandbox sandboxes (see the module doc).

    ``--parallel`` works with the fork start method (Linux); ``--keepdb`` is accepted and has
    nothing to do.
    """

    def setup_databases(self, **kwargs):
        if self.keepdb and self.verbosity >= 2:
            print("dbsandbox: --keepdb has no effect: sandboxes come from the template")
        try:
            return self._setup_sandboxes(kwargs)
        except DbsandboxError as error:  # a message for the user, not a traceback
            sys.stderr.write(f"{error}\n")
            raise SystemExit(2) from None

    def _setup_sandboxes(self, kwargs):
        return setup_databases(
            aliases=kwargs.get("aliases"),
            parallel=self.parallel,
            verbosity=self.verbosity,
            interactive=self.interactive,
            time_keeper=self.time_keeper,
            keepdb=self.keepdb,
            debug_sql=self.debug_sql,
            serialized_aliases=kwargs.get("serialized_aliases"),
        )

    def teardown_databases(self, old_config, **kwargs):
        teardown_databases(old_config, self.verbosity, keepdb=self.keepdb)
