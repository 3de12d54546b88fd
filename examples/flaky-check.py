#!/usr/bin/env python3
"""Hand check of a planted flaky suite (examples/flaky-*), independent of `dbsandbox flaky`.

Runs the suite in chosen orders, each order in ONE `dbsandbox run --isolation database`
(a fresh clone, real commits, shared by every test of that order, as the hunter runs it), and
compares the failures with what the suite's expected.json predicts for that exact order:
a victim fails iff its polluter ran before it, a brittle test fails iff its state-setter did not,
the flaky test may do either, every other test passes; with FLAKY_PLANTED=0 nothing fails.

    python3 examples/flaky-check.py examples/flaky-pytest [--dbsandbox BIN] [--shuffles N]

Orders: declared, reversed, N seeded shuffles, each victim alone and after its polluter, the
brittle test alone and after its state-setter, the flaky test alone (12 runs: both outcomes
must show), then declared, reversed and shuffled with FLAKY_PLANTED=0. Pytest orders single
tests; Jest, node --test and cargo test order files (a file's tests run in the runner's own
order: declared for Jest and node, by name for libtest), so their shuffles shuffle files and
an order is run as one runner invocation per consecutive group of tests from one file.
Exit status 0 when every order behaved as predicted, 1 otherwise.
"""

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Runner:
    """How to find a suite's tests in declared order and run a group from one file."""

    file_granular = True

    def __init__(self, suite):
        self.suite = suite

    def tests(self):
        """[(file, name)] in declared order."""
        found = []
        for path in sorted(self.suite.glob(self.glob)):
            names = re.findall(self.pattern, path.read_text(), re.M)
            found += [(str(path.relative_to(self.suite)), name) for name in self.in_file_order(names)]
        return found

    def in_file_order(self, names):
        return names


class Pytest(Runner):
    pattern, file_granular = r"^def (test_\w+)\(", False

    @property
    def glob(self):
        return "tests/test_*.py" if (self.suite / "tests").is_dir() else "test_*.py"

    def command(self, file, names):
        ids = " ".join(shlex.quote(f"{item}") for item in names)
        return f"python3 -m pytest -q -p no:randomly -p no:cacheprovider -rf {ids}"

    failure = re.compile(r"^FAILED \S+::(\w+)", re.M)


def name_pattern(names):
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


class Jest(Runner):
    glob, pattern = "tests/*.test.js", r"^test\('([^']+)'"

    def command(self, file, names):
        return (f"npx jest --ci --runInBand --verbose -t {shlex.quote(name_pattern(names))}"
                f" -- {shlex.quote(re.escape(file) + '$')}")

    failure = re.compile(r"^\s*✕ (.+?)(?: \(\d+ ms\))?$", re.M)


class NodeTest(Runner):
    glob, pattern = "test/*.test.mjs", r"^test\('([^']+)'"

    def command(self, file, names):
        return (f"node --test --test-concurrency=1 --test-reporter=tap"
                f" --test-name-pattern={shlex.quote(name_pattern(names))} {shlex.quote(file)}")

    failure = re.compile(r"^\s*not ok \d+ - (.+?)$", re.M)


class Cargo(Runner):
    glob, pattern = "tests/*.rs", r"#\[tokio::test\]\s*\n\s*async fn (\w+)"

    def in_file_order(self, names):
        return sorted(names)  # libtest runs a binary's tests by name

    def command(self, file, names):
        return (f"cargo test -q --offline --test {Path(file).stem} -- --exact --test-threads=1 "
                + " ".join(names))

    failure = re.compile(r"^---- (\w+) stdout ----$", re.M)


def runner_for(suite):
    if (suite / "Cargo.toml").exists():
        return Cargo(suite)
    if (suite / "pytest.ini").exists():
        return Pytest(suite)
    if (suite / "jest.config.js").exists():
        return Jest(suite)
    return NodeTest(suite)


