"""`icc-bot demo`: the whole bot on this machine, with nothing to configure.

Starts Synapse on 127.0.0.1 (state under `ICC_DATA_DIR/demo`), registers the bot and every person
of the sample directory with generated passwords, moves the directory onto the local server,
creates an "ICC demo" room with the ICC roster and the bot, and runs the bot until Ctrl-C. A second
run reuses users, passwords, room and bot device.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

import yaml
from nio import AsyncClient, RoomCreateError

from bot.app import App, serve
from bot.devmail import DemoMailbox
from bot.devserver import DevServer, start_synapse
from bot.settings import load_settings

log = logging.getLogger(__name__)
SAMPLE_DIRECTORY = Path(__file__).resolve().parent.parent / "config" / "directory.yaml"
PREFERRED_PORT = 8008
BOT_LOCALPART = "iccbot"


# The demo's rooms: who creates each (a role), who is invited besides the bot, what it is for.
ROOMS = {
    "icc": ("ICC demo", ("icc-lead", "icc-member"), "the ICC roster: try `{prefix} help`"),
    "dg": ("DG platform", ("dg",), "Directors-General: the bot's DG room (ICC_DG_ROOM)"),
    "partners": ("Partners", ("partner",), "national and international partners"),
}


def run_demo() -> int:
    base = Path(os.environ.get("ICC_DATA_DIR", "data")).resolve() / "demo"
    state_file = base / "demo.json"
    state: dict[str, Any] = (
        json.loads(state_file.read_text()) if state_file.exists() else {"passwords": {}}
    )
    server = start_synapse(base / "synapse", port=_free_or_none(state.get("port", PREFERRED_PORT)))
    mail = DemoMailbox(base / "mail")
    mail.start()
    state["port"] = int(server.base_url.rsplit(":", 1)[1])
    try:
        directory = _localised_directory(server.server_name)
        config_dir = base / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "directory.yaml").write_text(yaml.safe_dump(directory, sort_keys=False))
        for folder in ("rota", "playbooks"):  # the sample's, naming the same handles
            shutil.copytree(
                SAMPLE_DIRECTORY.parent / folder, config_dir / folder, dirs_exist_ok=True
            )
        people = {_localpart(c["matrix_id"]): c for c in directory["contacts"] if "matrix_id" in c}
        for localpart in [BOT_LOCALPART, *people]:
            password = state["passwords"].setdefault(localpart, secrets.token_urlsafe(9))
            server.register(localpart, password)
        bot_id = f"@{BOT_LOCALPART}:{server.server_name}"
        rooms = state.setdefault("rooms", {})
        if "room_id" in state:  # a demo made before it had a room per audience
            rooms.setdefault("icc", state.pop("room_id"))
        asyncio.run(_create_rooms(server, bot_id, state, people))
        _save_state(state_file, state)
        settings = load_settings(
            {
                "ICC_HOMESERVER": server.base_url,
                "ICC_USER_ID": bot_id,
                "ICC_PASSWORD": state["passwords"][BOT_LOCALPART],
                "ICC_DATABASE_URL": f"sqlite:///{base / 'icc.db'}",
                "ICC_DATA_DIR": str(base / "bot"),
                "ICC_CONFIG_DIR": str(config_dir),
                "ICC_E2EE": "true",
                "ICC_STORE_KEY": "demo",
                "ICC_DG_ROOM": rooms["dg"],
                **mail.settings(),
            }
        )
        return asyncio.run(_serve(server, state, people, settings))
    finally:
        mail.stop()
        server.stop()


async def _serve(
    server: DevServer, state: dict[str, Any], people: dict[str, dict[str, Any]], settings: Any
) -> int:
    """Run the bot; the instructions are printed once it answers, below its start-up lines."""
    app = App(settings)

    async def welcome_when_ready() -> None:
        await app.ready.wait()
        assert app.services is not None
        boards = await app.services.boards.console_links()
        _print_welcome(
            server,
            state,
            people,
            settings.command_prefix,
            settings.data_dir.parent / "mail",
            boards,
        )

    welcome = asyncio.create_task(welcome_when_ready())
    try:
        return await serve(app)
    finally:
        welcome.cancel()


async def _create_rooms(
    server: DevServer, bot_id: str, state: dict[str, Any], people: dict[str, dict[str, Any]]
) -> None:
    """One room per audience, made once by the ICC lead, the bot and its people invited."""
    lead = next(p for p, c in people.items() if c["role"] == "icc-lead")
    for key, (name, roles, _) in ROOMS.items():
        if key in state["rooms"]:
            continue
        invite = [bot_id] + [
            c["matrix_id"] for p, c in people.items() if c["role"] in roles and p != lead
        ]
        state["rooms"][key] = await _create_room(
            server, lead, state["passwords"][lead], name, invite
        )


async def _create_room(
    server: DevServer, localpart: str, password: str, name: str, invite: list[str]
) -> str:
    client = AsyncClient(server.base_url, f"@{localpart}:{server.server_name}")
    try:
        await client.login(password, device_name="demo setup")
        response = await client.room_create(
            name=name, topic="Try: !icc help", invite=invite, is_direct=False
        )
        if isinstance(response, RoomCreateError):
            raise RuntimeError(f"creating the demo room {name} failed: {response.message}")
        return response.room_id
    finally:
        await client.close()


def _localised_directory(server_name: str) -> dict[str, Any]:
    """The sample directory on the local homeserver, each person's user name their handle, so
    that what they log in with is what others type (`contact nl-ncc`, `page nl-ncc`)."""
    directory = yaml.safe_load(SAMPLE_DIRECTORY.read_text(encoding="utf-8"))
    for contact in directory["contacts"]:
        if "matrix_id" in contact:  # someone reached by e-mail only stays so
            contact["matrix_id"] = f"@{contact['handle']}:{server_name}"
    return directory


def _localpart(matrix_id: str) -> str:
    return matrix_id[1:].split(":", 1)[0]


def _free_or_none(port: int) -> int | None:
    """`port` if it can be bound (so the URL users saved keeps working), else None (any)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


