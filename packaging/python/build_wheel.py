#!/usr/bin/env python3
"""Builds the ``dbsandbox`` wheel around an already built binary (standard library only).

    python3 packaging/python/build_wheel.py --binary target/release/dbsandbox \
        --platform linux-x64 --version 0.1.0 --out OUT_DIR

The wheel is what maturin's ``bindings = "bin"`` makes: the binary in ``<name>.data/scripts``
(pip installs it into the environment's ``bin``), plus the small ``dbsandbox`` module beside this
script. Building it here rather than with maturin lets scripts/package.sh compile the binary
once for the wheel and the npm platform package alike. The platform tag is read from the binary:
for Linux, the newest glibc symbol version it needs (``manylinux_2_<minor>``), after checking
that it links only libraries every manylinux system has.
"""

import argparse
import base64
import hashlib
import os
import re
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
#: Libraries the manylinux policies allow a wheel to link against (PEP 600 / auditwheel).
MANYLINUX_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0", "libgcc_s.so.1",
    "libutil.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}
ARCHITECTURES = {"x64": "x86_64", "arm64": "aarch64"}
MACOS_TAGS = {"darwin-x64": "macosx_10_12_x86_64", "darwin-arm64": "macosx_11_0_arm64"}
SUMMARY = "The dbsandbox command: isolated PostgreSQL sandboxes for test suites (the binary, for pip)"
# Fixed timestamps make the wheel reproducible from the same binary.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def fail(message):
    print(f"build_wheel.py: {message}", file=sys.stderr)
    sys.exit(2)


def linux_tag(binary, arch):
    """``manylinux_2_<minor>_<arch>`` from the binary's glibc symbol versions and libraries."""
    dynamic = subprocess.run(["readelf", "-d", "-W", binary], capture_output=True, text=True)
    if dynamic.returncode != 0:
        fail(f"readelf -d {binary} failed: {dynamic.stderr.strip()}")
    needed = set(re.findall(r"\(NEEDED\).*\[(.+?)\]", dynamic.stdout))
    foreign = sorted(needed - MANYLINUX_LIBRARIES)
    if foreign:
        fail(f"{binary} links {', '.join(foreign)}, which manylinux wheels may not rely on")
    with open(binary, "rb") as f:
        versions = {int(m) for m in re.findall(rb"GLIBC_2\.([0-9]+)", f.read())}
    minor = max(versions, default=17)
    return f"manylinux_2_{max(minor, 17)}_{ARCHITECTURES[arch]}"


def platform_tag(binary, platform):
    if platform in MACOS_TAGS:
        return MACOS_TAGS[platform]
    system, _, arch = platform.partition("-")
    if system != "linux" or arch not in ARCHITECTURES:
        fail(f"unknown platform {platform!r} (linux-x64, linux-arm64, darwin-x64, darwin-arm64)")
    return linux_tag(binary, arch)


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def metadata(version, license_expression, repository):
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return (
        "Metadata-Version: 2.1\n"
        "Name: dbsandbox\n"
        f"Version: {version}\n"
        f"Summary: {SUMMARY}\n"
        f"License: {license_expression}\n"
        f"Project-URL: Source, {repository}\n"
        "Requires-Python: >=3.8\n"
        "Classifier: Topic :: Database\n"
        "Classifier: Topic :: Software Development :: Testing\n"
        "Classifier: Programming Language :: Rust\n"
        "Description-Content-Type: text/markdown\n"
        "\n" + readme
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--platform", required=True, help="linux-x64, linux-arm64, darwin-x64, darwin-arm64")
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--license", default="MIT OR Apache-2.0")
    parser.add_argument("--repository", default="https://github.com/dbsandbox/dbsandbox")
    args = parser.parse_args()
    if not (os.path.isfile(args.binary) and os.access(args.binary, os.X_OK)):
        fail(f"{args.binary} is not an executable file")

    tag = f"py3-none-{platform_tag(args.binary, args.platform)}"
    dist_info = f"dbsandbox-{args.version}.dist-info"
    with open(args.binary, "rb") as f:
        binary = f.read()
    files = []  # (name, bytes, executable)
    for module in ("__init__.py", "__main__.py"):
        with open(os.path.join(HERE, "dbsandbox", module), "rb") as f:
            files.append((f"dbsandbox/{module}", f.read(), False))
    files.append((f"dbsandbox-{args.version}.data/scripts/dbsandbox", binary, True))
    files.append((f"{dist_info}/METADATA", metadata(args.version, args.license, args.repository).encode(), False))
    wheel = f"Wheel-Version: 1.0\nGenerator: dbsandbox build_wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    files.append((f"{dist_info}/WHEEL", wheel.encode(), False))
    record = "\n".join(record_line(name, data) for name, data, _ in files) + f"\n{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), False))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"dbsandbox-{args.version}-{tag}.whl")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, executable in files:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    print(path)


if __name__ == "__main__":
    main()
