#!/usr/bin/env bash
# Installs what the planted Jest suite needs (jest, pg) from package-lock.json, for CI:
#   bash examples/flaky-jest/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund --loglevel=error
