"""The live situation board (issue 23): `board` and `board revoke` on the desk, and the page in
Debian's Chromium (through Playwright), served by the bot's real web endpoint on loopback — what
it shows, how fast it follows, what it refuses, where it loads from, and how it fits a wall
screen, a phone and a sheet of A4. The last test runs the bot against the real homeserver."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.reach.links import link_key, sign
from bot.storage import activation_store
from bot.storage import situation_board_store as board_store
from tests.support.board import (
    PHONE,
    PUBLIC_URL,
    WALL,
    board_page,
    board_path,
    next_event,
    seeded_activation,
    shows,
)
from tests.support.bots import bot_running
from tests.support.cast import Cast, desk_cast, paging_directory, with_everyone
from tests.support.desk import Desk, desk_running
from tests.support.matrix_people import Person, body
from tests.support.reach import paged, web_endpoint
from tests.support.rooms import DM, activation_room, page_received

LIVE_WITHIN = 2.0  # seconds: SPEC, "Situation board"


@pytest.fixture
async def board_desk(tmp_path: Path, database_url: str) -> AsyncIterator[Desk]:
    contacts = paging_directory(desk_cast())
    env = {"ICC_PUBLIC_URL": PUBLIC_URL}
    async with desk_running(tmp_path, database_url, contacts=contacts, env=env) as desk:
        yield desk


@pytest.fixture
async def web(board_desk: Desk) -> AsyncIterator[str]:
    async with web_endpoint(board_desk) as url:
        yield url


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots are kept, printed to be looked at."""
    folder = tmp_path_factory.mktemp("board-screenshots", numbered=False)
    print(f"\nsituation board screenshots in {folder}")
    return folder


async def activation_of(desk: Desk, ref: str) -> int:
    async with desk.services.db.session() as session:
        found = await activation_store.by_ref(session, ref)
    assert found is not None
    return found.id


# -- the commands -----------------------------------------------------------------------------------


async def test_board_sends_the_link_by_direct_message_and_never_in_a_room(
    board_desk: Desk,
) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    answer = await desk.ask("member", room, "!icc board")
    assert "in your direct messages" in answer.body
    dm = desk.dm_of("member")
    assert any(f"{PUBLIC_URL}/board/" in text for text in desk.messenger.texts(dm))
    elsewhere = [r for r in desk.messenger.events() if r.room_id != dm and "/board/" in r.text]
    assert elsewhere == []


async def test_a_board_link_is_logged_with_who_asked_for_it(board_desk: Desk) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    await desk.say("member", room, "!icc board")
    async with desk.services.db.session() as session:
        activation = await activation_store.by_room(session, room)
        assert activation is not None
        entries = await activation_store.log_entries(
            session, activation.id, kinds=["system.board_link"]
        )
    [entry] = entries
    assert entry.author == desk.who("member")
    assert "sent to Member by direct message" in entry.text
    assert "/board/" not in entry.text


async def test_board_without_a_public_url_says_links_are_off(desk: Desk) -> None:
    room = await paged(desk, "partner", "Sandbags for Visé?")
    answer = await desk.ask("member", room, "!icc board")
    assert "Board links are off" in answer.body
    assert "ICC_PUBLIC_URL" in answer.body


async def test_board_revoke_is_refused_to_a_member_and_changes_nothing(board_desk: Desk) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    refused = await desk.ask("member", room, "!icc board revoke")
    assert "icc-lead" in refused.body
    async with desk.services.db.session() as session:
        activation = await activation_store.by_room(session, room)
        assert activation is not None
        assert await board_store.epoch(session, activation.id) == 0


async def test_the_demo_console_gets_a_logged_link_to_each_running_activation(
    board_desk: Desk, web: str
) -> None:
    """What `icc-bot demo` prints: a working link per activation not closed, each logged."""
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    [(ref, url)] = await desk.services.boards.console_links()
    assert url.startswith(f"{PUBLIC_URL}/board/")
    async with (
        aiohttp.ClientSession() as http,
        http.get(web + url.removeprefix(PUBLIC_URL)) as response,
    ):
        assert response.status == 200
        assert ref in await response.text()
    async with desk.services.db.session() as session:
        activation = await activation_store.by_room(session, room)
        assert activation is not None
        [entry] = await activation_store.log_entries(
            session, activation.id, kinds=["system.board_link"]
        )
    assert "operator" in entry.text


