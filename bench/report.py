"""Helpers of bench/run: parse wrk's output, read workers' peak memory, print the tables.

Usage:

    report.py parse WRK_OUTPUT key=value...   one JSON line: the figures plus the labels given
    report.py memory MASTER_PID key=value...  one JSON line: VmHWM of each child of MASTER_PID
    report.py cputicks MASTER_PID [PG_PORT]   CPU time (user + system) of MASTER_PID's children, then of
                                              the PostgreSQL server on PG_PORT and its children, in ticks
    report.py table RESULTS.jsonl             the final tables (medians across rounds, ratios)
"""

import json
import os
import re
import statistics
import sys
from pathlib import Path

ENDPOINTS = {
    "a": "(a) GET /v1/dev/key, omikeys key",
    "b": "(b) no authentication (ceiling)",
    "c": "(c) drf-api-key HasAPIKey",
}
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"unreadable duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(text: str) -> dict:
    """Requests/s, p50, p99 (ms), request count and errors from ``wrk --latency`` output."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not (rps and p50 and p99 and total):
        raise ValueError("not the output of wrk --latency:\n" + text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "rps": float(rps.group(1)),
        "p50_ms": to_ms(p50.group(1)),
        "p99_ms": to_ms(p99.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups()), strict=True))
        if sockets
        else {},
    }


def labels(args: list[str]) -> dict:
    out = {}
    for arg in args:
        name, _, value = arg.partition("=")
        out[name] = int(value) if value.lstrip("-").isdigit() else value
    return out


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: split after it.
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def ticks_of(pid: int, reaped: bool = False) -> int:
    """utime + stime of ``pid`` (fields 14 and 15 of stat); with ``reaped``, plus the time
    of its children that have ended (cutime + cstime, fields 16 and 17)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11 : 15 if reaped else 13])


def cpu_ticks(master: int) -> int:
    """User plus system CPU time of the master's children (the workers), in clock ticks."""
    total = 0
    for pid in children(master):
        try:
            total += ticks_of(pid)
        except OSError:  # a process that has just ended
            pass
    return total


