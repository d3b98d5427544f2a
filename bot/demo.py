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
import socket
from pathlib import Path
from typing import Any

import yaml
from nio import AsyncClient, RoomCreateError

from bot.app import App, serve
from bot.devserver import DevServer, start_synapse
from bot.settings import load_settings

log = logging.getLogger(__name__)
SAMPLE_DIRECTORY = Path(__file__).resolve().parent.parent / "config" / "directory.yaml"
PREFERRED_PORT = 8008
BOT_LOCALPART = "iccbot"


def run_demo() -> int:
    base = Path(os.environ.get("ICC_DATA_DIR", "data")).resolve() / "demo"
    state_file = base / "demo.json"
    state: dict[str, Any] = (
        json.loads(state_file.read_text()) if state_file.exists() else {"passwords": {}}
    )
    server = start_synapse(base / "synapse", port=_free_or_none(state.get("port", PREFERRED_PORT)))
    state["port"] = int(server.base_url.rsplit(":", 1)[1])
    try:
        directory = _localised_directory(server.server_name)
        config_dir = base / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "directory.yaml").write_text(yaml.safe_dump(directory, sort_keys=False))
        people = {_localpart(c["matrix_id"]): c for c in directory["contacts"]}
        for localpart in [BOT_LOCALPART, *people]:
            password = state["passwords"].setdefault(localpart, secrets.token_urlsafe(9))
            server.register(localpart, password)
        _save_state(state_file, state)
        settings = load_settings(
            {
                "ICC_HOMESERVER": server.base_url,
                "ICC_USER_ID": f"@{BOT_LOCALPART}:{server.server_name}",
                "ICC_PASSWORD": state["passwords"][BOT_LOCALPART],
                "ICC_DATABASE_URL": f"sqlite:///{base / 'icc.db'}",
                "ICC_DATA_DIR": str(base / "bot"),
                "ICC_CONFIG_DIR": str(config_dir),
                "ICC_E2EE": "true",
                "ICC_STORE_KEY": "demo",
            }
        )
        return asyncio.run(_serve(server, settings.user_id, state, state_file, people, settings))
    finally:
        server.stop()


async def _serve(
    server: DevServer,
    bot_id: str,
    state: dict[str, Any],
    state_file: Path,
    people: dict[str, dict[str, Any]],
    settings: Any,
) -> int:
    roster = [c for c in people.values() if c["role"] in ("icc-lead", "icc-member")]
    lead = _localpart(roster[0]["matrix_id"])
    if not state.get("room_id"):
        state["room_id"] = await _create_room(
            server,
            lead,
            state["passwords"][lead],
            [bot_id] + [c["matrix_id"] for c in roster[1:]],
        )
        _save_state(state_file, state)
    _print_welcome(server, state, people, settings.command_prefix)
    return await serve(App(settings))


async def _create_room(server: DevServer, localpart: str, password: str, invite: list[str]) -> str:
    client = AsyncClient(server.base_url, f"@{localpart}:{server.server_name}")
    try:
        await client.login(password, device_name="demo setup")
        response = await client.room_create(
            name="ICC demo", topic="Try: !icc help", invite=invite, is_direct=False
        )
        if isinstance(response, RoomCreateError):
            raise RuntimeError(f"creating the demo room failed: {response.message}")
        return response.room_id
    finally:
        await client.close()


def _localised_directory(server_name: str) -> dict[str, Any]:
    """The sample directory with every Matrix ID moved onto the local homeserver."""
    directory = yaml.safe_load(SAMPLE_DIRECTORY.read_text(encoding="utf-8"))
    for contact in directory["contacts"]:
        contact["matrix_id"] = f"@{_localpart(contact['matrix_id'])}:{server_name}"
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
    server: DevServer, state: dict[str, Any], people: dict[str, dict[str, Any]], prefix: str
) -> None:
    lines = [
        "",
        "ICC liaison bot demo",
        f"  Homeserver: {server.base_url}   (server name: {server.server_name})",
        f'  Demo room:  {state["room_id"]}  ("ICC demo"; the ICC roster is invited)',
        "  Log in with any Matrix client (Element: 'Edit' the homeserver, enter the URL above):",
    ]
    for localpart, contact in people.items():
        lines.append(
            f"    {localpart:<16} {state['passwords'][localpart]:<14} {contact['role']:<10} "
            f"{contact['name']}"
        )
    lines += [f"  Then type `{prefix} help` in the demo room. Ctrl-C stops bot and homeserver.", ""]
    print("\n".join(lines), flush=True)
