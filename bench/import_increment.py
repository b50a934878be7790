"""Import an export into copies of a database that already holds keys, and compare checkouts.

Where ``bench/import_run`` times a whole import into an empty database, this times the
part that grows with the database: a further export (say 100,000 documents) imported into a
copy of a SQLite file that already holds a million keys (``bench/import_run --keep-database``
writes one). Each round copies the file, runs ``manage.py importomikeys EXPORT --no-firebase
--json`` from one checkout, and reads from ``/proc`` the CPU time of the importing process
and of its reading process separately, and the importer's peak RSS (``VmHWM``). With two
``--tree`` options the checkouts take turns, round after round, and the medians are compared
(second against first), so both meet the same load on a shared machine.

    bench/import_increment.py --base /tmp/million.sqlite3 --export /tmp/more.ndjson.gz
    bench/import_increment.py --base B --export E --tree /path/to/old --tree . --rounds 3

Write an export with ``bench/omi_export.py --documents 100000 --seed 2 --out E --samples S``
(another seed than the base's, so every document is new). Linux only (``/proc``).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a live process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def one_round(tree: Path, base: Path, export: Path, work: Path) -> dict:
    """Import ``export`` with ``tree``'s code into a fresh copy of ``base``; the figures of that run."""
    database = work / "import.sqlite3"
    for leftover in work.glob("import.sqlite3*"):
        leftover.unlink()
    shutil.copyfile(base, database)
    env = dict(
        os.environ,
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="omikeys_project.settings",
        DJANGO_DEBUG="false",
        DJANGO_ENV_FILE="",
        DJANGO_LOG_LEVEL="WARNING",
        FIREBASE_PROJECT_ID="demo-bench",
        NO_GCE_CHECK="true",
        DJANGO_SECRET_KEY=os.urandom(32).hex(),
    )
    env.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
    python = tree / ".venv" / "bin" / "python"
    command = [str(python), "manage.py", "importomikeys", str(export), "--no-firebase", "--json"]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    importer, reader, rss = (0.0, 0.0), (0.0, 0.0), 0.0
    while process.poll() is None:
        importer = cpu_seconds(process.pid) or importer
        rss = max(rss, peak_rss_mb(process.pid) or 0.0)
        for child in children(process.pid):
            reader = cpu_seconds(child) or reader
        time.sleep(0.2)
    wall = time.monotonic() - started
    if process.returncode not in (0, 1):
        sys.exit(f"importomikeys failed in {tree} (exit status {process.returncode})")
    return {
        "wall": wall,
        "importer": sum(importer),
        "importer_system": importer[1],
        "reader": sum(reader),
        "rss": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="a SQLite database file holding keys already")
    parser.add_argument("--export", type=Path, required=True, help="the export to import into each copy")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout with .venv (default: this one)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in (args.tree or [ROOT])]
    for path in (args.base, args.export, *trees):
        if not path.exists():
            parser.error(f"{path} does not exist")
    results = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="omikeys-import-increment-", dir=args.base.parent) as work:
        for number in range(1, args.rounds + 1):
            for tree in trees:
                figures = one_round(tree, args.base, args.export, Path(work))
                results[tree].append(figures)
                print(
                    f"round {number} {tree}: wall {figures['wall']:.1f} s, importer CPU {figures['importer']:.1f} s "
                    f"(system {figures['importer_system']:.1f}), reader CPU {figures['reader']:.1f} s, "
                    f"peak RSS {figures['rss']:.0f} MB",
                    flush=True,
                )
    print(f"\nmedians of {args.rounds} rounds; load average now {os.getloadavg()[0]:.1f}")
    print(f"{'checkout':<40} {'wall s':>8} {'importer CPU s':>15} {'reader CPU s':>13} {'peak RSS MB':>12}")
    medians = {}
    for tree, rounds in results.items():
        medians[tree] = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        m = medians[tree]
        print(f"{str(tree):<40} {m['wall']:>8.1f} {m['importer']:>15.1f} {m['reader']:>13.1f} {m['rss']:>12.0f}")
    if len(trees) == 2:
        first, second = (medians[tree] for tree in trees)
        print(
            f"second/first: wall {second['wall'] / first['wall']:.2f}, "
            f"importer CPU {second['importer'] / first['importer']:.2f}"
        )


if __name__ == "__main__":
    main()
