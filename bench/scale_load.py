"""Scale benchmark (issue 14): SQLite + in-memory against PostgreSQL + Redis, one and two processes.

One command runs every target of the issue in one run, each scenario with its direct baseline (the
same requests read straight from the fake upstream, "the server's own time") just before it. The
machinery is bench/stream_load.py's (`run_scenario`: a fresh upstream, database, daphne per
scenario; see its docstring for what is measured and how); this script picks the scenarios, the
stacks and the targets:

  a  200 replies x 200 chunks at 50/s, one process      sqlite+memory, then postgres+redis
  c  200 replies x 1 chunk, one process                 both stacks: CPU per send = CPU / 200
  d  1000 replies x 100 chunks at 20/s, one process     postgres+redis (and sqlite+memory unless
                                                        --no-sqlite-1000); one more person (the
                                                        1,001st socket) sends 1 s after the burst
  e  the same 1000 split between TWO daphne processes   postgres+redis; sockets alternate between
     on the same PostgreSQL and Redis                   the ports; CPU summed over both

CPU per relayed chunk (per stack) = (CPU(a) - 200 x CPU per send(c)) / (200 x 200), as
stream_load's suite derives it. CPU is daphne's (summed over the processes); "+db" adds the
PostgreSQL and Redis server processes' CPU in the same window (shown, not a target: on SQLite the
database work is inside daphne, on PostgreSQL most of it is in the server process).

Targets (a 2-core machine):
  - a, on each stack: first delta within 1 s for 99% of replies (p99 <= 1 s); p99 send->done
    <= 1.15 x p99 of the server's own time; 0 errors; text exact (offsets contiguous, the deltas
    = done.content = what the upstream sent);
  - d, on each stack run: p99 done <= 1.5 x the server's own p99; first delta p99 < 3 s; 0 errors;
  - e: first delta p99 <= 0.6 x d's (postgres+redis), and 0 errors;
  - postgres+redis CPU <= 1.2 x sqlite+memory's, per send (c) and per relayed chunk (a);
  - fairness, d on each stack run: the 1,001st person's first delta <= 1 s after their own send.

Run from the repository root (PostgreSQL and Redis on 127.0.0.1: `python tests/infra.py ensure`):

    .venv/bin/python bench/scale_load.py [--json out.json] [--only a-pg,c-pg] [--smoke]

The database `chatsite_bench` is dropped and re-created for each PostgreSQL scenario. Exit status 0
when every target passes, 1 when one fails, 2 on a set-up error.
"""

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream_load import (
    DEFAULT_PG_URL,
    DEFAULT_REDIS_URL,
    Scenario,
    fmt,
    integrity_target,
    log,
    raise_fd_limit,
    run_scenario,
    run_session,
    table,
    target,
)

STACKS = {"sqlite": ("sqlite", False, "sqlite+memory"), "pg": ("postgres", True, "postgres+redis")}
FIRST_DELTA_S = 1.0
DONE_RATIO = 1.15
BURST_DONE_RATIO = 1.5
BURST_FIRST_DELTA_S = 3.0
TWO_PROCESS_FACTOR = 0.6
CPU_FACTOR = 1.2
LATE_DELAY_S = 1.0


def plan(smoke: bool, sqlite_1000: bool) -> list[dict]:
    """The scenarios in running order: (key, scenario, stack, processes, late sender)."""
    big, small, burst, burst_chunks = (5, 5, 10, 10) if smoke else (200, 200, 1000, 100)
    steps = [
        ("a-sqlite", Scenario("a-sqlite", big, 10 if smoke else 200, 50.0), "sqlite", 1, False),
        ("a-pg", Scenario("a-pg", big, 10 if smoke else 200, 50.0), "pg", 1, False),
        ("c-sqlite", Scenario("c-sqlite", small, 1, 50.0), "sqlite", 1, False),
        ("c-pg", Scenario("c-pg", small, 1, 50.0), "pg", 1, False),
        ("d-pg", Scenario("d-pg", burst, burst_chunks, 20.0), "pg", 1, True),
        ("e-pg", Scenario("e-pg", burst, burst_chunks, 20.0), "pg", 2, False),
    ]
    if sqlite_1000:
        steps.insert(4, ("d-sqlite", Scenario("d-sqlite", burst, burst_chunks, 20.0), "sqlite", 1, True))
    return [{"key": k, "scenario": s, "stack": st, "processes": p, "late": late} for k, s, st, p, late in steps]


