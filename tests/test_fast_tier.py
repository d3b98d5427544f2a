"""The fast tier's own parts (tests/support/recording.py, tests/support/desk.py): the recording
messenger overrides everything of `Messenger` that reaches nio, refuses what the homeserver
would, and the desk runs commands and timers through the real services."""

from __future__ import annotations

import inspect
import re

import pytest

from bot.matrix.send import MatrixSendError, Messenger, NewRoom, RoomNotPrivate
from bot.render import Message
from tests.support.desk import Desk
from tests.support.recording import NoClient, RecordingMessenger


def test_every_method_that_reaches_nio_is_recorded_instead() -> None:
    """A method added to Messenger that uses the client must be overridden by the recording
    messenger, or the fast tier would fail on it (NoClient) rather than pass silently."""
    reaching = {
        name
        for name, member in vars(Messenger).items()
        if inspect.isfunction(member)
        and re.search(
            r"self\._client\.(?!user_id\b)|self\._client\b(?!\.)", inspect.getsource(member)
        )
        and name != "__init__"
    }
    assert reaching  # the check reads the real source
    assert reaching <= set(vars(RecordingMessenger)), reaching - set(vars(RecordingMessenger))
    with pytest.raises(AssertionError, match="reached the nio client"):
        NoClient("@bot:desk.test").room_send  # noqa: B018


async def test_the_recording_messenger_refuses_what_the_homeserver_would() -> None:
    messenger = RecordingMessenger("@bot:desk.test", trusted=lambda user: user != "@x:elsewhere")
    room = messenger.add_room(members=["@lead:desk.test"])
    first = await messenger.notice(room, Message("hi", "<p>hi</p>"), txn_id="t1")
    again = await messenger.notice(room, Message("hi", "<p>hi</p>"), txn_id="t1")
    assert first == again  # one transaction, one event
    assert [r.body for r in messenger.events()] == ["hi"]
    with pytest.raises(MatrixSendError, match="M_TOO_LARGE"):
        await messenger.notice(room, Message("x" * 70_000, "x"))
    with pytest.raises(MatrixSendError, match="M_FORBIDDEN"):
        await messenger.notice("!nowhere:desk.test", Message("hi", "hi"))
    own = await messenger.create_room(
        NewRoom("DM", "", ["@x:elsewhere"], admins=[], encrypted=True, invite_power=100)
    )
    with pytest.raises(RoomNotPrivate):
        await messenger.notice(own, Message("secret", "secret"))
    messenger.remove_member(own, "@x:elsewhere")
    await messenger.notice(own, Message("secret", "secret"))
    assert messenger.room_with("DM", "@y:desk.test", encrypted=True) is None


async def test_a_command_answered_and_a_timer_fired_on_demand(paging_desk: Desk) -> None:
    room = paging_desk.room("lead", "member")
    opened = await paging_desk.ask("lead", room, '!icc activate "Meuse"')
    activation_room = re.search(r"https://matrix.to/#/(!\S+)", opened.body).group(1)  # type: ignore[union-attr]
    sent = await paging_desk.say("member", activation_room, "!icc page partner Pumps? --ack 10m")
    page = next(r for r in sent if r.msgtype == "m.text")
    assert page.mentions == [paging_desk.who("partner")]
    steps = await paging_desk.armed("page.step")
    assert steps
    escalated = await paging_desk.fire("page.step")
    assert any(r.mentions == [paging_desk.who("dg")] for r in escalated)  # the partner's backup
