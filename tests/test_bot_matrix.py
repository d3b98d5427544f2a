"""The bot on a real homeserver, driven by real users: the round trip, what the sync loop
ignores, invites, health, encryption and device trust, a revoked session, SIGTERM. What the bot
answers to commands, without a homeserver: test_answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.bots import RunningBot
from tests.support.cast import Cast
from tests.support.databases import BACKENDS
from tests.support.matrix_people import Person, body
from tests.support.processes import start_ready
from tests.support.reading import raw_event_type
from tests.support.rooms import bot_joined, bot_left, shared_room

pytestmark = pytest.mark.synapse


async def test_help_round_trip(bot: RunningBot, people: dict[str, Person], cast: Cast) -> None:
    room_id = await shared_room(people, cast)
    lead = people["lead"]
    started = time.monotonic()
    reply = await lead.ask(room_id, "!icc help", cast.bot.user_id)
    elapsed = time.monotonic() - started
    content = reply["content"]
    assert content["msgtype"] == "m.notice"
    assert content["format"] == "org.matrix.custom.html"
    assert content["m.mentions"] == {}
    assert "!icc help [<command>]" in content["body"]
    assert "<code>!icc help [&lt;command&gt;]</code>" in content["formatted_body"]
    print(f"help answered in {elapsed:.3f}s")  # measured properly in bench/


async def test_ignores_itself_notices_and_plain_chat(
    bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    room_id = await shared_room(people, cast)
    lead = people["lead"]
    await lead.send(room_id, "!icc help", msgtype="m.notice")  # another bot's notice
    await lead.send(room_id, "good morning, no command here")
    marker = await lead.send(room_id, "!icc help")
    await lead.wait_for_reply(room_id, marker, cast.bot.user_id)
    await lead.quiet_period(1.0)
    answers = [e for e in lead.events(room_id, cast.bot.user_id) if e["type"] == "m.room.message"]
    assert len(answers) == 1


async def test_invites_from_directory_members_only(
    bot: RunningBot, people: dict[str, Person], cast: Cast
) -> None:
    stranger_room = await people["stranger"].create_room(invite=[cast.bot.user_id])
    member_room = await people["member"].create_room(invite=[cast.bot.user_id])
    await people["member"].wait_for(member_room, bot_joined(cast.bot.user_id))
    await people["stranger"].wait_for(stranger_room, bot_left(cast.bot.user_id))


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_readyz_reports_active_sync_and_database_and_healthz_is_its_alias(
    bot: RunningBot,
) -> None:
    import json
    import urllib.request

    assert bot.app is not None
    assert bot.app.ops is not None
    base = f"http://127.0.0.1:{bot.app.ops.port}"
    for path in ("/readyz", "/healthz"):
        response = await asyncio.to_thread(urllib.request.urlopen, base + path, timeout=5)
        assert response.status == 200
        assert json.loads(response.read()) == {
            "ready": True,
            "checks": {"active": True, "sync": True, "database": True},
        }
    scraped = await asyncio.to_thread(urllib.request.urlopen, base + "/metrics", timeout=5)
    text = scraped.read().decode()
    assert "icc_last_sync_timestamp_seconds " in text
    assert "# TYPE icc_commands_total counter" in text


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_encrypted_room_round_trip_and_restart(
    bot_env: dict[str, str],
    synapse,
    cast: Cast,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from bot.settings import load_settings

    env = bot_env | {"ICC_E2EE": "true", "ICC_STORE_KEY": "test-store-key-0123456789"}
    running = RunningBot(load_settings(env))
    await running.start()
    lead = await Person.login(
        synapse.base_url, cast.lead.user_id, cast.lead.password, store_dir=str(tmp_path)
    )
    try:
        room_id = await lead.create_room(invite=[cast.bot.user_id], encrypted=True)
        await lead.wait_for(room_id, bot_joined(cast.bot.user_id))
        reply = await lead.ask(room_id, "!icc help", cast.bot.user_id)
        assert "Commands you can use (icc-lead)" in body(reply)
        assert await raw_event_type(lead, room_id, reply["event_id"]) == "m.room.encrypted"
        await running.stop()
        await running.start()  # same device, same keys: still reads and answers
        reply = await lead.ask(room_id, "!icc help help", cast.bot.user_id)
        assert "Example: !icc help page" in body(reply)
        await send_undecryptable(lead, room_id)
        report = await lead.wait_for(
            room_id,
            lambda e: "could not decrypt a message from Lead" in body(e),
            sender=cast.bot.user_id,
        )
        assert report["content"]["msgtype"] == "m.notice"
    finally:
        await lead.close()
        await running.stop()


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_member_devices_trusted_on_first_use_and_changes_logged(
    bot_env: dict[str, str],
    synapse,
    cast: Cast,
    tmp_path,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    """The lead's device is trusted when first seen; a second device is trusted too but logged as
    a change, and gets the bot's keys; a stranger's device is not vouched for; trust survives a
    restart without being logged again."""
    from bot.settings import load_settings

    env = bot_env | {"ICC_E2EE": "true", "ICC_STORE_KEY": "test-store-key-0123456789"}
    running = RunningBot(load_settings(env))
    app = await running.start()
    people: list[Person] = []

    async def device(account, store: str) -> Person:  # type: ignore[no-untyped-def]
        (tmp_path / store).mkdir()
        person = await Person.login(
            synapse.base_url, account.user_id, account.password, store_dir=str(tmp_path / store)
        )
        people.append(person)
        return person

    try:
        lead, stranger = await device(cast.lead, "a"), await device(cast.stranger, "s")
        room_id = await lead.create_room(
            invite=[cast.bot.user_id, cast.stranger.user_id], encrypted=True
        )
        await lead.wait_for(room_id, bot_joined(cast.bot.user_id))
        await stranger.join(room_id)
        assert "Commands you can use" in body(
            await lead.ask(room_id, "!icc help", cast.bot.user_id)
        )
        bot_client = app.services.messenger._client  # type: ignore[union-attr]
        lead_device = bot_client.device_store[cast.lead.user_id][lead.client.device_id]
        assert lead_device.verified
        assert f"trusted {cast.lead.user_id}'s device {lead.client.device_id}" in caplog.text
        await wait_until(lambda: cast.stranger.user_id in bot_client.device_store.users)
        stranger_device = bot_client.device_store[cast.stranger.user_id][stranger.client.device_id]
        assert not stranger_device.verified
        assert "device change" not in caplog.text

        lead_phone = await device(cast.lead, "b")
        phone = lead_phone.client.device_id
        await wait_until(lambda: f"has a new device {phone}" in caplog.text)
        assert bot_client.device_store[cast.lead.user_id][phone].verified
        reply = await lead_phone.ask(room_id, "!icc help help", cast.bot.user_id)
        assert "Example: !icc help page" in body(reply)  # the new device could decrypt it

        await running.stop()
        caplog.clear()
        app = await running.start()
        assert "on first use" not in caplog.text
        assert "device change" not in caplog.text
        bot_client = app.services.messenger._client  # type: ignore[union-attr]
        assert bot_client.device_store[cast.lead.user_id][phone].verified
        assert not bot_client.device_store[cast.stranger.user_id][
            stranger.client.device_id
        ].verified
    finally:
        for person in people:
            await person.close()
        await running.stop()


async def wait_until(condition, timeout: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def send_undecryptable(person: Person, room_id: str) -> None:
    """An encrypted event whose session nobody ever shared: what a bot sees when a client did
    not send it the room key."""
    import json
    import secrets
    import urllib.parse
    import urllib.request

    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnAC" + "A" * 80,
        "device_id": "NOTADEVICE",
        "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
    }
    quoted = urllib.parse.quote(room_id, safe="")
    url = f"{person.client.homeserver}/_matrix/client/v3/rooms/{quoted}/send/m.room.encrypted/{secrets.token_hex(8)}"
    request = urllib.request.Request(
        url,
        data=json.dumps(content).encode(),
        method="PUT",
        headers={
            "Authorization": f"Bearer {person.client.access_token}",
            "Content-Type": "application/json",
        },
    )
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)


async def test_revoked_session_stops_the_bot_with_a_clear_error(
    bot_env: dict[str, str],
    synapse,  # type: ignore[no-untyped-def]
) -> None:
    import json
    import urllib.request
    from pathlib import Path

    from bot.matrix.sync import FatalSyncError
    from bot.settings import load_settings

    running = RunningBot(load_settings(bot_env))
    app = await running.start()
    token = json.loads((Path(bot_env["ICC_DATA_DIR"]) / "credentials.json").read_text())[
        "access_token"
    ]
    request = urllib.request.Request(
        f"{synapse.base_url}/_matrix/client/v3/logout",
        data=b"{}",
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
    assert running._task is not None
    with pytest.raises(FatalSyncError, match="refused the session"):
        await asyncio.wait_for(running._task, 20)
    assert not app.services.scheduler.aps.running  # type: ignore[union-attr]


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_sigterm_finishes_and_exits_zero_within_ten_seconds(
    bot_env: dict[str, str],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    import signal

    log_path = tmp_path / "bot.log"
    process = await start_ready(bot_env, log_path)
    try:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 10) == 0
        assert "INFO bot.app: stopped" in log_path.read_text()
        from pathlib import Path

        data = Path(bot_env["ICC_DATA_DIR"])
        assert data.stat().st_mode & 0o777 == 0o700  # tokens and keys: the bot's user only
        assert (data / "credentials.json").stat().st_mode & 0o777 == 0o600
    finally:
        if process.poll() is None:
            process.kill()
