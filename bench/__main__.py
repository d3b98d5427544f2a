"""The whole benchmark suite, one command: `.venv/bin/python -m bench [--quick] [--only a,b]`.

Starts its own Synapse on loopback (bot.devserver), runs every benchmark against it one after
the other, each with its own bot account and work directory, and writes bench/results.md and
bench/results.png. A benchmark that fails is reported as failed; the others still run.
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
from bench.harness import Section, fresh_work_dir
from bench.report import write_chart, write_markdown
from bot.devserver import DevServer, start_synapse

HERE = Path(__file__).parent
Measure = Callable[[DevServer, Path, bool], Awaitable[Section]]
BENCHES: dict[str, Measure] = {
    "latency": bench_latency.measure,
    "paging": bench_paging.measure,
    "startup": bench_startup.measure,
    "storage": bench_storage.measure,
    "rounds": bench_rounds.measure,
    "escalation": bench_escalation.measure,
    "directory": bench_directory.measure,  # type: ignore[dict-item]
    "rota": bench_rota.measure,
    "email": bench_email.measure,  # type: ignore[dict-item]
    "board": bench_board.measure,
    "storm": bench_storm.measure,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/suite afterwards")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/.png go")
    return parser.parse_args()


async def run_all(names: list[str], quick: bool, work: Path) -> list[Section]:
    server = start_synapse(work / "synapse")
    sections = []
    try:
        for name in names:
            started = time.monotonic()
            print(f"== {name} …", flush=True)
            try:
                (work / name).mkdir(parents=True, exist_ok=True)
                section = await BENCHES[name](server, work / name, quick)
            except Exception as exc:
                traceback.print_exc()
                section = Section(name, f"**Failed**: `{exc!r}` (see the output of the run).")
            print(section.markdown(), f"({time.monotonic() - started:.0f} s)", flush=True)
            sections.append(section)
    finally:
        server.stop()
    return sections


def main() -> None:
    args = parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    work = fresh_work_dir("suite")
    started, begun = time.monotonic(), datetime.now()
    sections = asyncio.run(run_all(names, args.quick, work))
    minutes, seconds = divmod(int(time.monotonic() - started), 60)
    run = {
        "date": f"{begun:%Y-%m-%d %H:%M}",
        "duration": f"{minutes} min {seconds:02d} s",
        "quick": "yes" if args.quick else "no",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_markdown(args.out / "results.md", sections, run)
    write_chart(args.out / "results.png", sections)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.png'} ({run['duration']})")
    if not args.keep and all("**Failed**" not in s.method for s in sections):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
