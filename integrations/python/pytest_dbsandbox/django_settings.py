"""Helpers for Django settings modules, importable before Django is configured.

``database_from_url`` reads ``DATABASE_URL``, which dbsandbox's ``migrate_cmd`` sets to the
template it builds (``python manage.py migrate`` then migrates the template).
"""

from __future__ import annotations

from typing import Any, Dict
from urllib.parse import parse_qsl, unquote, urlsplit

from pytest_dbsandbox.client import DbsandboxError


def database_from_url(url: str, **extra: Any) -> Dict[str, Any]:
    """A ``DATABASES`` entry for a ``postgres://user:password@host:port/name?options`` URL.

    For settings that read ``DATABASE_URL``, which dbsandbox's ``migrate_cmd`` sets to the
    template under construction. Query parameters (``sslmode``, ``options``, ``host`` for a
    Unix socket directory) go to ``OPTIONS``/``HOST``. ``extra`` is merged into the result.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise DbsandboxError(f"dbsandbox: {url!r} is not a postgres:// URL")
    options = dict(parse_qsl(parts.query))
    host = options.pop("host", None) or unquote(parts.hostname or "")
    entry: Dict[str, Any] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }
    entry.update(extra)
    return entry