def stack_args(args, stack: str) -> argparse.Namespace:
    database, redis, _ = STACKS[stack]
    return argparse.Namespace(
        database=database,
        redis=redis,
        pg_url=args.pg_url,
        redis_url=args.redis_url,
        port=0,
        upstream_port=0,
        warmup=True,
        connect_concurrency=args.connect_concurrency,
        timeout=0,
        direct_client="raw",
        keep=args.keep,
    )


# --- derived figures and targets ---------------------------------------------------------


def derive_cpu(results: dict[str, dict]) -> dict:
    """CPU per send (c) and per relayed chunk (a, d, e) for each stack, in ms and us."""
    cpu: dict = {}
    for stack in STACKS:
        c = results.get(f"c-{stack}")
        if not c or "ws" not in c or not c["ws"]["done"]:
            continue
        per_send = c["ws"]["daphne_cpu_s"] / c["ws"]["sockets"]
        per_send_all = (c["ws"]["daphne_cpu_s"] + c["ws"]["infra_cpu_s"]) / c["ws"]["sockets"]
        c["cpu_per_send_ms"], c["cpu_per_send_all_ms"] = 1000 * per_send, 1000 * per_send_all
        cpu[stack] = {"per_send_ms": 1000 * per_send, "per_send_all_ms": 1000 * per_send_all}
        for key in ("a", "d", "e"):
            r = results.get(f"{key}-{stack}")
            if not r or "ws" not in r:
                continue
            n, chunks, ws = r["ws"]["sockets"], r["scenario"]["chunks"], r["ws"]
            r["cpu_per_send_ms"], r["cpu_per_send_all_ms"] = 1000 * per_send, 1000 * per_send_all
            r["cpu_per_chunk_us"] = 1e6 * (ws["daphne_cpu_s"] - n * per_send) / (n * chunks)
            r["cpu_per_chunk_all_us"] = 1e6 * (ws["daphne_cpu_s"] + ws["infra_cpu_s"] - n * per_send_all) / (n * chunks)
            if key == "a":
                cpu[stack]["per_chunk_us"] = r["cpu_per_chunk_us"]
                cpu[stack]["per_chunk_all_us"] = r["cpu_per_chunk_all_us"]
    return cpu


def errors_of(result: dict) -> int:
    ws = result["ws"]
    return (
        (ws["sockets"] - ws["complete"]) + ws["error_frames"] + ws["connect_failures"] + result["direct"]["failed"]
    )


def text_exact(result: dict) -> bool:
    ws = result["ws"]
    return not (ws["offset_errors"] or ws["text_mismatch_done"] or ws["text_mismatch_upstream"] or ws["extra_frames"])


def ratio(result: dict, which: str) -> float | None:
    return (result.get("ratios") or {}).get(which)


