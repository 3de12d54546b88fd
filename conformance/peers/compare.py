"""Compare a peer suite's outcomes test by test across the modes conformance/peers/run.sh ran.

Reads one JUnit XML per mode (direct, database, rollback), prints the counts of each mode and every
test whose outcome differs from the direct run, and checks the rule of issue 10: a `database` key
must give exactly the direct outcomes, a rollback key may differ only in tests listed (by id, with
the reason) in the suite's differences file. The one exception for a `database` key is by design
and listed the same way: any database name is a key, so a test that expects `dbname=nosuchdb` to
fail sees it connect. Exit 0 when the rule holds, 1 otherwise.

    python3 compare.py OUT_DIR DIFFERENCES_FILE               # the verdict
    python3 compare.py OUT_DIR DIFFERENCES_FILE --suspects MODE  # differing ids, one per line

A difference counts only when it shows again in a rerun of just the differing tests, direct and
through the key (`MODE-rerun.xml`, `direct-rerun-MODE.xml`, written by run.sh): on a loaded machine
a timing test (psycopg's notify timeouts, say) can fail in either run alone.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MODES = ("direct", "database", "rollback")


def outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed | failed | error | skipped, from a pytest JUnit XML file."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                break
        # a test reported twice (a failing teardown after a passing call) keeps the worse outcome
        if result.get(test_id) in ("failed", "error"):
            continue
        result[test_id] = outcome
    return result


def expected_differences(path: Path) -> dict[str, dict[str, str]]:
    """Mode -> test id -> reason, from `MODE<TAB>ID<TAB>REASON` lines, MODE one of database,
    rollback or both (# comments and blank lines skipped)."""
    listed: dict[str, dict[str, str]] = {"database": {}, "rollback": {}}
    if path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) != 3 or fields[0] not in ("database", "rollback", "both"):
                raise SystemExit(f"{path}:{number}: expected MODE<TAB>TEST ID<TAB>REASON")
            mode, test_id, reason = fields
            for m in ("database", "rollback") if mode == "both" else (mode,):
                listed[m][test_id] = reason
    return listed


def counts(results: dict[str, str]) -> str:
    tally = {k: 0 for k in ("passed", "failed", "error", "skipped")}
    for outcome in results.values():
        tally[outcome] += 1
    return ", ".join(f"{n} {k}" for k, n in tally.items())


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(t for t in a.keys() | b.keys() if a.get(t) != b.get(t))


def confirmed(out_dir: Path, mode: str, candidates: list[str]) -> list[str]:
    """The candidates that differ again in the rerun, when run.sh made one."""
    rerun, rerun_direct = out_dir / f"{mode}-rerun.xml", out_dir / f"direct-rerun-{mode}.xml"
    if not (rerun.exists() and rerun_direct.exists()):
        return candidates
    again = set(differing(outcomes(rerun_direct), outcomes(rerun)))
    return [t for t in candidates if t in again]


def main() -> int:
    out_dir, listed_path = Path(sys.argv[1]), Path(sys.argv[2])
    results = {m: outcomes(out_dir / f"{m}.xml") for m in MODES if (out_dir / f"{m}.xml").exists()}
    if sys.argv[3:4] == ["--suspects"]:
        mode = sys.argv[4]
        if "direct" in results and mode in results:
            print("\n".join(differing(results["direct"], results[mode])))
        return 0
    if "direct" not in results:
        print("peers: no direct run to compare with", file=sys.stderr)
        return 2
    listed = expected_differences(listed_path)
    direct = results["direct"]
    ok = True
    for mode, result in results.items():
        print(f"{mode:9} {counts(result)}")
    for mode in ("database", "rollback"):
        if mode not in results:
            continue
        first_pass = differing(direct, results[mode])
        real = confirmed(out_dir, mode, first_pass)
        unexplained = [t for t in real if t not in listed[mode]]
        print(f"\n{mode}: {len(real)} differ from direct ({len(first_pass) - len(real)} more only"
              f" in the first pass, not in the rerun), {len(unexplained)} not listed")
        for t in first_pass:
            if t not in real:
                mark, reason = "~ ", "  (not again in the rerun)"
            elif t in listed[mode]:
                mark, reason = "  ", f"  ({listed[mode][t]})"
            else:
                mark, reason = "! ", ""
            print(f"{mark}{t}: direct {direct.get(t, 'absent')}, {mode} {results[mode].get(t, 'absent')}{reason}")
        ok = ok and not unexplained
        stale = sorted(t for t in listed[mode]
                       if t in direct and t in results[mode] and t not in real)
        if stale:
            print(f"listed for {mode} but no longer different ({len(stale)}): remove from {listed_path.name}")
            for t in stale:
                print(f"  {t}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
