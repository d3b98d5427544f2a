"""Directory benchmark (issue 3): load + validate 5,000 contacts in 2,000 organisations (goal
< 2 s), resolve a 500-person target (goal < 50 ms), and record them into the database.

Run: .venv/bin/python -m bench.bench_directory   (writes bench/results/directory.md)
"""

from __future__ import annotations

import asyncio
import platform
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from bot.directory import load_directory
from bot.storage.db import Database
from bot.storage.directory_store import store_directory

RESULTS = Path(__file__).parent / "results" / "directory.md"
LANGS = [["en"], ["fr", "en"], ["nl", "fr"], ["de", "en"]]
ZONES = ["Europe/Brussels", "Europe/Amsterdam", "Europe/Luxembourg", "Europe/Berlin", "UTC"]


def big_directory(contacts: int = 5_000, organisations: int = 2_000) -> dict:
    groups = {f"group-{g}": f"Group {g}" for g in range(50)}
    return {
        "organisations": [
            {"key": f"org-{o}", "name": f"Organisation {o}", "kind": "national", "country": "BE"}
            for o in range(organisations)
        ],
        "contacts": [
            {
                "handle": f"person-{c}",
                "name": f"Person {c}",
                "organisation": f"org-{c % organisations}",
                "matrix_id": f"@person-{c}:crisis.example",
                "role": "partner" if c % 10 else "icc-member",
                "languages": LANGS[c % len(LANGS)],
                "timezone": ZONES[c % len(ZONES)],
                "groups": [f"group-{c % 50}"],
                "backup": f"person-{c + 1}" if c % 2 == 0 and c + 1 < contacts else None,
            }
            for c in range(contacts)
        ],
        "groups": groups,
    }


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


async def store_seconds(directory, url: str) -> float:  # type: ignore[no-untyped-def]
    db = Database(url)
    await db.upgrade()
    start = time.perf_counter()
    async with db.session() as session:
        await store_directory(session, directory)
    elapsed = time.perf_counter() - start
    await db.dispose()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "directory.yaml"
        path.write_text(yaml.safe_dump(big_directory(), sort_keys=False))
        load = timed(lambda: load_directory(path), 5)
        directory = load_directory(path)
        # 500 people: 10 groups of ~100 each, minus what overlaps, plus single handles.
        keys = [f"group-{g}" for g in range(5)] + [f"person-{c}" for c in range(0, 5000, 500)]
        people = len(directory.resolve(keys).people)
        resolve = timed(lambda: directory.resolve(keys), 50)
        store = asyncio.run(store_seconds(directory, f"sqlite:///{tmp}/bench.db"))

    rows = [
        ("load + validate 5,000 contacts / 2,000 orgs", statistics.median(load), max(load), 2.0),
        (f"resolve a {people}-person target", statistics.median(resolve), max(resolve), 0.05),
        ("record the directory into SQLite (first load)", store, store, None),
    ]
    lines = [
        "# Directory benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}. Regenerate: "
        "`.venv/bin/python -m bench.bench_directory`.",
        "",
        "| measurement | median | worst | goal | ratio to goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, median, worst, goal in rows:
        ratio = f"{median / goal:.2f}" if goal else "—"
        goal_text = f"< {goal * 1000:.0f} ms" if goal else "—"
        lines.append(
            f"| {name} | {median * 1000:.1f} ms | {worst * 1000:.1f} ms | {goal_text} | {ratio} |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
