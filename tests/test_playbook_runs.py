"""Applying a playbook (SPEC, "Actions and playbooks"): at activation or to a running one, its
checklist becomes actions with owners and due times, its pages go out, its rounds are scheduled —
each an ordinary action, page or round, logged as coming from the playbook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import action_store, activation_store
from bot.storage.models import TimerKind
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast, paging_directory
from tests.support.databases import BACKENDS
from tests.support.desk import Desk, desk_running
from tests.support.matrix_people import Person, body
from tests.support.rooms import DM, open_activation, shared_room

DRILL = """\
name: {en: Border convoy drill, fr: Exercice convoi à la frontière}
description: {en: A convoy of evacuees reaches the border.}
level: information-sharing
tlp: green
exercise: true
checklist:
  - owner: lead
    due: +15m
    text: {en: Call the border police, fr: Appeler la police des frontières}
  - owner: partner
    due: +1h
    text: {en: Count the convoy, fr: Compter le convoi}
  - owner: member
    due: +2h
    text: {en: Brief the DG}
pages:
  - targets: [ercc]
    ack: 10m
    text:
      en: "Convoy at the border: are your teams ready?"
      fr: "Convoi à la frontière : vos équipes sont-elles prêtes ?"
rounds:
  - when: every 2h
    with: [member, deputy]
    agenda: [Convoy position, Shelters]
