"""The whole benchmark suite, one command: `.venv/bin/python -m bench [--quick] [--only a,b]
[--db sqlite,postgresql]`.

Starts its own Synapse on loopback (bot.devserver), runs every benchmark against it one after
the other, each with its own bot account and work directory, and writes bench/results.md and
bench/results.png. Each benchmark with a database runs once on each database asked for (by
default SQLite and PostgreSQL, side by side in the results; the day on both at the same time,
see SIDE_BY_SIDE); one without (the rota) runs once.
A benchmark that fails is reported as failed, one whose database cannot be reached as skipped
with the reason; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from bench import (
    bench_board,
    bench_day,
    bench_directory,
    bench_email,
    bench_escalation,
    bench_latency,
    bench_paging,
    bench_rota,
    bench_rounds,
    bench_startup,
    bench_storage,
    bench_storm,
)
from bench.harness import BACKENDS, Backend, Section, fresh_work_dir, skipped
from bench.report import write_chart, write_markdown
from bot.devserver import DevServer, start_synapse

HERE = Path(__file__).parent
Measure = Callable[..., Awaitable[Section]]  # (server, work, quick[, backend])
BENCHES: dict[str, Measure] = {
    "latency": bench_latency.measure,
    "paging": bench_paging.measure,
    "startup": bench_startup.measure,
    "storage": bench_storage.measure,
    "rounds": bench_rounds.measure,
    "escalation": bench_escalation.measure,
    "directory": bench_directory.measure,
    "rota": bench_rota.measure,
    "email": bench_email.measure,
    "board": bench_board.measure,
    "storm": bench_storm.measure,
    "day": bench_day.measure,  # an hour of wall time (ICC_BENCH_DAY_MINUTES; quick: 5)
}
WITHOUT_DATABASE = {"rota"}  # run once, with no Backend
# Run on every database at the same time, not one after the other: the day is an hour of wall
# time at a light, steady load, and its goals (growth, lateness) are not ratios to a baseline run
# beside it. Side by side, both databases see the same machine and the same homeserver (busier by
# the other's load, which only makes the goals harder), and the suite takes one hour for it, not two.
SIDE_BY_SIDE = {"day"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument(
        "--db",
        default="sqlite,postgresql",
        help="comma-separated databases to run the bot on: sqlite, postgresql (default both; "
        "PostgreSQL at ICC_BENCH_POSTGRES, by default postgresql://postgres@127.0.0.1:5432)",
    )
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/suite afterwards")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/.png go")
    return parser.parse_args()


async def run_all(
    names: list[str], quick: bool, work: Path, backends: list[Backend]
) -> list[Section]:
    # Asked once: a server that is down is reported for every benchmark, not waited for each time.
    unreachable = {b.name: b.unreachable() for b in backends}
    server = start_synapse(work / "synapse")
    sections = []
    try:
        for name in names:
            runs: list[Backend | None] = [None] if name in WITHOUT_DATABASE else [*backends]
            if name in SIDE_BY_SIDE and len(runs) > 1:
                beside = await asyncio.gather(
                    *(_one(server, name, quick, work, b, unreachable) for b in runs)
                )
                for section in beside:
                    section.method += " Run on every database at the same time, side by side."
                sections += beside
                continue
            for backend in runs:
                sections.append(await _one(server, name, quick, work, backend, unreachable))
    finally:
        server.stop()
    return sections


async def _one(
    server: DevServer,
    name: str,
    quick: bool,
    work: Path,
    backend: Backend | None,
    unreachable: dict[str, str | None],
) -> Section:
    """One benchmark on one database (or none): its section, failed or skipped as it went, its
    start, section and duration printed as it goes."""
    label = f"{name} on {backend.label}" if backend else name
    started = time.monotonic()
    print(f"== {label} …", flush=True)
    if backend is not None and (reason := unreachable.get(backend.name)):
        return skipped(name, backend, reason)
    where = work / name / backend.name if backend else work / name
    try:
        where.mkdir(parents=True, exist_ok=True)
        args = (quick,) if backend is None else (quick, backend)
        section = await BENCHES[name](server, where, *args)
    except Exception as exc:
        traceback.print_exc()
        section = Section(name, f"**Failed**: `{exc!r}` (see the output of the run).")
    section.database = backend.name if backend else ""
    section.bench = name
    print(f"== {label}:", section.markdown(), f"({time.monotonic() - started:.0f} s)", flush=True)
    return section


def main() -> None:
    args = parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    databases = [d.strip() for d in args.db.split(",") if d.strip()]
    if not databases or any(d not in BACKENDS for d in databases):
        raise SystemExit(f"--db {args.db}: choose from {', '.join(BACKENDS)}")
    backends = [BACKENDS[d] for d in dict.fromkeys(databases)]
    work = fresh_work_dir("suite")
    started, begun = time.monotonic(), datetime.now()
    sections = asyncio.run(run_all(names, args.quick, work, backends))
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    run = {
        "date": f"{begun:%Y-%m-%d %H:%M}",
        "duration": f"{minutes} min {seconds:02d} s",
        "quick": "yes" if args.quick else "no",
        "databases": ", ".join(b.label for b in backends),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out / "results.md", sections, run)
    write_chart(args.out / "results.png", sections)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.png'} ({run['duration']})")
    if not args.keep and all("**Failed**" not in s.method for s in sections):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
