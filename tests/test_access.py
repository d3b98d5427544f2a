"""The role gate as a table: every command × every role below what it needs × every kind of room
(activation room, DG platform room, direct messages, an unrelated room), against the real bot.
Each is refused with a clear message, and the refusals together change nothing in the database."""

from __future__ import annotations

import pytest

from bot.chat.registry import Registry
from bot.commands import all_families
from bot.directory.roles import Role
from tests.conftest import BACKENDS, Cast, bot_running
from tests.invariants import counts
from tests.matrix_people import Person, body
from tests.support.rooms import bot_joined, open_activation, shared_room

pytestmark = pytest.mark.synapse

ROLES = {"stranger": Role.STRANGER, "partner": Role.PARTNER, "dg": Role.DG, "member": Role.MEMBER}


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
async def test_every_command_refused_below_its_role_in_every_kind_of_room(
    bot_env: dict[str, str], people: dict[str, Person], cast: Cast
) -> None:
    dg_room = await people["dg"].create_room(
        invite=[cast.bot.user_id]
        + [people[r].user_id for r in ("stranger", "partner", "member", "lead")],
        name="DG platform",
    )
    for role in ("stranger", "partner", "member", "lead"):
        await people[role].join(dg_room)
    async with bot_running(
        bot_env
        | {"ICC_DG_ROOM": dg_room, "ICC_RATE_LIMIT": "10000/1m", "ICC_STRANGER_BUDGET": "10000/1m"}
    ) as running:
        await people["dg"].wait_for(dg_room, bot_joined(cast.bot.user_id))
        unrelated = await shared_room(people, cast, with_stranger=True)
        _ref, activation_room, _ = await open_activation(
            people["lead"], unrelated, cast, "!icc activate Access"
        )
        await people["lead"].join(activation_room)
        for role in ("partner", "dg"):  # the lead may invite partners; the bot decides
            await people["lead"].client.room_invite(activation_room, people[role].user_id)
        for role in ("partner", "dg", "member"):
            await people[role].join(activation_room)
        rooms = {
            "activation room": activation_room,
            "DG room": dg_room,
            "unrelated room": unrelated,
        }
        dms: dict[str, str] = {}
        for role in ("partner", "dg", "member"):
            dms[role] = await people[role].create_room(invite=[cast.bot.user_id], name=f"dm {role}")
            await people[role].wait_for(dms[role], bot_joined(cast.bot.user_id))

        assert running.app is not None
        db = running.app.services.db  # type: ignore[union-attr]
        before = await counts(db)
        specs = list(Registry(all_families()))
        tried = 0
        for spec in specs:
            for name, role in ROLES.items():
                if role.allows(spec.role):
                    continue
                places = dict(rooms)
                if role is Role.STRANGER:  # one in it silences the bot there (test_hostile_rooms)
                    del places["activation room"]
                if name in dms:
                    places["DM"] = dms[name]
                for kind, room_id in places.items():
                    reply = await people[name].ask(
                        room_id, f"!icc {spec.example}", cast.bot.user_id
                    )
                    expected = (
                        "not in the ICC directory"
                        if role is Role.STRANGER
                        else f"needs the {spec.role.value} role"
                    )
                    assert expected in body(reply), (
                        f"{spec.name} by {name} in the {kind}: {body(reply)}"
                    )
                    tried += 1
        assert tried > 100
        assert await counts(db) == before