"""


@pytest.fixture
async def drill_desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    """The paging desk with one playbook, `drill`, in its configuration."""
    folder = tmp_path / "config" / "playbooks"
    folder.mkdir(parents=True)
    (folder / "drill.yaml").write_text(DRILL)
    async with desk_running(tmp_path, database_url, contacts=paging_directory(desk_cast())) as desk:
        yield desk


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_activate_with_a_playbook_opens_as_it_says_and_makes_its_items(
    drill_desk: Desk,
) -> None:
    desk = drill_desk
    ref, room, reply = await desk.open_activation(
        "lead", desk.room("lead", "member"), '!icc activate "Convoy" --playbook drill'
    )
    assert ref.startswith("EX-")  # the playbook's exercise flag
    assert "Playbook drill (Border convoy drill) applied: 3 actions (A-1, A-2, A-3)" in reply.body
    assert "1 page (PG-1), 1 round" in reply.body
    async with desk.services.db.session() as session:
        activation = await activation_store.by_room(session, room)
        assert activation is not None
        assert (activation.level, activation.tlp) == ("information-sharing", "TLP:GREEN")
        actions = await action_store.of_activation(session, activation.id)
    assert [(a.owners, a.source) for a in actions] == [
        (["lead"], "playbook:drill"),
        (["partner"], "playbook:drill"),
        (["lead"], "playbook:drill"),  # `member` is who applied it: here the lead
    ]
    assert actions[1].text == "Compter le convoi"  # in the owner's language
    assert abs((actions[1].due_at - activation.opened_at).total_seconds() - 3600) < 1
    assert len([t for t in await desk.armed(TimerKind.PAGE_STEP) if ":pg1:" in t.key]) == 2
    assert await desk.armed(TimerKind.ROUND_RUN)


async def test_what_a_playbook_made_fires_like_anything_else(drill_desk: Desk) -> None:
    desk = drill_desk
    _ref, room, _ = await desk.open_activation(
        "lead", desk.room("lead", "member"), '!icc activate "Convoy" --playbook drill'
    )
    prompts = [r.body for r in await desk.fire("round.run") if "COORDINATION ROUND" in r.body]
    assert len(prompts) == 1
    assert "1. Convoy position" in prompts[0]
    assert "3. Open actions: A-1 Lead; A-2 Partner; A-3 Lead" in prompts[0]
    await desk.fire(TimerKind.ACTION_STEP, key="A-2:chase")
    assert any("ÉCHÉANCE — ACTION A-2" in t for t in desk.messenger.texts(desk.dm_of("partner")))
    await desk.fire(TimerKind.PAGE_STEP, key=":pg1:partner:")
    assert any("PG-1" in t and "Partner" in t for t in desk.messenger.texts(room))


async def test_a_playbook_page_reaches_each_person_in_their_language(drill_desk: Desk) -> None:
    """The page has its text in English and French: the partner (fr) reads the French, its
    repeat too; the DG (de), for whom it has none, the English, as the room and the logbook do."""
    desk = drill_desk
    _ref, room, _ = await desk.open_activation(
        "lead", desk.room("lead", "member"), '!icc activate "Convoy" --playbook drill'
    )
    french, english = "Convoi à la frontière : vos équipes", "Convoy at the border: are your"
    partner_dm, dg_dm = desk.dm_of("partner"), desk.dm_of("dg")
    assert [t for t in desk.messenger.texts(partner_dm) if french in t]
    assert not [t for t in desk.messenger.texts(partner_dm) if english in t]
    assert [t for t in desk.messenger.texts(dg_dm) if english in t]
    await desk.fire(TimerKind.PAGE_STEP, key=":pg1:partner:")
    assert len([t for t in desk.messenger.texts(partner_dm) if french in t]) == 2
    assert [t for t in desk.messenger.texts(room) if english in t]  # the page's board
    async with desk.services.db.session() as session:
        entries = await activation_store.log_entries(session, 1)
    assert any(e.text.startswith("PG-1 sent to 2: Convoy at the border") for e in entries)


async def test_a_playbook_run_in_a_running_activation_says_who_the_member_is(
    drill_desk: Desk,
) -> None:
    desk = drill_desk
    _ref, room, _ = await desk.open_activation("lead", desk.room("lead", "member"))
    await desk.say("lead", room, "!icc handover deputy")
    reply = await desk.ask("deputy", room, "!icc playbook run drill")
    assert "3 actions" in reply.body
    listed = await desk.ask("member", room, "!icc actions")
    assert "A-3 Deputy" in listed.body  # `member`: the lead who ran it


async def test_each_made_item_is_logged_as_coming_from_the_playbook(drill_desk: Desk) -> None:
    desk = drill_desk
    _ref, _room, _ = await desk.open_activation(
        "lead", desk.room("lead", "member"), '!icc activate "Convoy" --playbook drill'
    )
    async with desk.services.db.session() as session:
        entries = await activation_store.log_entries(session, 1)
    texts = [e.text for e in entries]
    assert any(
        t.startswith("A-2 for Partner") and t.endswith("(from playbook:drill)") for t in texts
    )
    assert any(t.startswith("Playbook drill applied: 3 actions, 1 pages, 1 rounds") for t in texts)


async def test_an_unknown_playbook_is_refused_and_nothing_is_opened(drill_desk: Desk) -> None:
    desk = drill_desk
    refused = await desk.ask(
        "lead", desk.room("lead", "member"), '!icc activate "Convoy" --playbook drlil'
    )
    assert "No playbook `drlil`; there are: drill." in refused.body
    async with desk.services.db.session() as session:
        assert not await activation_store.by_status(session, ["open"])


async def test_playbooks_lists_them_in_the_readers_language(drill_desk: Desk) -> None:
    desk = drill_desk
    listed = await desk.ask("member", desk.room("member"), "!icc playbooks")
    assert "drill — Border convoy drill · information-sharing · TLP:GREEN · exercise" in listed.body
    assert "3 actions, 1 pages, 1 rounds" in listed.body


@pytest.mark.synapse
async def test_a_playbook_at_activation_and_at_run_time_on_the_homeserver(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    folder = Path(paging_env["ICC_CONFIG_DIR"]) / "playbooks"
    folder.mkdir()
    (folder / "drill.yaml").write_text(DRILL)
    async with bot_running(paging_env):
        control = await shared_room(people, cast)
        _ref, room, reply = await open_activation(
            people["lead"], control, cast, '!icc activate "Convoy" --playbook drill'
        )
        assert "applied: 3 actions (A-1, A-2, A-3), 1 page (PG-1), 1 round" in body(reply)
        partner = people["partner"]
        dm = await partner.join_invited(DM, timeout=20)
        await partner.wait_for(
            dm, lambda e: "Compter le convoi" in body(e), sender=cast.bot.user_id
        )
        await partner.wait_for(  # the page, in French as the partner reads it
            dm, lambda e: "Convoi à la frontière" in body(e), sender=cast.bot.user_id
        )
        lead = people["lead"]
        await lead.wait_for_invite(room)
        await lead.join(room)
        again = await lead.ask(room, "!icc playbook run drill", cast.bot.user_id)
        assert "applied: 3 actions (A-4, A-5, A-6), 1 page (PG-2), 1 round" in body(again)
