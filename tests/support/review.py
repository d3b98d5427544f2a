"""An activation played on the desk at known times (time-machine moves the clock), for the
after-action review's figures: what was done, and when, so that a test can check each figure
against it."""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import time_machine

from bot.storage.models import TimerKind
from tests.support.cast import Cast
from tests.support.desk import Desk
from tests.support.matrix_people import Person
from tests.support.rooms import dm_text

START = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
REF = "ICC-2026-001"

# The feedback request's first words in each language of the paging directory's people.
FEEDBACK_HEADER = {
    "partner": "RETOUR D'EXPÉRIENCE",  # fr
    "dg": "RÜCKMELDUNG",  # de
    "deputy": "FEEDBACK — hoe is het verlopen?",  # nl
    "lead": "FEEDBACK — how did it go?",
    "member": "FEEDBACK — how did it go?",
}
FEEDBACK_ASKED = ("lead", "member", "deputy")  # the ICC roster: asked whatever they did


async def asked_for_feedback(person: Person, cast: Cast, dm: str | None = None) -> str:
    """The DM room in which the bot asked `person` for feedback (in their language)."""
    role = next(r for r in FEEDBACK_HEADER if getattr(cast, r).user_id == person.user_id)
    room, _text = await dm_text(person, cast, FEEDBACK_HEADER[role], dm)
    return room


@dataclass
class Played:
    """The activation's room, and the review's files as the close posted them."""

    room: str
    markdown: str
    figures: dict[str, Any]
    pdf: bytes
    close: str

    def pdf_text(self) -> str:
        return pdf_text(self.pdf)


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as poppler's `pdftotext` reads it (layout kept, one line per row)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "review.pdf"
        path.write_bytes(pdf)
        done = subprocess.run(
            ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
        )
    return done.stdout


async def play(desk: Desk, *, close: bool = True) -> Played:
    """The script, its clock moved by time-machine:

    - 08:00:00 the lead opens the activation; 08:01:30 the member pages partner, dg, deputy and
      ghost (ghost's server does not exist: unreachable); dg acks 30 s after, partner 2 min,
      deputy 5 min (ERCC: partner, dg → median 1m15s, slowest 2m00s; NCCN: deputy, ghost);
    - the member asks partner and dg for input, due in 10 min: partner answers at 5 min, dg at
      15 min (5 min late);
    - an action due in 20 min done by partner at 30 min (10 min late); another left open;
    - two rounds with member and deputy: only member reports in the first, both in the second;
    - the level goes to full; the lead closes, and the participants are asked for feedback."""
    with time_machine.travel(START, tick=False) as clock:
        control = desk.room("lead", "member", "partner", "dg", "deputy")
        _ref, room, _ = await desk.open_activation("lead", control)
        clock.move_to(START + timedelta(seconds=90))
        await desk.say("member", room, "!icc page partner,dg,deputy,ghost Pumps needed --ack 30m")
        page_at = START + timedelta(seconds=90)
        for who, after in (("dg", 30), ("partner", 120), ("deputy", 300)):
            clock.move_to(page_at + timedelta(seconds=after))
            await desk.say(who, desk.dm_of(who), "!icc ack")
        asked_at = START + timedelta(minutes=10)
        clock.move_to(asked_at)
        await desk.say("member", room, "!icc ask partner,dg How many pumps can you send? --by 10m")
        await desk.say("member", room, "!icc action Call Paris --owner partner --due 20m")
        await desk.say("member", room, "!icc action Brief the DG --owner dg")
        clock.move_to(asked_at + timedelta(minutes=5))
        await desk.say("partner", desk.dm_of("partner"), "!icc input RQ-1 Four pumps")
        clock.move_to(asked_at + timedelta(minutes=15))
        await desk.say("dg", desk.dm_of("dg"), "!icc input RQ-1 Two pumps")
        clock.move_to(asked_at + timedelta(minutes=30))
        await desk.say("partner", desk.dm_of("partner"), "!icc done A-1 called")
        for reporters in (("member",), ("member", "deputy")):
            await desk.say("lead", room, "!icc round now --with member,deputy --window 30m")
            await desk.fire(TimerKind.ROUND_RUN)
            for who in reporters:
                await desk.say(who, room, f"!icc update {who} reporting")
            await desk.fire(TimerKind.ROUND_CLOSE)
        await desk.say("lead", room, "!icc level full")
        await desk.fire_all(TimerKind.PAGE_STEP)  # ghost's escalation runs out
        closing = ""
        if close:
            clock.move_to(START + timedelta(hours=1))
            closing = (await desk.ask("lead", room, "!icc close Drill over")).body
            await desk.fire(TimerKind.FEEDBACK_ASK)  # the asks the close armed
    if not close:
        return Played(room, "", {}, b"", "")
    return Played(
        room=room,
        markdown=desk.file(room, f"{REF}-review-v1.md").decode(),
        figures=json.loads(desk.file(room, f"{REF}-review-v1-figures.json")),
        pdf=desk.file(room, f"{REF}-review-v1.pdf"),
        close=closing,
    )
