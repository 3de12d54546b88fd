#!/usr/bin/env python3
"""Checks a `dbsandbox flaky --format json` hunt against a planted suite's expected.json.

    flaky-assert.py EXPECTED.json HUNT.json      # exactly the planted findings, nothing else
    flaky-assert.py --clean HUNT.json            # no finding at all

expected.json: {"findings": [{"kind", "test", "polluters"?, "state_setters"?}], "stable_count"?}
where test names are suffixes of the runner's full ids. Exit 0 when the hunt matches, 1 with
the differences otherwise."""

import json
import sys


def ends(full, suffix):
    return full == suffix or full.endswith(suffix) and not full[-len(suffix) - 1].isalnum()


def describe(finding):
    culprits = finding.get("polluters") or finding.get("state_setters") or []
    return f"{finding['kind']} {finding['test']}" + (f" <- {', '.join(culprits)}" if culprits else "")


def main(argv):
    if len(argv) == 3 and argv[1] == "--clean":
        hunt = json.load(open(argv[2]))
        if hunt["findings"]:
            print("expected no finding on the clean suite, got:")
            for f in hunt["findings"]:
                print("  " + describe(f))
            return 1
        print(f"clean: no finding in {len(hunt['tests'])} tests, {hunt['budget']['runs_used']} runs")
        return 0
    if len(argv) != 3:
        print(__doc__)
        return 2
    expected = json.load(open(argv[1]))
    hunt = json.load(open(argv[2]))
    assert hunt["schema"] == "dbsandbox.flaky/v1", hunt["schema"]
    problems = []
    unmatched = list(hunt["findings"])
    for want in expected["findings"]:
        match = None
        for got in unmatched:
            if got["kind"] != want["kind"] or not ends(got["test"], want["test"]):
                continue
            for field in ("polluters", "state_setters"):
                want_culprits = want.get(field, [])
                got_culprits = got.get(field, [])
                if len(want_culprits) != len(got_culprits) or not all(
                    any(ends(g, w) for g in got_culprits) for w in want_culprits
                ):
                    break
            else:
                match = got
                break
        if match is None:
            problems.append(f"missing: {want['kind']} {want['test']} "
                            f"{want.get('polluters') or want.get('state_setters') or ''}")
        else:
            unmatched.remove(match)
            if match["kind"] in ("victim", "brittle") and not match["reproduce"]:
                problems.append(f"no reproduction command for {match['test']}")
    for extra in unmatched:
        problems.append("unexpected: " + describe(extra))
    if "stable_count" in expected:
        stable = sum(1 for t in hunt["tests"] if t["verdict"] == "stable")
        if stable != expected["stable_count"]:
            problems.append(f"stable tests: {stable}, expected {expected['stable_count']}")
    if problems:
        print("the hunt does not match " + argv[1] + ":")
        for p in problems:
            print("  " + p)
        print("findings were:")
        for f in hunt["findings"]:
            print("  " + describe(f) + ("\n    " + f["explanation"] if f.get("explanation") else ""))
        return 1
    budget = hunt["budget"]
    print(f"{argv[1]}: {len(hunt['findings'])} findings as planted, "
          f"{budget['runs_used']} runs ({budget['detection_runs']} detection), {budget['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
