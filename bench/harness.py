"""What every benchmark needs: a bot on a local Synapse, with a directory of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from nio import AsyncClient, RoomGetEventError

from bot.app import App, Tuning
from bot.devserver import DevServer
from bot.settings import load_settings

BOT_PASSWORD = "bench-password-1"


async def start_bot(
    server: DevServer, work: Path, directory: dict[str, Any], tuning: Tuning | None = None
) -> tuple[App, asyncio.Task[None], str]:
    """Register the bot, write `directory`, run the real App in this loop until it is ready."""
    bot_id = server.register("iccbot", BOT_PASSWORD)
    config = work / "config"
    config.mkdir(exist_ok=True)
    (config / "directory.yaml").write_text(yaml.safe_dump(directory))
    settings = load_settings(
        {
            "ICC_HOMESERVER": server.base_url,
            "ICC_USER_ID": bot_id,
            "ICC_PASSWORD": BOT_PASSWORD,
            "ICC_DATABASE_URL": f"sqlite:///{work / 'icc.db'}",
            "ICC_DATA_DIR": str(work / "data"),
            "ICC_CONFIG_DIR": str(config),
            "ICC_E2EE": "false",
            "ICC_HEALTH_ADDR": "127.0.0.1:0",
        }
    )
    app = App(settings, tuning or Tuning())
    task = asyncio.create_task(app.run())
    await app.ready.wait()
    return app, task, bot_id


async def login(base_url: str, user_id: str, password: str) -> AsyncClient:
    client = AsyncClient(base_url, user_id)
    await client.login(password, device_name="bench")
    return client


async def server_event(client: AsyncClient, room_id: str, event_id: str) -> dict:
    response = await client.room_get_event(room_id, event_id)
    if isinstance(response, RoomGetEventError):
        raise RuntimeError(response.message)
    return response.event.source


async def server_ts(client: AsyncClient, room_id: str, event_id: str) -> int:
    return (await server_event(client, room_id, event_id))["origin_server_ts"]
