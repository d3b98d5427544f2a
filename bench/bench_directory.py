"""Directory (issue 3): load + validate 5,000 contacts in 2,000 organisations (goal < 2 s),
resolve a 500-person target (goal < 50 ms), and record them into the database.

No homeserver involved; the suite runs it like the others. The baseline of the load is PyYAML's
libyaml parser alone on the same file: what any reader of the file pays.

Run on its own: .venv/bin/python -m bench.bench_directory
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.harness import SQLITE, Backend, Figure, Section, big_directory, standalone
from bot.devserver import DevServer
from bot.directory.model import load_directory
from bot.storage.db import Database
from bot.storage.directory_store import store_directory


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


async def measure(
    server: DevServer | None, work: Path, quick: bool, backend: Backend = SQLITE
) -> Section:
    with backend.database(work, "directory") as url:
        return await _measure(work, quick, backend, url)


async def _measure(work: Path, quick: bool, backend: Backend, url: str) -> Section:
    repeat = 2 if quick else 5
    path = work / "directory.yaml"
    path.write_text(yaml.safe_dump(big_directory(), sort_keys=False))
    parse = timed(lambda: yaml.load(path.read_text(), Loader=yaml.CSafeLoader), repeat)
    load = timed(lambda: load_directory(path), repeat)
    directory = load_directory(path)
    # 500 people: 5 groups of 100 each, plus single handles.
    keys = [f"group-{g}" for g in range(5)] + [f"person-{c}" for c in range(0, 5000, 500)]
    people = len(directory.resolve(keys).people)
    resolve = timed(lambda: directory.resolve(keys), 50)
    db = Database(url)
    await db.upgrade()
    start = time.perf_counter()
    async with db.session() as session:
        await store_directory(session, directory)
    store = time.perf_counter() - start
    await db.dispose()
    del backend  # the section's heading names it
    figures = [
        Figure(
            "load + validate 5,000 contacts / 2,000 organisations",
            statistics.median(load),
            baseline=statistics.median(parse),
            baseline_name="libyaml parse alone",
            goal="< 2 s",
            met=statistics.median(load) < 2,
        ),
        Figure(
            f"resolve a {people}-person target",
            statistics.median(resolve),
            goal="< 50 ms",
            met=statistics.median(resolve) < 0.05,
        ),
        Figure("record the directory into the database (first load)", store),
    ]
    return Section(
        "Directory",
        f"Median of {repeat} loads (50 resolutions) in this process, no homeserver.",
        figures,
    )


if __name__ == "__main__":
    standalone(measure)