def evaluate(results: dict[str, dict], cpu: dict) -> list[dict]:
    out: list[dict] = []
    for stack in STACKS:
        r = results.get(f"a-{stack}")
        if r and "ws" in r:
            ws, label = r["ws"], r["label"]
            first = ws["first_delta"]["p99"]
            out.append(target(
                "first delta within 1 s for 99% of replies", label, first, FIRST_DELTA_S,
                first is not None and first <= FIRST_DELTA_S and ws["no_first_delta"] <= 0.01 * ws["sockets"],
                f"p99 {fmt(first)} s (max {fmt(ws['first_delta']['max'])} s)",
            ))
            done_ratio = ratio(r, "p99_done_over_p99_direct")
            out.append(target(
                "p99 done <= 1.15 x server's own p99", label, done_ratio, DONE_RATIO,
                done_ratio is not None and done_ratio <= DONE_RATIO and ws["done"] == ws["sockets"],
                f"{fmt(ws['send_to_done']['p99'])} s vs {fmt(r['direct']['duration']['p99'])} s = {fmt(done_ratio)}x",
            ))
            out.append(integrity_target(r, "0 errors, text exact"))
        for key in ("d", "e"):
            r = results.get(f"{key}-{stack}")
            if not r or "ws" not in r:
                continue
            ws, label = r["ws"], r["label"]
            done_ratio = ratio(r, "p99_done_over_p99_direct")
            out.append(target(
                "1000 burst: p99 done <= 1.5 x server's own p99", label, done_ratio, BURST_DONE_RATIO,
                done_ratio is not None and done_ratio <= BURST_DONE_RATIO and ws["done"] == ws["sockets"],
                f"{fmt(ws['send_to_done']['p99'])} s vs {fmt(r['direct']['duration']['p99'])} s = {fmt(done_ratio)}x",
            ))
            first = ws["first_delta"]["p99"]
            out.append(target(
                "1000 burst: first delta p99 < 3 s", label, first, BURST_FIRST_DELTA_S,
                first is not None and first < BURST_FIRST_DELTA_S and ws["no_first_delta"] <= 0.01 * ws["sockets"],
                f"p99 {fmt(first)} s (p50 {fmt(ws['first_delta']['p50'])}, max {fmt(ws['first_delta']['max'])})",
            ))
            out.append(integrity_target(r, "1000 burst: 0 errors, text exact"))
            late = ws.get("late")
            if late is not None:
                first_late = late["first_delta_s"]
                out.append(target(
                    "fairness: the 1,001st person's first delta <= 1 s", label, first_late, FIRST_DELTA_S,
                    first_late is not None and first_late <= FIRST_DELTA_S and late["status"] == "complete",
                    f"{fmt(first_late)} s after their send ({fmt(late['sent_after_burst_s'])} s after the burst's "
                    f"first send), done {fmt(late['done_s'])} s, status {late['status']}",
                ))
    one, two = results.get("d-pg"), results.get("e-pg")
    if one and two and "ws" in one and "ws" in two:
        p1, p2 = one["ws"]["first_delta"]["p99"], two["ws"]["first_delta"]["p99"]
        limit = None if p1 is None else TWO_PROCESS_FACTOR * p1
        out.append(target(
            "two processes: first delta p99 <= 0.6 x one process's", two["label"], p2, limit,
            p2 is not None and limit is not None and p2 <= limit,
            f"{fmt(p2)} s vs 0.6 x {fmt(p1)} = {fmt(limit)} s (ratio {fmt(p2 / p1 if p1 and p2 else None)})",
        ))
    if "sqlite" in cpu and "pg" in cpu:
        for what, unit in (("per_send_ms", "ms"), ("per_chunk_us", "us")):
            base, other = cpu["sqlite"].get(what), cpu["pg"].get(what)
            if base is None or other is None:
                continue
            name, key = ("send", "c") if what == "per_send_ms" else ("relayed chunk", "a")
            out.append(target(
                f"CPU per {name}: postgres+redis <= 1.2 x sqlite+memory", f"{key}-pg vs {key}-sqlite",
                other / base if base > 0 else None, CPU_FACTOR, base > 0 and other <= CPU_FACTOR * base,
                f"{other:.2f} {unit} vs {base:.2f} {unit} = {other / base if base > 0 else float('nan'):.2f}x",
            ))
    return out


# --- the report --------------------------------------------------------------------------


