"""What ships: the wheel carries templates and migrations, the Dockerfile lints clean, and the demo
runs end to end (its own Synapse, a real user asking for help, Ctrl-C, a second run reusing state).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.matrix_people import Person, body
from tests.support.processes import process_env

REPO = Path(__file__).resolve().parent.parent


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_carries_templates_and_migrations(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("icc_liaison_bot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bot/templates/help.txt.j2" in names
    assert "bot/templates/help.html.j2" in names
    assert "bot/storage/migrations/env.py" in names
    assert "bot/storage/migrations/script.py.mako" in names
    assert "bot/storage/migrations/versions/0001_core.py" in names


async def wait_for_output(
    process: subprocess.Popen, log: Path, text: str, timeout: float = 60
) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while text not in (output := log.read_text(errors="replace")):
        if process.poll() is not None or loop.time() > deadline:
            raise AssertionError(f"demo never printed `{text}`:\n{output[-4000:]}")
        await asyncio.sleep(0.2)
    return output


def start_demo(data_dir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "demo"],
        env=process_env({"ICC_DATA_DIR": str(data_dir)}),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )


async def help_answers(homeserver: str, state: dict, handle: str, room: str) -> str:
    """Log in as the demo person `handle`, join `room` and ask for help: the bot's answer."""
    person = await Person.login(homeserver, f"@{handle}:localhost", state["passwords"][handle])
    try:
        await person.join(room)
        event_id = await person.send(room, "!icc help")
        return body(await person.wait_for_reply(room, event_id, "@iccbot:localhost"))
    finally:
        await person.close()


@pytest.mark.synapse
async def test_demo_runs_answers_and_restarts(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "demo.log"
    process = start_demo(data_dir, log)
    try:
        output = await wait_for_output(process, log, "the bot is ready")
        output = await wait_for_output(process, log, "Ctrl-C stops")
        welcome = output[output.index("the bot is ready") : output.index("Ctrl-C stops")]
        assert "INFO" not in welcome  # the instructions come last, not lost in start-up lines
        assert f"{data_dir / 'demo' / 'mail'}/" in welcome  # where the e-mails are
        assert "web endpoint on http://127.0.0.1:" in output  # where its links lead
        assert "board` DMs you its link" in welcome  # no activation yet: how to get a board
        state = json.loads((data_dir / "demo" / "demo.json").read_text())
        homeserver = next(line.split()[1] for line in output.splitlines() if "Homeserver:" in line)
        rooms = state["rooms"]
        # Everyone printed can try a command at once, in their own room, by their handle.
        assert "(icc-lead)" in await help_answers(homeserver, state, "amertens", rooms["icc"])
        assert "(partner)" in await help_answers(homeserver, state, "nl-ncc", rooms["partners"])
        assert "(dg)" in await help_answers(homeserver, state, "dg-be", rooms["dg"])
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0

        process = start_demo(data_dir, log)
        await wait_for_output(process, log, "INFO bot.app: ready")
        again = json.loads((data_dir / "demo" / "demo.json").read_text())
        assert again == state  # same users, passwords and rooms
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_readme_command_table_matches_the_registry() -> None:
    from bot.commands import command_table

    assert command_table() in (REPO / "README.md").read_text()


def test_the_playbook_the_readme_shows_whole_is_the_sample_as_it_is() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sample = (REPO / "config" / "playbooks" / "exercise.yaml").read_text(encoding="utf-8")
    assert f"```yaml\n{sample}```" in readme


@pytest.mark.parametrize(
    ("database_url", "loaded"),
    [("sqlite:///data/icc.db", []), ("postgresql://icc@db/icc", ["psycopg"])],
)
def test_a_bot_loads_only_the_database_driver_it_uses(database_url: str, loaded: list[str]) -> None:
    """nio's key store imports every PostgreSQL driver installed; `icc-bot run` keeps those the
    bot will not use out of its process (psycopg2 never used; psycopg on SQLite): memory."""
    script = (
        "import sys; from bot.__main__ import without_unused_drivers; "
        f"without_unused_drivers({database_url!r}); import bot.app; "
        "print([m for m in ('psycopg', 'psycopg2') if sys.modules.get(m) is not None])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout.strip().replace("'", '"')) == loaded
