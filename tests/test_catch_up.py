"""After a crash or an outage (issue 27): what was sent while the bot was away counts before any
timer acts on it; each person's escalation keeps its order and its full time; encrypted events
whose keys arrive late are kept, decrypted and handled — never dropped.

Each test plays one moment of an exercise against the real bot (a real `icc-bot run` where a
SIGKILL is the point) on the test homeserver, and reads the outcome from the people's clients.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nio import Api, KeysUploadResponse
from nio.crypto import Olm

from bot.settings import load_settings
from tests.support.bots import RunningBot, bot_running
from tests.support.cast import Cast
from tests.support.gateway import Gateway
from tests.support.matrix_people import Person, body
from tests.support.processes import BotProcess
from tests.support.rooms import activation_room, bot_joined, in_thread, page_received, pages_in

pytestmark = pytest.mark.synapse

E2EE = {"ICC_E2EE": "true", "ICC_STORE_KEY": "test-store-key-0123456789"}


def sent_at(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(event["origin_server_ts"] / 1000, tz=UTC)


async def pages(person: Person, dm: str, cast: Cast, count: int) -> list[dict[str, Any]]:
    """The first `count` pages of PG-1 the person received, syncing until they are there."""
    for _ in range(40):
        found = pages_in(person, dm, cast, "PG-1")
        if len(found) >= count:
            return found[:count]
        await person.sync()
    raise AssertionError(f"{person.user_id} received {len(found)} pages of PG-1, not {count}")


async def encrypting(synapse: Any, cast: Cast, role: str, store: Path) -> Person:
    """A person on an end-to-end encrypting client (as on Element), with its own key store."""
    store.mkdir()
    account = getattr(cast, role)
    return await Person.login(
        synapse.base_url, account.user_id, account.password, store_dir=str(store)
    )


async def test_updates_sent_while_the_bot_was_killed_inside_a_round_are_in_its_summary(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, tmp_path: Path
) -> None:
    """Killed inside a round's window, down past its end: after the restart the run closes only
    once the two updates sent inside the window (a command and a thread reply) are recorded;
    both are in its summary, and nobody is told their update came too late."""
    bot = BotProcess(paging_env, tmp_path / "bot.log")
    await bot.start()
    try:
        _ref, room = await activation_room(people, cast)
        member, lead, bot_id = people["member"], people["lead"], cast.bot.user_id
        await member.send(room, "!icc round now --with member,lead --window 12s")
        prompt = await member.wait_for(room, lambda e: "ROUND RD-1 #1" in body(e), sender=bot_id)
        bot.kill()
        by_command = await member.send(room, "!icc update Roads: N4 closed at Namur")
        await lead.send(room, "Pumps: two more needed in Liège", **in_thread(prompt))
        ends = sent_at(prompt) + timedelta(seconds=12)
        await asyncio.sleep((ends - datetime.now(UTC)).total_seconds() + 2)  # down past the end
        await bot.start()
        summary = await member.wait_for(
            room, lambda e: "RD-1 #1 closed" in body(e), sender=bot_id, timeout=30
        )
        assert "Member: Roads: N4 closed at Namur" in body(summary), body(summary)
        assert "Lead: Pumps: two more needed in Liège" in body(summary), body(summary)
        answer = await member.wait_for_reply(room, by_command, bot_id, timeout=30)
        assert "Recorded for RD-1 #1" in body(answer)
        await member.quiet_period(1)
        assert not [e for e in member.events(room, bot_id) if "not recorded" in body(e)]
    finally:
        bot.stop(timeout=20)


async def test_after_an_outage_each_person_is_paged_again_then_their_backup_then_reported(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast, synapse: Any
) -> None:
    """The homeserver is away for the bot across two people's deadlines. Once it is back, for
    each person: the repeat comes before their backup's page, and the room hears that the unit
    could not be reached only a full window after the backup was paged."""
    window = 5
    gateway = Gateway(synapse.base_url)
    await gateway.start()
    try:
        async with bot_running(paging_env | {"ICC_HOMESERVER": gateway.url}):
            _ref, room = await activation_room(people, cast)
            member = people["member"]
            await member.send(room, f"!icc page partner,deputy Dyke breach drill --ack {window}s")
            dms = {
                role: await page_received(people[role], cast, "Dyke breach drill")
                for role in ("partner", "deputy")
            }
            gateway.down = True
            await asyncio.sleep(window + 7)  # both deadlines fall due while the bot is cut off
            assert gateway.refused > 0
            gateway.down = False
            for person, backup, name in (
                ("partner", "dg", "Partner"),
                ("deputy", "lead", "Deputy"),
            ):
                report = await member.wait_for(
                    room,
                    lambda e, n=name: f"could not reach {n}" in body(e),
                    sender=cast.bot.user_id,
                    timeout=60,
                )
                first, repeat = await pages(people[person], dms[person][0], cast, 2)
                _backup_dm, backup_page = await page_received(people[backup], cast, "PG-1")
                assert sent_at(first) < sent_at(repeat) < sent_at(backup_page) < sent_at(report), (
                    person
                )
                given = sent_at(report) - sent_at(backup_page)
                assert given >= timedelta(seconds=window), f"{backup} had {given} to answer"
    finally:
        await gateway.stop()


class HeldKeys:
    """The room keys a person's client shares with `user_id`, held back and delivered later, as
    to-device messages crossing federation can arrive well after the events they open."""

    def __init__(self, person: Person, user_id: str) -> None:
        self.person, self.user_id = person, user_id
        self.held: list[dict[str, Any]] = []
        olm = person.client.olm
        share = olm.share_group_session_parallel

        def share_but_hold(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
            for sharing_with, to_device in share(*args, **kwargs):
                held = to_device["messages"].pop(self.user_id, None)
                if held:
                    self.held.append(held)
                yield sharing_with, to_device

        olm.share_group_session_parallel = share_but_hold

    async def deliver(self) -> None:
        del self.person.client.olm.share_group_session_parallel  # the client's own again
        client = self.person.client
        for messages in self.held:
            content = {"messages": {self.user_id: messages}}
            method, path, data = Api.to_device(
                client.access_token, "m.room.encrypted", content, secrets.token_hex(8)
            )
            response = await client.send(method, path, data)
            assert response.status == 200, await response.text()
        assert self.held, "no room key was held back"


@pytest.mark.parametrize("key", ["after-the-restart", "while-down"])
async def test_encrypted_commands_and_updates_sent_while_the_bot_was_killed_are_handled(
    key: str, paging_env: dict[str, str], synapse: Any, cast: Cast, tmp_path: Path
) -> None:
    """In an encrypted activation room, a round's update (a thread reply) and a command are sent
    while the bot is down, each under a new room key that reaches the bot's device while it is
    down, or only once it is back and has read the events (held back on the way). Both are
    handled: the command answered, the update in the round's summary — never a "could not
    decrypt". Played three times, killed at different moments."""
    bot = BotProcess(paging_env | E2EE, tmp_path / "bot.log")
    await bot.start()
    lead = await encrypting(synapse, cast, "lead", tmp_path / "lead")
    member = await encrypting(synapse, cast, "member", tmp_path / "member")
    bot_id = cast.bot.user_id
    try:
        _ref, room = await activation_room({"lead": lead, "member": member}, cast)
        for person in (lead, member):
            await person.sync(timeout_ms=0)  # the client knows the room is encrypted
        for number, pause in enumerate((0.0, 1.5, 0.3), start=1):
            await member.send(room, "!icc round now --with member --window 20s")
            prompt = await member.wait_for(
                room, lambda e, n=number: f"ROUND RD-{n} #1" in body(e), sender=bot_id, timeout=20
            )
            await asyncio.sleep(pause)
            bot.kill()
            held = []
            for person in (member, lead):
                person.client.invalidate_outbound_session(room)
                if key == "after-the-restart":
                    held.append(HeldKeys(person, bot_id))
            update = f"Sandbags at the Meuse, round {number}"
            await member.send(room, update, **in_thread(prompt))
            command = await lead.send(room, "!icc status")
            await bot.start()
            if held:
                await asyncio.sleep(2)  # the bot has read both events, and cannot open them
                for keys in held:
                    await keys.deliver()
            answer = await lead.wait_for_reply(room, command, bot_id, timeout=40)
            assert "could not decrypt" not in body(answer)
            summary = await member.wait_for(
                room, lambda e, n=number: f"RD-{n} #1 closed" in body(e), sender=bot_id, timeout=40
            )
            assert f"Member: {update}" in body(summary), (body(summary), bot.log())
        said = [body(e) for e in lead.events(room, bot_id)]
        assert not [text for text in said if "could not decrypt" in text]
    finally:
        await lead.close()
        await member.close()
        bot.stop(timeout=20)