class Check:
    def __init__(self, suite, dbsandbox):
        self.suite, self.dbsandbox = suite, dbsandbox
        self.runner = runner_for(suite)
        self.tests = self.runner.tests()
        self.file_of = dict((name, file) for file, name in self.tests)
        expected = json.loads((suite / "expected.json").read_text())
        self.victims = {f["test"]: f["polluters"] for f in expected["findings"] if f["kind"] == "victim"}
        self.brittle = {f["test"]: f["state_setters"] for f in expected["findings"] if f["kind"] == "brittle"}
        self.flaky = {f["test"] for f in expected["findings"] if f["kind"] == "flaky"}
        self.stable_count = expected["stable_count"]
        self.problems = []

    def validate_expected(self):
        names = [name for _, name in self.tests]
        planted = set(self.victims) | set(self.brittle) | self.flaky
        mentioned = planted | {p for ps in self.victims.values() for p in ps} | {
            s for ss in self.brittle.values() for s in ss}
        for name in sorted(mentioned - set(names)):
            self.problems.append(f"expected.json names {name}, which is no test of the suite")
        for name in names:
            longer = [other for other in names if other != name and other.endswith(name)]
            if longer:
                self.problems.append(f"test name {name} is a suffix of {longer}")
        if len(names) - len(planted) != self.stable_count:
            self.problems.append(f"stable_count is {self.stable_count}, the suite has "
                                 f"{len(names)} tests of which {len(planted)} planted")
        print(f"{len(names)} tests in {len(set(self.file_of.values()))} files, "
              f"{self.stable_count} stable, planted: {sorted(planted)}")

    def executed(self, order):
        """The order the runner really runs `order` in, as (groups, sequence)."""
        groups = []
        for name in order:
            if groups and groups[-1][0] == self.file_of[name]:
                groups[-1][1].append(name)
            else:
                groups.append((self.file_of[name], [name]))
        if not self.runner.file_granular:  # one pytest invocation takes node ids in any order
            return [("", [f"{self.file_of[name]}::{name}" for name in order])], list(order)
        declared = [name for _, name in self.tests]
        groups = [(file, sorted(names, key=declared.index)) for file, names in groups]
        return groups, [name for _, names in groups for name in names]

    def predicted(self, sequence, planted):
        if not planted:
            return set()
        fails = set()
        for victim, polluters in self.victims.items():
            if victim in sequence and any(p in sequence[: sequence.index(victim)] for p in polluters):
                fails.add(victim)
        for brittle, setters in self.brittle.items():
            if brittle in sequence and not any(s in sequence[: sequence.index(brittle)] for s in setters):
                fails.add(brittle)
        return fails

    def run(self, label, order, planted=True):
        groups, sequence = self.executed(order)
        script = "; ".join(self.runner.command(file, names) for file, names in groups)
        env = dict(os.environ, FLAKY_PLANTED="1" if planted else "0")
        out = subprocess.run(
            [self.dbsandbox, "run", "-q", "--isolation", "database", "--", "bash", "-c", script],
            cwd=self.suite, env=env, capture_output=True, text=True)
        text = out.stdout + out.stderr
        failed = set(self.runner.failure.findall(text))
        unknown = failed - set(sequence)
        expect = self.predicted(sequence, planted)
        free = self.flaky if planted else set()
        wrong = (failed - free) ^ expect
        ran = bool(failed) or re.search(r"passed|^ok|✓", text, re.M) is not None
        verdict = "ok" if not wrong and not unknown and ran else "WRONG"
        print(f"  {verdict:5} {label}: {len(sequence)} tests, failed {sorted(failed) or '-'}")
        if verdict != "ok":
            self.problems.append(f"{label}: failed {sorted(failed)}, predicted {sorted(expect)} (+ {sorted(free)} free)")
            Path(f"/tmp/flaky-check-{self.suite.name}.log").write_text(text)
            print(f"        (output in /tmp/flaky-check-{self.suite.name}.log)")
        return failed

    def shuffled(self, seed):
        rng = random.Random(seed)
        if not self.runner.file_granular:
            names = [name for _, name in self.tests]
            rng.shuffle(names)
            return names
        files = sorted(set(self.file_of.values()))
        rng.shuffle(files)
        return [name for file in files for f, name in self.tests if f == file]

    def all(self, shuffles):
        self.validate_expected()
        declared = [name for _, name in self.tests]
        for planted in (True, False):
            print(f"FLAKY_PLANTED={'1' if planted else '0'}")
            self.run("declared order", declared, planted)
            self.run("reversed order", declared[::-1], planted)
            for seed in range(1, shuffles + 1):
                self.run(f"shuffle seed {seed}", self.shuffled(seed), planted)
            if not planted:
                break
            for victim, polluters in self.victims.items():
                self.run(f"{victim} alone", [victim])
                for polluter in polluters:
                    self.run(f"{polluter} then {victim}", [polluter, victim])
            for brittle, setters in self.brittle.items():
                self.run(f"{brittle} alone", [brittle])
                for setter in setters:
                    self.run(f"{setter} then {brittle}", [setter, brittle])
            for flaky in self.flaky:
                outcomes = [flaky in self.run(f"{flaky} alone #{i + 1}", [flaky]) for i in range(12)]
                if len(set(outcomes)) != 2:
                    self.problems.append(f"{flaky} alone: the same outcome 12 times")
        return self.problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--dbsandbox", default=os.environ.get("DBSANDBOX_BIN", str(REPO / "target/debug/dbsandbox")))
    parser.add_argument("--shuffles", type=int, default=3)
    args = parser.parse_args()
    problems = Check(args.suite.resolve(), args.dbsandbox).all(args.shuffles)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print("all orders behaved as predicted" if not problems else f"{len(problems)} problem(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
