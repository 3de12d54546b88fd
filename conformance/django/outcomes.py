"""Django's runner output (``runtests.py -v 2``) as a JUnit XML file, test by test.

    python outcomes.py LOG XML

Reads the verbose lines ``test_x (module.Class.test_x) ... ok`` (a docstring puts its first line
between the id and the ``...``; a subtest adds `` [params]``), then the summary's
``FAIL: …``/``ERROR: …`` headers, which win (a failing subtest or teardown makes the test fail
whatever its line said). A class-level error (``setUpClass (module.Class)``) is recorded as a
test of that name. The XML is what conformance/peers/compare.py reads.
"""

import re
import sys
import xml.etree.ElementTree as ET

# the id part: "test_x (module.Class.test_x)" (Python 3.11+) or "setUpClass (module.Class)"
DESCRIPTION = re.compile(r"^(?P<name>[A-Za-z_]\w*) \((?P<path>[\w.]+)\)(?: \[[^\n]*?\])?(?: \([^\n]*?\))?")
OUTCOME = re.compile(r" \.\.\. (?P<outcome>ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)\s*$")
HEADER = re.compile(r"^(?P<kind>FAIL|ERROR|UNEXPECTED SUCCESS): (?P<name>\w+) \((?P<path>[\w.]+)\)")
KIND = {"ok": "passed", "FAIL": "failed", "ERROR": "error", "expected failure": "passed",
        "unexpected success": "failed"}
RANK = {"passed": 0, "skipped": 0, "failed": 1, "error": 2}


def test_id(name: str, path: str):
    """(classname, name): path is module.Class.test_x, or module.Class for class fixtures."""
    if path.endswith("." + name):
        return path[: -len(name) - 1], name
    return path, name


def parse(text: str) -> dict:
    results: dict = {}
    lines = text.splitlines()
    pending = None  # an id whose "... outcome" may come on a following line (a docstring)
    for line in lines:
        described = DESCRIPTION.match(line)
        if described:
            pending = test_id(described["name"], described["path"])
        ended = OUTCOME.search(line)
        if ended and pending:
            word = ended["outcome"]
            outcome = "skipped" if word.startswith("skipped") else KIND[word]
            if RANK[outcome] >= RANK.get(results.get(pending, "passed"), 0):
                results[pending] = outcome
            pending = None
    for line in lines:
        header = HEADER.match(line)
        if header:
            key = test_id(header["name"], header["path"])
            outcome = "error" if header["kind"] == "ERROR" else "failed"
            if RANK[outcome] > RANK.get(results.get(key, "passed"), 0):
                results[key] = outcome
    return results


def write_junit(results: dict, path: str) -> None:
    suite = ET.Element("testsuite", name="django")
    for (classname, name), outcome in sorted(results.items()):
        case = ET.SubElement(suite, "testcase", classname=classname, name=name)
        if outcome != "passed":
            ET.SubElement(case, {"failed": "failure"}.get(outcome, outcome))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: outcomes.py LOG XML", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8", errors="replace") as log:
        results = parse(log.read())
    write_junit(results, sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
