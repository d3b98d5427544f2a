"""The role gate as a table: every command × every role below what it needs × every kind of room
(activation room, DG platform room, direct messages, an unrelated room), against the bot's real
command runner and database (the fast tier: what it sends is recorded, tests/support/desk.py).
Each is refused with a clear message, and the refusals together change nothing in the
database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat.registry import Registry
from bot.commands import all_families
from bot.directory.roles import Role
from tests.support.databases import BACKENDS
from tests.support.desk import desk_running
from tests.support.invariants import counts

ROLES = {"stranger": Role.STRANGER, "partner": Role.PARTNER, "dg": Role.DG, "member": Role.MEMBER}
DG_ROOM = "!dg-platform:desk.test"


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_every_command_refused_below_its_role_in_every_kind_of_room(
    tmp_path: Path, database_url: str
) -> None:
    env = {"ICC_DG_ROOM": DG_ROOM, "ICC_RATE_LIMIT": "10000/1m", "ICC_STRANGER_BUDGET": "10000/1m"}
    async with desk_running(tmp_path, database_url, env=env) as desk:
        desk.joins(DG_ROOM, "dg", "stranger", "partner", "member", "lead")
        everyone = ("lead", "member", "partner", "dg", "deputy", "stranger")
        unrelated = desk.room(*everyone)
        _ref, activation_room, _ = await desk.open_activation(
            "lead", unrelated, "!icc activate Access"
        )
        desk.joins(activation_room, "partner", "dg")  # the lead may invite partners
        rooms = {
            "activation room": activation_room,
            "DG room": DG_ROOM,
            "unrelated room": unrelated,
        }
        dms = {role: desk.room(role, name=f"dm {role}") for role in ("partner", "dg", "member")}

        before = await counts(desk.services.db)
        tried = 0
        for spec in Registry(all_families()):
            for name, role in ROLES.items():
                if role.allows(spec.role):
                    continue
                places = dict(rooms)
                if role is Role.STRANGER:  # one in it silences the bot there (test_hostile_rooms)
                    del places["activation room"]
                if name in dms:
                    places["DM"] = dms[name]
                for kind, room_id in places.items():
                    reply = await desk.ask(name, room_id, f"!icc {spec.example}")
                    expected = (
                        "not in the ICC directory"
                        if role is Role.STRANGER
                        else f"needs the {spec.role.value} role"
                    )
                    assert expected in reply.body, (
                        f"{spec.name} by {name} in the {kind}: {reply.body}"
                    )
                    tried += 1
        assert tried > 100
        assert await counts(desk.services.db) == before
