"""A scripted activation on the real homeserver, for the after-action review (issue 24, Tests):
played once by the bot as it runs, on its own clock, with the delays the script chose measured as
they happened, so that a test can check each figure of the review against them.

The script (`play_on_homeserver`), every delay real and short, the whole under a minute:

- the lead activates; 3 s later the member pages partner, dg, deputy and silent with a 6 s ack
  window; dg acks ~1 s after the pages were delivered (when the board shows), partner ~2 s,
  deputy ~3 s (each as measured); silent never answers: paged again at 6 s, unreachable at 12 s;
- the member asks partner and dg for input due in 3 s; partner answers at once, dg ~2 s late;
- an action for partner due in 3 s is done ~2 s late;
- two rounds with member and deputy, windows of 3 s: only member reports in the first, both in
  the second; the level goes to full;
- a lesson becomes an improvement action for partner due 8 s later; the lead closes;
- every participant is asked for feedback by DM; partner (signed) and dg (anonymous) answer; the
  re-post that makes due, an hour on, is brought forward to now; the improvement action is
  chased after the close.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.devserver import DevServer
from bot.settings import load_settings
from bot.storage.models import TimerKind
from tests.support.background import BackgroundLoop
from tests.support.bots import RunningBot, make_bot_env
from tests.support.cast import Cast, new_cast, paging_directory
from tests.support.databases import fresh_database
from tests.support.matrix_people import EventPredicate, Person, body
from tests.support.reading import posted_file
from tests.support.review import pdf_text
from tests.support.rooms import dm_text, open_activation, page_received, shared_room

ACK_WINDOW_S = 6
ACK_AFTER = {"dg": 1.0, "partner": 2.0, "deputy": 3.0}  # seconds after the pages' delivery
DUE_S = 3  # the input's deadline and the action's due time, from when they were asked
LATE_S = 2.0  # how late dg's input and partner's action come
ROUND_WINDOW_S = 3
TOLERANCE_S = 1.0  # the bot's clock reads a command a moment after the script sent it


@dataclass
class Scripted:
    """What the script did (delays as measured) and what the bot made of it."""

    ref: str = ""
    room: str = ""
    first_page_s: float = 0.0
    ack_s: dict[str, float] = field(default_factory=dict)  # handle → latency as measured
    input_late_s: float = 0.0
    action_late_s: float = 0.0
    close: str = ""
    figures: dict[str, Any] = field(default_factory=dict)  # version 1's JSON
    markdown: str = ""  # version 1
    pdf: str = ""  # version 1's PDF as pdftotext reads it
    feedback_pdf: str = ""  # version 2's
    feedback_markdown: str = ""
    asked: dict[str, str] = field(default_factory=dict)  # handle → the feedback request
    thanks: dict[str, str] = field(default_factory=dict)  # handle → the answer to `feedback`
    lesson: str = ""  # the improvement action's ref
    chase: str = ""  # its chase, after the close


def scenario_directory(cast: Cast) -> dict[str, Any]:
    """The paging directory (tests/support/cast.py) with `silent`, a partner on Matrix (the cast's
    stranger account) who never answers and has no backup."""
    directory = paging_directory(cast)
    directory["contacts"].append(
        {
            "handle": "silent",
            "name": "Silent",
            "organisation": "nccn",
            "matrix_id": cast.stranger.user_id,
            "role": "partner",
        }
    )
    return directory


def saying(text: str) -> EventPredicate:
    return lambda event: text in body(event)


async def _until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


async def _ack_after(
    person: Person, cast: Cast, ref: str, since: float, delay: float
) -> tuple[str, float]:
    """`ack` the page `delay` s after `since` (in the DM it came to); (the DM, the latency as
    measured: `delay`, unless the page took longer to reach them)."""
    dm, _page = await page_received(person, cast, ref, timeout=20)
    await _until(since + delay)
    sent = time.time()
    await person.ask(dm, "!icc ack", cast.bot.user_id)
    return dm, sent - since


async def _hurry(running: RunningBot, kind: str) -> None:
    """Bring the armed timers of `kind` forward to now on the running bot, which fires them
    as it would at their time (the feedback's re-post is due an hour on: the script does not
    wait for it)."""
    assert running.app is not None
    assert running.app.services is not None
    services = running.app.services
    async with services.db.session() as session:
        await services.scheduler.hurry(session, kind, "")


def played_on_homeserver(synapse: DevServer, directory: Path) -> Scripted:
    """The script played on a background event loop (a module's tests share one run), on a
    fresh SQLite database in `directory`."""
    background = BackgroundLoop()
    background.start()
    try:
        with fresh_database("sqlite", directory) as url:
            scripted: Scripted = background.call(
                play_on_homeserver(synapse, directory, url), timeout=240
            )
            return scripted
    finally:
        background.close()


async def play_on_homeserver(synapse: DevServer, directory: Path, database_url: str) -> Scripted:
    cast = new_cast(synapse)
    env = make_bot_env(directory, synapse, cast, database_url)
    config = Path(env["ICC_CONFIG_DIR"]) / "directory.yaml"
    config.write_text(yaml.safe_dump(scenario_directory(cast)))
    people: dict[str, Person] = {}
    running = RunningBot(load_settings(env))
    try:
        for role in ("lead", "member", "partner", "dg", "stranger", "deputy"):
            account = getattr(cast, role)
            people[role] = await Person.login(synapse.base_url, account.user_id, account.password)
        await running.start()
        return await _play(people, cast, running)
    finally:
        await running.stop()
        for person in people.values():
            await person.close()


async def _play(people: dict[str, Person], cast: Cast, running: RunningBot) -> Scripted:
    lead, member, partner, dg, deputy = (
        people[role] for role in ("lead", "member", "partner", "dg", "deputy")
    )
    bot = cast.bot.user_id
    done = Scripted()
    control = await shared_room(people, cast)

    # The activation, and its first page a few seconds later.
    activated = time.time()
    done.ref, room, _ = await open_activation(lead, control, cast, '!icc activate "Meuse flooding"')
    done.room = room
    for person in (member, lead, deputy):
        await person.wait_for_invite(room)
        await person.join(room)
    await _until(activated + 3)
    done.first_page_s = time.time() - activated
    await member.send(
        room, f"!icc page partner,dg,deputy,silent Pumps needed --ack {ACK_WINDOW_S}s"
    )
    # The bot measures from the pages' delivery, which its board follows: so does the script.
    board = await member.wait_for(room, lambda e: "PG-1 · 0/4 acknowledged" in body(e), sender=bot)
    delivered = board["origin_server_ts"] / 1000
    acked = await asyncio.gather(
        *(
            _ack_after(people[who], cast, "PG-1", delivered, delay)
            for who, delay in ACK_AFTER.items()
        )
    )
    dms = {who: dm for who, (dm, _latency) in zip(ACK_AFTER, acked, strict=True)}
    done.ack_s = {who: latency for who, (_dm, latency) in zip(ACK_AFTER, acked, strict=True)}

    # An input and an action, each due in DUE_S seconds: dg's input and the action come late.
    asked = time.time()
    await member.ask(room, f"!icc ask partner,dg How many pumps can you send? --by {DUE_S}s", bot)
    assigned = time.time()
    await member.ask(room, f"!icc action Call Paris --owner partner --due {DUE_S}s", bot)
    await dm_text(partner, cast, "RQ-1", dms["partner"])
    await partner.ask(dms["partner"], "!icc input RQ-1 Four pumps", bot)
    await dm_text(dg, cast, "RQ-1", dms["dg"])
    await _until(asked + DUE_S + LATE_S)
    answered = time.time()
    await dg.ask(dms["dg"], "!icc input RQ-1 Two pumps", bot)
    done.input_late_s = answered - asked - DUE_S
    finished = time.time()
    await partner.ask(dms["partner"], "!icc done A-1 called", bot)
    done.action_late_s = finished - assigned - DUE_S

    # Two rounds: the deputy misses the first.
    for number, reporters in enumerate(((member,), (member, deputy)), start=1):
        await member.send(room, f"!icc round now --with member,deputy --window {ROUND_WINDOW_S}s")
        await member.wait_for(room, saying(f"COORDINATION ROUND RD-{number}"), sender=bot)
        for person in reporters:
            await person.ask(room, f"!icc update {person.user_id} reporting", bot)
        await member.wait_for(room, saying(f"RD-{number} #1 closed"), sender=bot, timeout=20)
    await lead.ask(room, "!icc level full", bot)

    # Silent's escalation runs out; a lesson; the close.
    await member.wait_for(room, lambda e: "could not reach Silent" in body(e), sender=bot)
    lesson = await member.ask(
        room, "!icc log Update the ERCC number --lesson --owner partner --due 8s", bot
    )
    found = re.search(r"Improvement action (A-\d+)", body(lesson))
    assert found, body(lesson)
    done.lesson = found.group(1)
    done.close = body(await lead.ask(room, "!icc close Drill over", bot))
    stem = f"{done.ref}-review-v1"
    done.figures = json.loads(await posted_file(member, room, cast, f"{stem}-figures.json", 30))
    done.markdown = (await posted_file(member, room, cast, f"{stem}.md")).decode()
    done.pdf = pdf_text(await posted_file(member, room, cast, f"{stem}.pdf"))

    # Feedback: everyone asked by DM; two answer; the review's next version has them.
    # (Silent never joined the DM of the page: their account joins now, to read what came.)
    for who, role in [(h, h) for h in ("lead", "member", *ACK_AFTER)] + [("silent", "stranger")]:
        _dm, done.asked[who] = await dm_text(people[role], cast, "feedback <1-5>", dms.get(who))
    for who, line in (("partner", "4 Clear pages --signed"), ("dg", "2 Too many DMs")):
        thanks = await people[who].ask(dms[who], f"!icc feedback {line}", bot)
        done.thanks[who] = body(thanks)
    await _hurry(running, TimerKind.REVIEW_REPOST)
    stem = f"{done.ref}-review-v2"
    done.feedback_markdown = (await posted_file(member, room, cast, f"{stem}.md", 30)).decode()
    done.feedback_pdf = pdf_text(await posted_file(member, room, cast, f"{stem}.pdf"))

    # The lesson's improvement action, chased after the close.
    _dm, done.chase = await dm_text(
        partner, cast, f"ÉCHÉANCE — ACTION {done.lesson}", dms["partner"]
    )
    return done


def near(figure: float | None, seconds: float, tolerance: float = TOLERANCE_S) -> bool:
    """A figure of the review is what the script measured, give or take `tolerance`."""
    return figure is not None and abs(figure - seconds) <= tolerance


def seconds_read(pattern: str, text: str) -> list[int]:
    """The durations `pattern`'s groups find in `text` (`5s`, `1m05s`, as the review writes
    them), in seconds."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    durations = [re.fullmatch(r"(?:(\d+)m)?(\d+)s", group) for group in found.groups()]
    assert all(durations), found.groups()
    return [int(d.group(1) or 0) * 60 + int(d.group(2)) for d in durations if d]