def _print_welcome(
    server: DevServer,
    state: dict[str, Any],
    people: dict[str, dict[str, Any]],
    prefix: str,
    mail_dir: Path,
    boards: list[tuple[str, str]],
) -> None:
    lines = [
        "",
        "ICC liaison bot demo — the bot is ready",
        f"  Homeserver: {server.base_url}   (server name: {server.server_name})",
        "  Log in with any Matrix client (Element: 'Edit' the homeserver, enter the URL above).",
        "  Rooms (each person is invited to theirs):",
    ]
    for key, (name, _, purpose) in ROOMS.items():
        lines.append(f"    {name:<12} {state['rooms'][key]}  {purpose.format(prefix=prefix)}")
    lines.append("  People (user name = directory handle, password, role, name):")
    for localpart, contact in people.items():
        lines.append(
            f"    {localpart:<16} {state['passwords'][localpart]:<14} {contact['role']:<10} "
            f"{contact['name']}"
        )
    lines += [
        "  E-mails (a page not acknowledged on Matrix within 1m goes on by e-mail to those whose",
        "  directory entry says so, e.g. emb-fr; at once to emb-de, who is not on Matrix) are",
        f"  logged and kept in {mail_dir}/.",
        "  Live situation boards (open in a browser; every change shows within 2 s):",
        *[f"    {ref:<16} {url}" for ref, url in boards],
        *(
            []
            if boards
            else [f"    none yet: in an activation's room, `{prefix} board` DMs you its link"]
        ),
        f"  Then type `{prefix} help` in your room. Ctrl-C stops bot and homeserver.",
        "",
    ]
    print("\n".join(lines), flush=True)