# -- refusals over HTTP -----------------------------------------------------------------------------


async def test_a_tampered_link_shows_nothing_of_the_activation(board_desk: Desk, web: str) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    async with aiohttp.ClientSession() as http:
        for url in (web + tampered, web + tampered + "/events"):
            async with http.get(url) as response:
                assert response.status == 404
                shown = await response.text()
                assert "Meuse" not in shown
                assert "Sandbags" not in shown


async def test_a_revoked_link_shows_nothing_of_the_activation(board_desk: Desk, web: str) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    revoked = await desk.ask("lead", room, "!icc board revoke")
    assert "revoked" in revoked.body
    async with aiohttp.ClientSession() as http, http.get(web + path) as response:
        assert response.status == 403
        assert "Meuse" not in await response.text()


async def test_a_link_stops_when_its_activation_closes(board_desk: Desk, web: str) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    await desk.say("lead", room, "!icc close Water receding")
    async with aiohttp.ClientSession() as http, http.get(web + path + "/events") as response:
        assert response.status == 403
        assert "Meuse" not in await response.text()


async def test_an_acknowledgement_link_never_opens_a_board(board_desk: Desk, web: str) -> None:
    """Same signing, another key: the token of a partner's ack link, made to look like a board
    token, is refused."""
    desk = board_desk
    await paged(desk, "partner", "Sandbags for Visé?")
    row_token = sign(link_key(desk.settings), 1)  # activation 1's first row: id 1
    number, _, mac = row_token.partition(".")
    async with aiohttp.ClientSession() as http:
        for token in (f"{number}.0.{mac}", row_token):
            async with http.get(f"{web}/board/{token}") as response:
                assert response.status == 404


async def test_the_page_allows_only_its_own_script_and_style_and_sets_no_cookie(
    board_desk: Desk, web: str
) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    async with aiohttp.ClientSession() as http, http.get(web + path) as response:
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
        nonce = re.search(r"script-src 'nonce-([\w-]+)'", policy)
        page = await response.text()
    assert nonce, policy
    assert "default-src 'none'" in policy
    assert f"style-src 'nonce-{nonce.group(1)}'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe" not in policy
    assert page.count(f'nonce="{nonce.group(1)}"') == 2  # the one style, the one script
    assert "Set-Cookie" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_typed_text_is_shown_as_text_never_as_html(board_desk: Desk, web: str) -> None:
    desk = board_desk
    typed = '<img src="https://evil.example/x.png"> {{ 7*7 }} <script>alert(1)</script>'
    room = await paged(desk, "partner", typed)
    path = await board_path(desk, room)
    async with aiohttp.ClientSession() as http, http.get(web + path) as response:
        page = await response.text()
    assert "&lt;img src=&#34;https://evil.example/x.png&#34;&gt; {{ 7*7 }}" in page
    assert "<img" not in page
    assert "alert(1)</script>" not in page


# -- live, over server-sent events ------------------------------------------------------------------


async def test_a_dropped_board_catches_up_when_it_reconnects(board_desk: Desk, web: str) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    events = web + await board_path(desk, room) + "/events"
    async with aiohttp.ClientSession() as http:
        async with http.get(events) as stream:
            name, first = await next_event(stream.content)
            assert (name, "0/1 acknowledged" in first) == ("board", True)
        await desk.say("partner", desk.dm_of("partner"), "!icc ack")  # while it is away
        async with http.get(events) as stream:
            name, again = await next_event(stream.content)
    assert name == "board"
    assert "1/1 acknowledged" in again


async def test_a_storm_of_acks_reaches_an_open_board_as_a_few_updates(
    tmp_path: Path, database_url: str
) -> None:
    """A hundred acks one after another: the board follows them in a handful of updates, the
    last one showing every ack."""
    directory = with_everyone(paging_directory(desk_cast()), 100, organisation="ercc")
    env = {"ICC_PUBLIC_URL": PUBLIC_URL}
    async with (
        desk_running(tmp_path, database_url, contacts=directory, env=env) as desk,
        web_endpoint(desk) as web,
        aiohttp.ClientSession() as http,
    ):
        room = await paged(desk, "everyone", "Are your teams deployable?")
        async with http.get(web + await board_path(desk, room) + "/events") as stream:
            await next_event(stream.content)
            updates: list[str] = []

            async def follow() -> None:
                while "100/100 acknowledged" not in (updates or [""])[-1]:
                    updates.append((await next_event(stream.content, timeout=10))[1])

            following = asyncio.create_task(follow())
            for n in range(100):
                person = f"@p{n:03d}:desk.test"
                await desk.say(person, desk.dm_of(person), "!icc ack")
            await asyncio.wait_for(following, 10)
    print(f"100 acks, {len(updates)} updates of the open board")
    assert len(updates) <= 20, f"{len(updates)} updates for 100 acks"


