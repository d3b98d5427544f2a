"""The after-action review (SPEC, "After-action review"; issue 24): on `close` and on `review`,
the review in Markdown, HTML and PDF with its figures and charts, in the record bundle with the
checksums; participants asked for `feedback` by DM, their answers added to a new version at most
once an hour; lessons (`log … --lesson`) become improvement actions that outlive the
activation."""

from __future__ import annotations

import pytest

from bot.storage.models import TimerKind
from tests.support.desk import Desk
from tests.support.reach import paged


async def opened(desk: Desk) -> str:
    """An activation with one page already out (the partner has a DM room); its room."""
    return await paged(desk, "dg", "Warm-up")


# -- lessons and improvement actions ---------------------------------------------------------------


async def test_a_lesson_becomes_an_improvement_action_of_the_lead_due_in_14_days(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    reply = await desk.ask("member", room, "!icc log The ERCC number was outdated --lesson")
    assert "Improvement action A-1 for Lead, due " in reply.body
    [_remind, chase] = sorted(await desk.armed(TimerKind.ACTION_STEP), key=lambda t: t.due_at)
    assert chase.key == "improve:A-1:chase"
    assert 13.9 < (chase.due_at - chase.created_at).total_seconds() / 86400 < 14.1


async def test_a_lessons_improvement_action_is_chased_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say(
        "member", room, "!icc log Update the ERCC number --lesson --owner partner --due 2h"
    )
    await desk.say("lead", room, "!icc close Drill over")
    await desk.fire(TimerKind.ACTION_STEP, key=":chase")
    dm = desk.dm_of("partner")
    assert len([t for t in desk.messenger.texts(dm) if "ÉCHÉANCE — ACTION A-1" in t]) == 1


async def test_an_ordinary_action_is_not_chased_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc action Call Paris --owner partner --due 2h")
    await desk.say("lead", room, "!icc close Drill over")
    assert not await desk.armed(TimerKind.ACTION_STEP)


async def test_actions_improvement_lists_lessons_across_activations_even_closed(
    paging_desk: Desk,
) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc log Update the ERCC number --lesson --owner partner")
    await desk.say("member", room, "!icc action Call Paris --owner partner --due 2h")
    await desk.say("lead", room, "!icc close Drill over")
    listed = await desk.ask("member", desk.room("member"), "!icc actions --improvement")
    assert "A-1 Partner · ICC-2026-001" in listed.body
    assert "A-2" not in listed.body


async def test_an_improvement_action_is_done_after_the_close(paging_desk: Desk) -> None:
    desk = paging_desk
    room = await opened(desk)
    await desk.say("member", room, "!icc log Update the ERCC number --lesson --owner partner")
    await desk.say("lead", room, "!icc close Drill over")
    done = await desk.ask("partner", desk.dm_of("partner"), "!icc done A-1 updated")
    assert "✅ A-1 done" in done.body
    assert not await desk.armed(TimerKind.ACTION_STEP)


@pytest.mark.parametrize("text", ["--owner partner", "--due 2h"])
async def test_owner_and_due_without_lesson_are_refused(paging_desk: Desk, text: str) -> None:
    desk = paging_desk
    room = await opened(desk)
    refused = await desk.ask("member", room, f"!icc log Pumps arrived {text}")
    assert "go with `--lesson`" in refused.body