async def test_a_kill_between_publishing_one_time_keys_and_saving_them_loses_no_message(
    bot_env: dict[str, str],
    synapse: Any,
    cast: Cast,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bot's first one-time keys reach the homeserver, and the bot dies before it hears back
    (the homeserver's answer is never handled). After the restart a partner's new device claims
    one of those keys to send its room key: the bot must still read the partner's command."""
    handle_response = Olm.handle_response

    def dies_on_key_upload(self: Olm, response: Any) -> None:
        if isinstance(response, KeysUploadResponse):
            raise RuntimeError("killed before the upload's answer was handled")
        handle_response(self, response)

    env = bot_env | E2EE
    monkeypatch.setattr(Olm, "handle_response", dies_on_key_upload)
    running = RunningBot(load_settings(env))
    await running.start()
    await running.stop()
    monkeypatch.setattr(Olm, "handle_response", handle_response)
    await running.start()
    lead = await encrypting(synapse, cast, "lead", tmp_path / "lead")
    try:
        room = await lead.create_room(invite=[cast.bot.user_id], encrypted=True)
        await lead.wait_for(room, bot_joined(cast.bot.user_id))
        reply = await lead.ask(room, "!icc help", cast.bot.user_id)
        assert "Commands you can use" in body(reply)
    finally:
        await lead.close()
        await running.stop()
