#!/usr/bin/env bash
# CI entry of conformance/django/run.sh: Django's sdist (the pinned version) downloaded from PyPI
# and unpacked into a cache outside the repository, once, with its virtualenv beside it; then the
# two runs and the comparison (exit 1 on a difference not in django.differences). About 1.5
# minutes on the 2-core VM with the cache filled, 1 more to fill it.
#
#   DBSANDBOX_BIN=/path/to/dbsandbox bash conformance/django/ci.sh
#
# DJANGO_CACHE: where the sdist, its source and the virtualenv live
# (default ${XDG_CACHE_HOME:-~/.cache}/dbsandbox-conformance/django).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's/^DJANGO_VERSION=//p' "$here/run.sh")"
cache="${DJANGO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dbsandbox-conformance/django}"
src="$cache/django-$version"
mkdir -p "$cache"
if [ ! -f "$src/tests/runtests.py" ]; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip download -q --disable-pip-version-check \
    --no-binary :all: --no-deps "django==$version" -d "$cache"
  tar xzf "$cache/django-$version.tar.gz" -C "$cache"
fi
DJANGO_VENV="${DJANGO_VENV:-$cache/venv-$version}" exec bash "$here/run.sh" "$src"
