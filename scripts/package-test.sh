#!/usr/bin/env bash
# CI test of the packages, as a user without Rust gets them:
#
#   1. scripts/package.sh builds every package into OUT_DIR (one release build);
#   2. while online, the example suites' OTHER dependencies are fetched once into a cache
#      (pip download into a wheelhouse; npm into a throwaway npm cache), skipped when the cache
#      already has them;
#   3. with no Rust toolchain and no dbsandbox on PATH, and the registries unreachable
#      (pip --no-index, npm --offline, both behind a proxy at 127.0.0.1:9 that is not there), it installs
#      pytest-dbsandbox (which brings the dbsandbox wheel) into a fresh virtualenv, and
#      @dbsandbox/node (with the platform package) into a fresh node_modules, from OUT_DIR only:
#      that they install at all shows they fetch nothing at install time;
#   4. it runs examples/pytest-plugin (pytest -n 2, random order, then the control run without
#      resets that must fail) and examples/node-test (node --test, 4 files at once), in copies of
#      those folders, through the installed packages: the plugin finds the binary in the
#      virtualenv (which is not on PATH), the helper in @dbsandbox/<os>-<cpu>.
#
#   bash scripts/package-test.sh [OUT_DIR [package.sh options]]   # default: a temporary directory
#
# package.sh options, e.g. --binary linux-x64=/path/to/dbsandbox, package a binary built before
# instead of building one.
#
# Environment: DBSANDBOX_PACKAGE_CACHE (default ~/.cache/dbsandbox-package: build venv,
# wheelhouse, npm cache). The daemons it starts are stopped at the end.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
out="${1:-$work/packages}"
shift || true
cache="${DBSANDBOX_PACKAGE_CACHE:-$HOME/.cache/dbsandbox-package}"
wheelhouse="$cache/wheelhouse"
npm_cache="$cache/npm-cache"
failed=()

step() { printf '\n== %s\n' "$*"; }
die() { echo "package-test.sh: $*" >&2; exit 2; }

cleanup() {
  [[ -x "$work/venv/bin/dbsandbox" && -d "$work/pytest-plugin" ]] &&
    (cd "$work/pytest-plugin" && "$work/venv/bin/dbsandbox" stop >/dev/null 2>&1)
  [[ -x "$work/node-test/node_modules/.bin/dbsandbox" ]] &&
    (cd "$work/node-test" && node_modules/.bin/dbsandbox stop >/dev/null 2>&1)
  rm -rf "$work"
}
trap cleanup EXIT

step "bash scripts/package.sh $out"
bash "$root/scripts/package.sh" "$out" "$@" || die "package.sh failed"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
node_tgz="$(ls "$out"/dbsandbox-node-*.tgz)"
platform="$(node -p 'process.platform + "-" + process.arch')"
platform_tgz="$(ls "$out"/dbsandbox-"$platform"-*.tgz)" || die "package.sh made no npm package for $platform"

step "online, once: the examples' other dependencies into $cache"
requirements="$root/examples/pytest-plugin/requirements.txt"
mkdir -p "$wheelhouse"
if ! PIP_CONFIG_FILE=/dev/null python3 -m pip download -q --disable-pip-version-check --no-index \
      --find-links "$wheelhouse" -d "$wheelhouse" -r "$requirements" >/dev/null 2>&1; then
  PIP_CONFIG_FILE=/dev/null python3 -m pip download -q --disable-pip-version-check -d "$wheelhouse" \
    -r "$requirements" || die "pip download -r $requirements failed"
fi
prefill="$work/npm-prefill"
mkdir -p "$prefill"
node -e '
  const m = require(process.argv[1]); const d = { ...m.devDependencies }
  for (const k of Object.keys(d)) if (k.startsWith("@dbsandbox/")) delete d[k]
  require("node:fs").writeFileSync(process.argv[2], JSON.stringify({ name: "prefill", private: true, dependencies: d }))
' "$root/examples/node-test/package.json" "$prefill/package.json"
(cd "$prefill" && { npm install --offline --cache "$npm_cache" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 ||
  npm install --cache "$npm_cache" --no-audit --no-fund --loglevel=error; }) || die "filling the npm cache failed"

step "no Rust toolchain, no dbsandbox on PATH, registries unreachable"
clean_path=""
IFS=: read -ra path_dirs <<<"$PATH"
for dir in "${path_dirs[@]}"; do
  [[ -z "$dir" || "$dir" == "$HOME/.cargo/bin" || -x "$dir/cargo" || -x "$dir/rustc" || -x "$dir/dbsandbox" ]] && continue
  clean_path="${clean_path:+$clean_path:}$dir"
