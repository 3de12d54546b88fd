#!/usr/bin/env bash
# Installs what the planted pytest suite needs (pytest, psycopg 3), for CI: bash examples/flaky-pytest/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PIP_ROOT_USER_ACTION=ignore "${PYTHON:-python3}" -m pip install -q --disable-pip-version-check -r requirements.txt
