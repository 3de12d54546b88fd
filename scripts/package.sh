#!/usr/bin/env bash
# Builds every package dbsandbox ships into OUT_DIR, from ONE release build of the binary:
#
#   dbsandbox-V-py3-none-<platform>.whl     the binary for pip (pip puts it in the env's bin/)
#   pytest_dbsandbox-W-py3-none-any.whl     the pytest plugin, and its sdist (.tar.gz); it
#                                           depends on the dbsandbox wheel
#   dbsandbox-<os>-<cpu>-V.tgz              npm platform package @dbsandbox/<os>-<cpu> (os/cpu/
#                                           libc fields, bin/dbsandbox, no install scripts)
#   dbsandbox-node-X.tgz                    @dbsandbox/node, with every platform package as an
#                                           optionalDependency (esbuild's pattern)
#
#   bash scripts/package.sh OUT_DIR                                   # builds for this machine
#   bash scripts/package.sh OUT_DIR --binary linux-arm64=/path/to/dbsandbox [--binary ...]
#
# Without --binary it runs `cargo build --release --locked -p dbsandbox-cli` (a few minutes from
# scratch) and packages target/release/dbsandbox for this machine's platform. With --binary it
# packages the given binaries (built elsewhere, e.g. on an aarch64 host or with cross) and builds
# nothing: platforms are linux-x64, linux-arm64, darwin-x64, darwin-arm64. The binaries are copied
# without debug info (strip --strip-debug). Needs python3 (with venv), npm, readelf; the Python
# build backend (`build`, setuptools) is installed once into a virtualenv under
# $DBSANDBOX_PACKAGE_CACHE (default ~/.cache/dbsandbox-package), from PyPI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { echo "usage: bash scripts/package.sh OUT_DIR [--binary PLATFORM=PATH]..." >&2; exit 2; }
[[ $# -ge 1 && "$1" != -* ]] || usage
mkdir -p "$1"
out="$(cd "$1" && pwd)"
shift
declare -A binaries=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary)
      [[ $# -ge 2 && "$2" == *=* ]] || usage
      binaries["${2%%=*}"]="${2#*=}"
      shift 2
      ;;
    *) usage ;;
  esac
done
for platform in "${!binaries[@]}"; do
  case "$platform" in
    linux-x64 | linux-arm64 | darwin-x64 | darwin-arm64) ;;
    *) echo "package.sh: unknown platform '$platform' (linux-x64, linux-arm64, darwin-x64, darwin-arm64)" >&2; exit 2 ;;
  esac
  [[ -x "${binaries[$platform]}" ]] || { echo "package.sh: ${binaries[$platform]} is not an executable" >&2; exit 2; }
done

host_platform() {
  local os cpu
  case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os="$(uname -s)" ;; esac
  case "$(uname -m)" in x86_64 | amd64) cpu=x64 ;; aarch64 | arm64) cpu=arm64 ;; *) cpu="$(uname -m)" ;; esac
  echo "$os-$cpu"
}

step() { printf '== %s\n' "$*"; }
version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")"
[[ -n "$version" ]] || { echo "package.sh: no version in Cargo.toml's [workspace.package]" >&2; exit 2; }
license="MIT OR Apache-2.0"
repository="https://github.com/dbsandbox/dbsandbox"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

if [[ ${#binaries[@]} == 0 ]]; then
  step "cargo build --release --locked -p dbsandbox-cli"
  (cd "$root" && cargo build --release --locked -p dbsandbox-cli)
  binaries["$(host_platform)"]="$root/target/release/dbsandbox"
fi

for platform in "${!binaries[@]}"; do
  os="${platform%-*}"
  cpu="${platform#*-}"
  bin="$stage/bin/$platform/dbsandbox"
  mkdir -p "$(dirname "$bin")"
  # The release profile keeps line tables (debug = 1) for backtraces in development; packages
  # ship without them (a quarter of the size). A foreign binary strip cannot read is kept as is.
  strip --strip-debug -o "$bin" "${binaries[$platform]}" 2>/dev/null || cp "${binaries[$platform]}" "$bin"
  chmod 755 "$bin"

  step "dbsandbox wheel for $platform"
  python3 "$root/packaging/python/build_wheel.py" --binary "$bin" --platform "$platform" \
    --version "$version" --out "$out" --license "$license" --repository "$repository"

  step "npm platform package @dbsandbox/$platform"
  dir="$stage/npm/$platform"
  mkdir -p "$dir/bin"
  cp "$bin" "$dir/bin/dbsandbox"
  cp "$root/packaging/npm/README.md" "$dir/README.md"
  libc=""
  [[ "$os" == linux ]] && libc=', "libc": ["glibc"]'
  cat >"$dir/package.json" <<JSON
{
  "name": "@dbsandbox/$platform",
  "version": "$version",
  "description": "The dbsandbox binary for $platform; installed by @dbsandbox/node as an optional dependency",
  "license": "($license)",
  "repository": { "type": "git", "url": "git+$repository.git" },
  "os": ["$os"],
  "cpu": ["$cpu"]$libc,
  "bin": { "dbsandbox": "bin/dbsandbox" },
  "files": ["bin", "README.md"],
  "preferUnplugged": true
}
JSON
  (cd "$dir" && npm pack --silent --pack-destination "$out" >/dev/null)
done

step "@dbsandbox/node (optionalDependencies: every platform package at $version)"
node_dir="$stage/npm/node"
mkdir -p "$node_dir"
cp -R "$root/integrations/node/src" "$root/integrations/node/README.md" "$root/integrations/node/package.json" "$node_dir/"
# The platform packages are added here, not in the source package.json: in the repository the
# helper runs against the binary built there (DBSANDBOX_BIN), and npm ci there must not look for
# packages that are not published yet.
VERSION="$version" REPOSITORY="$repository" node -e '
  const fs = require("node:fs")
  const file = process.argv[1]
  const manifest = JSON.parse(fs.readFileSync(file, "utf8"))
  manifest.optionalDependencies = Object.fromEntries(
    ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"].map((p) => [`@dbsandbox/${p}`, process.env.VERSION]))
  manifest.repository = { type: "git", url: `git+${process.env.REPOSITORY}.git`, directory: "integrations/node" }
  delete manifest.devDependencies
  delete manifest.scripts
  fs.writeFileSync(file, JSON.stringify(manifest, null, 2) + "\n")
' "$node_dir/package.json"
(cd "$node_dir" && npm pack --silent --pack-destination "$out" >/dev/null)

step "pytest-dbsandbox wheel and sdist"
cache="${DBSANDBOX_PACKAGE_CACHE:-$HOME/.cache/dbsandbox-package}"
build_venv="$cache/build-venv"
if ! "$build_venv/bin/python" -c "import build, setuptools, wheel" 2>/dev/null; then
  rm -rf "$build_venv"
  python3 -m venv "$build_venv"
  "$build_venv/bin/python" -m pip install -q --disable-pip-version-check build "setuptools>=61" wheel
fi
# A copy: building in the source tree would leave build/ and *.egg-info behind.
cp -R "$root/integrations/python" "$stage/python"
rm -rf "$stage/python/tests"
"$build_venv/bin/python" -m build --no-isolation --sdist --wheel --outdir "$out" "$stage/python" >"$stage/build.log" 2>&1 ||
  { cat "$stage/build.log" >&2; echo "package.sh: building pytest-dbsandbox failed" >&2; exit 1; }

step "packages in $out"
ls -l "$out"