done
export PATH="$clean_path"
for tool in cargo rustc dbsandbox; do
  ! command -v "$tool" >/dev/null || die "$tool is still on PATH ($(command -v "$tool"))"
done
unset DBSANDBOX_BIN DBSANDBOX_URL DBSANDBOX_TOKEN DBSANDBOX_RUN DBSANDBOX_HOST DBSANDBOX_PORT DATABASE_URL PIP_FIND_LINKS
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# npm: cache only (the cache holds the drivers, never our packages); any request that still went
# out would meet a proxy that is not there. The same proxy for pip, beside --no-index.
export npm_config_offline=true npm_config_cache="$npm_cache"
export npm_config_proxy=http://127.0.0.1:9 npm_config_https_proxy=http://127.0.0.1:9
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
echo "PATH=$PATH"

step "pip install pytest-dbsandbox into a fresh virtualenv (--no-index: $out and the wheelhouse only)"
python3 -m venv "$work/venv" || die "python3 -m venv failed"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install -q --find-links "$out" --find-links "$wheelhouse" pytest-dbsandbox -r "$requirements" ||
  die "pip install pytest-dbsandbox from $out failed (it must need nothing but $out and the wheelhouse)"
"$venv_python" -m pip list 2>/dev/null | grep -iE '^(dbsandbox|pytest-dbsandbox) '
version_line="$("$work/venv/bin/dbsandbox" --version)" || failed+=("venv dbsandbox --version")
echo "$version_line"
[[ "$version_line" =~ ^dbsandbox\ [0-9.]+\ \(commit\ [0-9a-f]+,\ control\ API\ v[0-9]+\)$ ]] ||
  failed+=("dbsandbox --version names no commit and control API: '$version_line'")

step "examples/pytest-plugin through the installed plugin (the venv is not on PATH)"
cp -R "$root/examples/pytest-plugin" "$work/pytest-plugin"
cd "$work/pytest-plugin"
for seed in 1 2; do
  echo "-- seed $seed: python -m pytest -n 2 -p randomly --randomly-seed=$seed"
  "$venv_python" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed="$seed" ||
    failed+=("pytest-plugin seed $seed")
done
echo "-- control: the same with the reset switched off, expected to fail with unique violations"
control="$("$venv_python" -m pytest -n 2 -q -p no:cacheprovider -p randomly --randomly-seed=1 \
  -o dbsandbox_autoreset=false 2>&1)"
status=$?
echo "$control" | tail -n 2
[[ "$status" == 1 ]] && grep -q UniqueViolation <<<"$control" || failed+=("pytest-plugin control run (exit $status)")

step "npm install @dbsandbox/node into a fresh node_modules (--offline: cache only, the drivers)"
mkdir -p "$work/node-test"
cp -R "$root/examples/node-test/." "$work/node-test/"
cd "$work/node-test"
rm -rf node_modules package-lock.json
node -e '
  const fs = require("node:fs"); const m = JSON.parse(fs.readFileSync("package.json", "utf8"))
  delete m.devDependencies["@dbsandbox/node"]
  fs.writeFileSync("package.json", JSON.stringify(m, null, 2))
'
npm install --no-audit --no-fund --loglevel=error --save-dev "$node_tgz" "$platform_tgz" ||
  die "npm install of $node_tgz and $platform_tgz failed (it must need nothing but the tarballs and the cached drivers)"
for manifest in node_modules/@dbsandbox/*/package.json; do
  scripts="$(node -p "Object.keys(require('./$manifest').scripts || {}).filter((s) => /install|prepare/.test(s)).join(' ')")"
  [[ -z "$scripts" ]] || failed+=("$manifest has install-time scripts: $scripts")
  echo "$(node -p "const m = require('./$manifest'); m.name + '@' + m.version")"
done
node -e "const o = require('./node_modules/@dbsandbox/node/package.json').optionalDependencies || {}; if (!o['$(node -p "require('@dbsandbox/node').PLATFORM_PACKAGE")']) process.exit(1)" ||
  failed+=("@dbsandbox/node does not list this platform's package as an optional dependency")
npx --no-install dbsandbox --version || failed+=("npx dbsandbox --version")

step "examples/node-test through the installed helper (binary from the platform package)"
for round in 1 2; do
  echo "-- round $round: node --test --test-concurrency=4 test/*.test.mjs"
  node --test --test-concurrency=4 test/*.test.mjs || failed+=("node-test round $round")
done

if [[ ${#failed[@]} == 0 ]]; then
  echo "package test: OK (packages from $out installed offline without Rust; both example suites passed)"
  exit 0
fi
echo "package test: FAILED: ${failed[*]}" >&2
exit 1