# -- in Chromium ------------------------------------------------------------------------------------


async def test_the_board_shows_what_spec_lists_for_a_seeded_activation(
    board_desk: Desk, web: str, artefacts: Path
) -> None:
    seeded = await seeded_activation(board_desk)
    path = await board_path(board_desk, seeded.room)
    async with board_page(web + path, viewport=WALL) as (page, _requested):
        await page.screenshot(path=artefacts / "wall.png")
        text = await page.text_content("#board") or ""
        tlp_colour = await page.eval_on_selector(".tlp", "e => getComputedStyle(e).color")
        overdue = await page.inner_text(".action.overdue")
        chart = await page.inner_html("svg.chart")
    expected = [
        "EXERCISE EXERCISE EXERCISE",  # the exercise banner
        "TLP:AMBER",
        f"{seeded.ref} Meuse flooding",  # ref and title
        "information-sharing",  # the level, and its history:
        "monitoring",
        "Lead",  # the lead
        "Open for",  # the age
        "PG-1",  # pages, each person's state and channel
        "1/2 acknowledged",
        "acknowledged in 2m14s (Matrix)",
        "Partner",
        "seen",
        "PG-2",
        "delivered; ack by",
        "Matrix sent",
        "RQ-1",  # open requests and who answered
        "Answered: Partner",
        "Waiting for: Dg",
        "A-1",  # actions
        "A-2",
        "RD-1",  # next rounds
        "Sitrep 1",  # the last sitrep
        "Water at Liège 30 cm above the alert level",  # the logbook
        "Evacuate the quays of Visé",
        "Acknowledgement latency per organisation",  # the chart
    ]
    missing = [item for item in expected if item not in text]
    assert missing == [], text
    assert tlp_colour == "rgb(255, 192, 0)"  # FIRST's TLP:AMBER
    assert "OVERDUE" in overdue
    assert "Draft the consular advice" in overdue
    assert "ERCC" in chart
    assert "2m14s" in chart


async def test_an_ack_appears_on_an_open_board_within_two_seconds_without_reload(
    board_desk: Desk, web: str
) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    async with board_page(web + path) as (page, _requested):
        assert "0/1 acknowledged" in await page.inner_text("#board")
        await page.evaluate("window.stillTheSamePage = true")
        await desk.say("partner", desk.dm_of("partner"), "!icc ack")
        acked = time.monotonic()
        await shows(page, "1/1 acknowledged", within=LIVE_WITHIN)
        shown = time.monotonic() - acked
        assert await page.evaluate("window.stillTheSamePage === true")
    print(f"ack on the board {shown:.2f} s after it was recorded")


async def test_revoking_blanks_an_open_board(board_desk: Desk, web: str) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    async with board_page(web + path) as (page, _requested):
        await desk.say("lead", room, "!icc board revoke")
        await page.wait_for_selector(".gone", timeout=LIVE_WITHIN * 1000)
        text = await page.inner_text("body")
        title = await page.title()
    assert "does not open a board" in text
    assert "Meuse" not in text + title
    assert "Sandbags" not in text


async def test_no_request_leaves_the_bots_origin(board_desk: Desk, web: str) -> None:
    seeded = await seeded_activation(board_desk)
    path = await board_path(board_desk, seeded.room)
    async with board_page(web + path) as (page, requested):
        await board_desk.say("partner", board_desk.dm_of("partner"), "!icc input RQ-1 Et Huy")
        await shows(page, "version 2", within=5)
    assert requested, "the page made no request at all"
    assert [url for url in requested if not url.startswith(web + "/")] == []
    assert any(url.startswith(web + path + "/events") for url in requested)


