"""The mutation score per module, from mutmut's results in mutants/ and the equivalent mutants named in docs/testing.md.

Run by scripts/mutation after mutmut; prints one line per module and the total:
killed (a test failed, or the mutant hung until stopped), survived (every test
passed, or no test calls the mutated function), equivalent (listed in
docs/testing.md as changing nothing observable) and the score, killed over the
mutants that are not equivalent. ``--survivors`` prints the survivors' names;
``--pending`` prints only the names of the mutants a run has yet to kill.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "crypto": "apikeys.crypto.",
    "lifecycle": "apikeys.lifecycle.",
    "limits": "apikeys.limits.",
    "lookup": "apikeys.lookup.",
    "permissions": "apikeys.api.permissions.",
    "authentication": "apikeys.api.authentication.",
}
KILLED = {1, 3, 36, -24, 24, 152, 255, 37}  # a failing test, pytest's internal error, a timeout, a type check
SURVIVED = {0, 5, 33}  # every test passed, or no test calls the function


def results() -> dict[str, int | None]:
    """{mutant name: exit code} for every mutant mutmut has recorded (None: not run yet)."""
    found = {}
    for meta in sorted((ROOT / "mutants" / "apikeys").rglob("*.py.meta")):
        found.update(json.loads(meta.read_text())["exit_code_by_key"])
    return found


def equivalents() -> set[str]:
    """The mutant names docs/testing.md lists as equivalent (each on a line of its own, in backticks)."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split("### Equivalent mutants", 1)[-1] if "### Equivalent mutants" in text else ""
    return set(re.findall(r"`(apikeys\.[\w.ǁ]+__mutmut_\d+)`", section))


# lifecycle is a package: its files are shown one by one below its line, and may be run one by one.
LIFECYCLE_FILES = [
    "errors",
    "rules",
    "verification",
    "issuing",
    "changes",
    "importing",
    "accounts",
    "service_clients",
    "usage",
    "leaks",
]
PARTS = {f"lifecycle.{part}": f"apikeys.lifecycle.{part}." for part in LIFECYCLE_FILES}


def module_of(name: str) -> str | None:
    return next((module for module, prefix in MODULES.items() if name.startswith(prefix)), None)


def part_of(name: str) -> str | None:
    return next((part for part, prefix in PARTS.items() if name.startswith(prefix)), None)


def main(argv: list[str]) -> int:
    wanted = [arg for arg in argv if not arg.startswith("--")] or list(MODULES)
    codes, equivalent = results(), equivalents()
    if "--pending" in argv:
        # What a run still has to test: no result yet, or survived (the tests may be stronger now).
        for name, code in codes.items():
            if (module_of(name) in wanted or part_of(name) in wanted) and name not in equivalent and code not in KILLED:
                print(name)
        return 0
    rows = []
    for module in wanted:
        rows.append(module)
        if module == "lifecycle":
            rows += [f"  {part}" for part in PARTS]
    print(f"{'module':<24}{'mutants':>8}{'killed':>8}{'survived':>9}{'equivalent':>11}{'not run':>8}{'score':>8}")
    totals = [0, 0, 0, 0, 0]
    survivors = []
    for row in rows:
        module = row.strip()
        names = [name for name in codes if module_of(name) == module or part_of(name) == module]
        killed = sum(codes[n] in KILLED for n in names if n not in equivalent)
        same = sum(n in equivalent for n in names)
        not_run = sum(codes[n] is None for n in names if n not in equivalent)
        lived = [n for n in names if n not in equivalent and codes[n] is not None and codes[n] not in KILLED]
        counted = killed + len(lived)
        score = f"{100 * killed / counted:.1f}%" if counted else "-"
        print(f"{row:<24}{len(names):>8}{killed:>8}{len(lived):>9}{same:>11}{not_run:>8}{score:>8}")
        if row.startswith(" "):
            continue  # a file of lifecycle: counted in its line already
        survivors += lived
        for i, value in enumerate((len(names), killed, len(lived), same, not_run)):
            totals[i] += value
    counted = totals[1] + totals[2]
    score = f"{100 * totals[1] / counted:.1f}%" if counted else "-"
    print(f"{'all':<24}{totals[0]:>8}{totals[1]:>8}{totals[2]:>9}{totals[3]:>11}{totals[4]:>8}{score:>8}")
    stale = sorted(equivalent - set(codes))
    if stale and len(wanted) == len(MODULES):
        print(f"\nListed as equivalent in docs/testing.md but not a mutant of this code: {', '.join(stale)}")
    if "--survivors" in argv and survivors:
        print("\nSurvivors (mutmut show NAME shows the change):")
        for name in survivors:
            print(f"  {name}  ({'no test calls it' if codes[name] in (5, 33) else 'survived'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