def postmaster(port: int) -> int | None:
    """The PostgreSQL server listening on ``port`` (its command line has ``-p PORT``)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"/postgres") and b"-p" in args:
            i = args.index(b"-p")
            if i + 1 < len(args) and args[i + 1] == str(port).encode():
                return int(cmdline.parent.name)
    return None


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    raise ValueError(f"no VmHWM for {pid}")


def memory(master: int) -> dict:
    workers = {pid: round(vm_hwm_mib(pid), 1) for pid in children(master)}
    return {
        "kind": "memory",
        "master_mib": round(vm_hwm_mib(master), 1),
        "workers_mib": list(workers.values()),
        "max_worker_mib": max(workers.values()) if workers else None,
    }


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt_int(n) -> str:
    return f"{int(n):,}"


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    runs = {}
    for row in rows:
        runs.setdefault((row["db"], row["size"]), []).append(row)
    out = []
    summary = {}
    for (db, size), items in runs.items():
        config = next((r for r in items if r.get("kind") == "config"), {})
        mem = next((r for r in items if r.get("kind") == "memory"), None)
        wrk = [r for r in items if r.get("kind") == "wrk"]
        title = f"{db}, {fmt_int(size)} keys"
        if config:
            title += (
                f"  (median of {config['rounds']} rounds; wrk -t{config['threads']} -c{config['connections']}"
                f" -d{config['duration']}; gunicorn {config['workers']} sync workers)"
            )
        out.append(title)
        has_db = any("db_cpu_us_per_request" in r for r in wrk)
        out.append(
            f"  {'endpoint':<36} {'req/s':>8} {'(min-max)':>15} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11}"
            + (f" {'+ PG CPU':>9}" if has_db else "")
        )
        medians = {}
        for ep, label in ENDPOINTS.items():
            mine = [r for r in wrk if r["endpoint"] == ep]
            if not mine:
                continue
            rps = [r["rps"] for r in mine]
            medians[ep] = {
                "rps": median(rps),
                "p50": median([r["p50_ms"] for r in mine]),
                "p99": median([r["p99_ms"] for r in mine]),
                "cpu": median([r["cpu_us_per_request"] for r in mine if "cpu_us_per_request" in r]),
                "db_cpu": median([r["db_cpu_us_per_request"] for r in mine if "db_cpu_us_per_request" in r]),
            }
            spread = f"({min(rps):,.0f}-{max(rps):,.0f})"
            out.append(
                f"  {label:<36} {medians[ep]['rps']:>8,.0f} {spread:>15} "
                f"{medians[ep]['p50']:>8.2f} {medians[ep]['p99']:>8.2f} {medians[ep]['cpu']:>11.0f}"
                + (f" {medians[ep]['db_cpu']:>9.0f}" if has_db else "")
            )
        ratios = []
        if "a" in medians and "b" in medians:
            ratios.append(f"(a)/(b) = {medians['a']['rps'] / medians['b']['rps']:.2f}")
        if "a" in medians and "c" in medians:
            ratios.append(f"(a)/(c) = {medians['a']['rps'] / medians['c']['rps']:.2f}")
        if ratios:
            out.append("  requests/s ratios: " + ", ".join(ratios))
        if "a" in medians and "b" in medians and "c" in medians:
            a, b, c = (medians[ep]["cpu"] for ep in "abc")
            if has_db:
                a, b, c = (medians[ep]["cpu"] + medians[ep]["db_cpu"] for ep in "abc")
            where = "gunicorn + PostgreSQL" if has_db else "gunicorn"
            out.append(f"  CPU per request ({where}) ratios: (b)/(a) = {b / a:.2f}, (c)/(a) = {c / a:.2f}")
        if mem:
            per = ", ".join(f"{m:.1f}" for m in mem["workers_mib"])
            out.append(f"  peak memory per worker (VmHWM): max {mem['max_worker_mib']:.1f} MiB (workers: {per} MiB)")
        bad = [r for r in wrk if r["non_2xx"]]
        if bad:
            out.append(f"  WARNING: {sum(r['non_2xx'] for r in bad)} non-2xx responses in {len(bad)} wrk runs")
        out.append("")
        summary[(db, size)] = medians

    # The team's targets, per database.
    out.append("Targets")
    for db in dict.fromkeys(db for db, _ in summary):
        sizes = sorted(size for d, size in summary if d == db)
        for size in sizes:
            m = summary[(db, size)]
            if "a" in m and "b" in m:
                r = m["a"]["rps"] / m["b"]["rps"]
                out.append(f"  {db} {fmt_int(size)}: (a) within 10% of (b): {verdict(r >= 0.9)} ({r:.2f})")
            if "a" in m and "c" in m:
                r = m["a"]["rps"] / m["c"]["rps"]
                out.append(f"  {db} {fmt_int(size)}: (a) ahead of (c): {verdict(r > 1.0)} ({r:.2f})")
        if len(sizes) > 1 and all("a" in summary[(db, s)] for s in sizes):
            small_all, large_all = summary[(db, sizes[0])], summary[(db, sizes[-1])]
            small, large = small_all["a"], large_all["a"]
            raw = large["rps"] / small["rps"]
            line = (
                f"  {db}: (a) no slower at {fmt_int(sizes[-1])} than at {fmt_int(sizes[0])} keys: "
                f"{large['rps']:,.0f} vs {small['rps']:,.0f} req/s ({raw:.2f})"
            )
            if "b" in small_all and "b" in large_all:
                # The two sizes ran minutes apart; other work on the machine changes the speed of
                # everything, the ceiling (b) included. (a) as a share of (b) measured alongside it
                # cancels that out. "No slower" allows 5% of noise.
                rel_small = small["rps"] / small_all["b"]["rps"]
                rel_large = large["rps"] / large_all["b"]["rps"]
                line += (
                    f"; as a share of (b) measured alongside: {rel_large:.2f} vs {rel_small:.2f}: "
                    f"{verdict(rel_large / rel_small >= 0.95)}"
                )
            else:
                line += f": {verdict(raw >= 0.95)}"
            out.append(line)
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    command, *args = sys.argv[1:] or ["help"]
    if command == "parse":
        d = {"kind": "wrk", **labels(args[1:]), **parse_wrk(Path(args[0]).read_text())}
        per_request = 1e6 / os.sysconf("SC_CLK_TCK") / max(d["requests"], 1)
        if "cpu_ticks" in d:  # the workers' CPU time during the run, per request served
            d["cpu_us_per_request"] = d["cpu_ticks"] * per_request
        if "db_ticks" in d:  # PostgreSQL's (every server process) likewise
            d["db_cpu_us_per_request"] = d["db_ticks"] * per_request
        print(json.dumps(d))
        problems = f"  NON-2xx: {d['non_2xx']}" if d["non_2xx"] else ""
        print(
            f"    round {d.get('round')} ({d.get('endpoint')}): {d['rps']:8,.0f} req/s"
            f"  p50 {d['p50_ms']:6.2f} ms  p99 {d['p99_ms']:6.2f} ms"
            f"  CPU {d.get('cpu_us_per_request', float('nan')):5.0f} us/request"
            + (f" + PostgreSQL {d['db_cpu_us_per_request']:4.0f}" if "db_cpu_us_per_request" in d else "")
            + problems,
            file=sys.stderr,
        )
    elif command == "cputicks":  # cputicks GUNICORN_MASTER [POSTGRES_PORT]: "workers postgres"
        db = postmaster(int(args[1])) if len(args) > 1 else None
        # Backends come and go (one per connection): count the ended ones through the postmaster.
        db_ticks = ticks_of(db, reaped=True) + cpu_ticks(db) if db else 0
        print(cpu_ticks(int(args[0])), db_ticks)
    elif command == "memory":
        print(json.dumps({**memory(int(args[0])), **labels(args[1:])}))
    elif command == "table":
        print(table(Path(args[0])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
