#!/usr/bin/env bash
# Installs what the planted node --test suite needs (pg) from package-lock.json, for CI:
#   bash examples/flaky-node-test/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
npm ci --no-audit --no-fund --loglevel=error