async def test_a_phone_reads_the_board_without_horizontal_scroll(
    board_desk: Desk, web: str, artefacts: Path
) -> None:
    seeded = await seeded_activation(board_desk)
    path = await board_path(board_desk, seeded.room)
    async with board_page(
        web + path, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    ) as (page, _requested):
        await page.screenshot(path=artefacts / "phone.png")
        await page.screenshot(path=artefacts / "phone-full.png", full_page=True)
        widths = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
    scroll_width, client_width = widths
    assert client_width == PHONE["width"]
    assert scroll_width <= client_width


async def test_a_typical_activation_fits_the_wall_screen_without_scrolling(
    board_desk: Desk, web: str
) -> None:
    seeded = await seeded_activation(board_desk)
    path = await board_path(board_desk, seeded.room)
    async with board_page(web + path, viewport=WALL) as (page, _requested):
        size = await page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight,"
            " parseFloat(getComputedStyle(document.documentElement).fontSize)]"
        )
    width, height, font_px = size
    assert (width, height <= WALL["height"]) == (WALL["width"], True), size
    assert font_px >= 19  # read from across the room


async def test_times_are_in_the_chosen_zone_and_utc_and_the_choice_stays_in_the_url(
    board_desk: Desk, web: str
) -> None:
    desk = board_desk
    room = await paged(desk, "partner", "Sandbags for Visé?")
    path = await board_path(desk, room)
    async with board_page(web + path, zone="America/New_York") as (page, _requested):
        assert page.url.endswith("?tz=America%2FNew_York")  # the viewer's own zone, kept
        assert re.search(r"sent \d\d:\d\d New York \(\d\d:\d\dZ\)", await page.inner_text("#board"))
        await page.select_option("#tz", "Europe/Brussels")
        await page.wait_for_url(re.compile(r"\?tz=Europe%2FBrussels$"))
        await page.wait_for_selector("#live.on")
        text = await page.inner_text("#board")
    assert re.search(r"sent \d\d:\d\d Brussels \(\d\d:\d\dZ\)", text)


async def test_the_board_prints_on_a4(board_desk: Desk, web: str, artefacts: Path) -> None:
    seeded = await seeded_activation(board_desk)
    path = await board_path(board_desk, seeded.room)
    async with board_page(web + path, viewport={"width": 794, "height": 1123}) as (page, _req):
        await page.emulate_media(media="print")
        fits = await page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
        controls = await page.is_visible("#controls")
        await page.screenshot(path=artefacts / "print.png", full_page=True)
        pdf = await page.pdf(format="A4", print_background=True, path=artefacts / "board.pdf")
    assert fits
    assert not controls  # the zone picker is not printed
    assert pdf.startswith(b"%PDF")


# -- on the real homeserver ---------------------------------------------------------------------------


@pytest.mark.synapse
async def test_an_ack_on_the_homeserver_appears_on_an_open_board_within_two_seconds(
    paging_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    """The running bot on the session's Synapse with its web endpoint on: a member's `board`
    link arrives by DM, opens in Chromium, and the partner's `ack` typed in their DM shows on
    it within two seconds, without a reload."""
    env = paging_env | {"ICC_PUBLIC_URL": PUBLIC_URL, "ICC_WEB_ADDR": "127.0.0.1:0"}
    async with bot_running(env) as running:
        _ref, room = await activation_room(people, cast)
        member, partner = people["member"], people["partner"]
        await member.send(room, "!icc page partner Sandbags for Visé? --ack 10m")
        partner_dm, _page = await page_received(partner, cast, "Sandbags for Visé?")
        await member.send(room, "!icc board")
        member_dm = await member.join_invited(DM)
        sent = await member.wait_for(
            member_dm, lambda e: "/board/" in body(e), sender=cast.bot.user_id
        )
        link = re.search(rf"{re.escape(PUBLIC_URL)}(/board/\S+)", body(sent))
        assert link, body(sent)
        assert running.app is not None
        assert running.app.web is not None
        url = f"http://127.0.0.1:{running.app.web.port}{link.group(1)}"
        async with board_page(url) as (page, _requested):
            await page.evaluate("window.stillTheSamePage = true")
            await partner.send(partner_dm, "!icc ack")
            typed = time.monotonic()
            await shows(page, "1/1 acknowledged", within=LIVE_WITHIN)
            shown = time.monotonic() - typed
            assert await page.evaluate("window.stillTheSamePage === true")
    print(f"ack typed on the homeserver, on the board {shown:.2f} s later")
