"""Compare Django's suite through dbsandbox with Django's own runner, test by test.

Reads the JUnit files conformance/django/run.sh wrote (direct.xml, dbsandbox.xml and, when made,
the reruns of the differing tests), prints each mode's counts per module and every differing
test, and checks the rule of issue 10: dbsandbox may differ from direct only in tests listed in
django.differences (``ID<TAB>REASON`` lines, ID as ``module.Class::test_x``). A difference counts
only when the rerun shows it again. Exit 0 when the rule holds, 1 otherwise.

    python3 compare.py OUT_DIR DIFFERENCES_FILE              # the verdict
    python3 compare.py OUT_DIR DIFFERENCES_FILE --suspects   # Django labels of the differing tests
"""

import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "peers"))
from compare import counts, differing, outcomes  # noqa: E402  (conformance/peers/compare.py)

CLASS_FIXTURES = ("setUpClass", "tearDownClass", "setUpModule", "tearDownModule")


def listed_differences(path: Path) -> dict[str, str]:
    listed = {}
    if path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split("\t")]
            if len(fields) != 2:
                raise SystemExit(f"{path}:{number}: expected TEST ID<TAB>REASON")
            listed[fields[0]] = fields[1]
    return listed


def label(test_id: str) -> str:
    """module.Class::test_x -> module.Class.test_x, what runtests.py takes (a class for fixtures)."""
    classname, _, name = test_id.partition("::")
    return classname if name in CLASS_FIXTURES else f"{classname}.{name}"


def per_module(results: dict[str, str]) -> dict[str, dict[str, str]]:
    modules: dict[str, dict[str, str]] = defaultdict(dict)
    for test_id, outcome in results.items():
        modules[test_id.split(".", 1)[0]][test_id] = outcome
    return modules


def main() -> int:
    out_dir, listed_path = Path(sys.argv[1]), Path(sys.argv[2])
    direct, sandboxed = (outcomes(out_dir / f"{m}.xml") for m in ("direct", "dbsandbox"))
    first_pass = differing(direct, sandboxed)
    if sys.argv[3:4] == ["--suspects"]:
        print("\n".join(sorted({label(t) for t in first_pass})))
        return 0
    real = first_pass
    rerun, rerun_direct = out_dir / "dbsandbox-rerun.xml", out_dir / "direct-rerun.xml"
    if rerun.exists() and rerun_direct.exists():
        again_direct, again_sandboxed = outcomes(rerun_direct), outcomes(rerun)
        real = [t for t in first_pass if again_direct.get(t, direct.get(t)) != again_sandboxed.get(t, sandboxed.get(t))]
    listed = listed_differences(listed_path)
    by_module = (per_module(direct), per_module(sandboxed))
    print(f"{'module':20} {'direct':48} dbsandbox")
    for module in sorted(by_module[0].keys() | by_module[1].keys()):
        print(f"{module:20} {counts(by_module[0].get(module, {})):48} {counts(by_module[1].get(module, {}))}")
    print(f"{'all':20} {counts(direct):48} {counts(sandboxed)}")
    unexplained = [t for t in real if t not in listed]
    print(f"\ndbsandbox: {len(real)} differ from direct ({len(first_pass) - len(real)} more only in the"
          f" first pass, not in the rerun), {len(unexplained)} not listed")
    for t in first_pass:
        if t not in real:
            mark, reason = "~ ", "  (not again in the rerun)"
        elif t in listed:
            mark, reason = "  ", f"  ({listed[t]})"
        else:
            mark, reason = "! ", ""
        print(f"{mark}{t}: direct {direct.get(t, 'absent')}, dbsandbox {sandboxed.get(t, 'absent')}{reason}")
    stale = sorted(t for t in listed if t in direct and t in sandboxed and t not in real)
    if stale:
        print(f"listed but no longer different ({len(stale)}): remove from {listed_path.name}")
        for t in stale:
            print(f"  {t}")
    return 0 if not unexplained else 1


if __name__ == "__main__":
    sys.exit(main())