def summary_table(ordered: list[dict]) -> str:
    headers = ["scenario", "stack", "procs", "replies x chunks @ rate", "first delta p50/p99 (s)",
               "done/own p99 / max", "CPU/send ms (+db)", "CPU/chunk us (+db)", "errors", "text exact",
               "late first delta"]
    rows = []
    for r in ordered:
        if "ws" not in r:
            rows.append([r["key"], r["stack_label"], str(r["processes"]), "-", "set-up failed"] + ["-"] * 6)
            continue
        s, ws = r["scenario"], r["ws"]
        late = ws.get("late")
        rows.append([
            r["key"], r["stack_label"], str(r["processes"]), f"{s['replies']} x {s['chunks']} @ {s['rate']:g}/s",
            f"{fmt(ws['first_delta']['p50'], '.2f')} / {fmt(ws['first_delta']['p99'], '.2f')}",
            f"{fmt(ratio(r, 'p99_done_over_p99_direct'), '.2f')} / {fmt(ratio(r, 'max_done_over_p50_direct'), '.2f')}",
            f"{fmt(r.get('cpu_per_send_ms'), '.2f')} ({fmt(r.get('cpu_per_send_all_ms'), '.2f')})",
            f"{fmt(r.get('cpu_per_chunk_us'), '.1f')} ({fmt(r.get('cpu_per_chunk_all_us'), '.1f')})"
            if s["chunks"] > 1 else "-",
            str(errors_of(r)), "yes" if text_exact(r) else "NO",
            "-" if late is None else f"{fmt(late['first_delta_s'], '.2f')} s",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Issue 14's targets: SQLite + in-memory vs PostgreSQL + Redis, one and two daphne processes.",
        epilog="See the module docstring for the scenarios and targets.",
    )
    parser.add_argument("--json", metavar="PATH", help="write all results and targets here")
    parser.add_argument("--only", help="comma-separated scenario keys (e.g. a-pg,c-pg); targets needing others are skipped")
    parser.add_argument("--no-sqlite-1000", dest="sqlite_1000", action="store_false",
                        help="skip the 1000-reply burst on sqlite+memory")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (5 replies x 10 chunks): checks the machinery")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the database to DROP and re-create")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, SQLite files)")
    args = parser.parse_args()

    steps = plan(args.smoke, args.sqlite_1000)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {step["key"] for step in steps}
        if unknown:
            parser.error(f"unknown scenarios {sorted(unknown)}; known: {[step['key'] for step in steps]}")
        steps = [step for step in steps if step["key"] in wanted]
    fd_limit = raise_fd_limit()
    needed = 2 * max(step["scenario"].replies for step in steps) + 256
    if fd_limit < needed:
        log(f"warning: the open-file limit is {fd_limit}; {needed} or more is advised")

    def measure(workroot: Path) -> tuple[int, dict]:
        results: dict[str, dict] = {}
        for step in steps:
            result = run_scenario(
                step["scenario"], stack_args(args, step["stack"]), workroot,
                processes=step["processes"], late_delay=LATE_DELAY_S if step["late"] else None,
            )
            result.update(key=step["key"], stack=step["stack"], stack_label=STACKS[step["stack"]][2])
            results[step["key"]] = result
        cpu = derive_cpu(results)
        targets = evaluate(results, cpu)
        ordered = list(results.values())
        print()
        print("=" * 78)
        chat_env = {k: v for k, v in os.environ.items() if k.startswith("CHAT_")}
        print(f"scale_load: {os.cpu_count()} CPUs, Python {platform.python_version()}, CHAT_* env {chat_env or '(defaults)'}"
              + ("  [SMOKE: tiny sizes, the targets mean nothing]" if args.smoke else ""))
        print("Times in seconds from each socket's own send; 'own' = the same requests read directly, same run.")
        print("=" * 78)
        print(table(ordered))
        print()
        print(summary_table(ordered))
        print()
        print("targets:")
        for t in targets:
            print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']} ({t['scenario']}): {t['detail']}")
        base, other = cpu.get("sqlite"), cpu.get("pg")
        if base and other and min(base.get("per_chunk_all_us", 1), base["per_send_all_ms"]) > 0:
            print("  info: with the CPU of the PostgreSQL and Redis server processes added (+db): per send "
                  f"{other['per_send_all_ms']:.2f} ms vs {base['per_send_all_ms']:.2f} ms = "
                  f"{other['per_send_all_ms'] / base['per_send_all_ms']:.2f}x"
                  + ("" if "per_chunk_all_us" not in base or "per_chunk_all_us" not in other else
                     f"; per relayed chunk {other['per_chunk_all_us']:.1f} us vs {base['per_chunk_all_us']:.1f} us"
                     f" = {other['per_chunk_all_us'] / base['per_chunk_all_us']:.2f}x"))
        for r in ordered:
            other, wall = r.get("ws", {}).get("other_cpu_s"), r.get("ws", {}).get("run_wall_s")
            if other is not None and wall and other / wall > 0.2:
                print(f"  note {r['label']}: other processes (PostgreSQL, Redis, unrelated jobs) used "
                      f"{other / wall:.2f} cores on average during the run")
            if r.get("daphne_exit") is not None:
                print(f"  note {r['label']}: daphne exited with {r['daphne_exit']}")
        status = 0 if targets and all(t["pass"] for t in targets) else 1
        return status, {"results": results, "cpu": cpu, "targets": targets}

    return run_session(args, fd_limit, "scale-bench-", measure)


if __name__ == "__main__":
    sys.exit(main())
