"""Run node-postgres's integration test files one by one and write their outcomes as JUnit XML.

node-postgres's own runner is a file per process (`node FILE`, exit status 0 on success; the
connection comes from the PG* variables). Each file is one test case here, with a time bound,
so conformance/peers/compare.py can diff the modes file by file.

    python3 node_files.py SRC_DIR OUT.xml [ONLY]   # ONLY: a file of test ids to run, one a line
"""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

TIMEOUT_S = 120


def main() -> int:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    pg = src / "packages" / "pg"
    files = sorted(p.relative_to(pg) for p in (pg / "test" / "integration").rglob("*-tests.js"))
    if len(sys.argv) > 3:
        wanted = {line.partition("::")[2] for line in Path(sys.argv[3]).read_text().splitlines()}
        files = [f for f in files if str(f) in wanted]
    suite = ET.Element("testsuite", name="node-postgres")
    failed = 0
    for rel in files:
        case = ET.SubElement(suite, "testcase", classname="node-postgres", name=str(rel))
        try:
            done = subprocess.run(["node", str(rel)], cwd=pg, capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
            status, text = done.returncode, (done.stdout + done.stderr)[-4000:]
        except subprocess.TimeoutExpired as e:
            status = "timeout"
            text = f"timed out after {TIMEOUT_S}s\n" + ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")[-4000:]
        if status != 0:
            failed += 1
            ET.SubElement(case, "failure", message=f"exit {status}").text = text
    ET.ElementTree(suite).write(out, encoding="unicode")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
