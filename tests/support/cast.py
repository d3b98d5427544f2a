"""The people of a test: their accounts (`Account`, `Cast`), registered on the test homeserver
or named on the desk's, and the directories they make (the cast's own, `paging_directory`)."""

from __future__ import annotations

import secrets
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from bot.devserver import DevServer
from tests.support.recording import SERVER


@dataclass(frozen=True)
class Account:
    user_id: str
    password: str
    localpart: str


def register_account(synapse: DevServer, name: str) -> Account:
    """Register a fresh user on the test homeserver (unique localpart) and return its Account."""
    localpart = f"{name}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(12)
    return Account(synapse.register(localpart, password), password, localpart)


@dataclass
class Cast:
    """The people of one test: the bot's account and one user per role, plus a stranger."""

    bot: Account
    lead: Account
    member: Account
    partner: Account
    dg: Account
    stranger: Account
    deputy: Account  # a second icc-lead, to hand over to

    def directory(self) -> dict[str, Any]:
        contacts = [
            ("lead", self.lead, "icc-lead"),
            ("member", self.member, "icc-member"),
            ("partner", self.partner, "partner"),
            ("dg", self.dg, "dg"),
            ("deputy", self.deputy, "icc-lead"),
        ]
        return {
            "organisations": [{"key": "nccn", "name": "NCCN", "kind": "national", "country": "BE"}],
            "contacts": [
                {
                    "handle": handle,
                    "name": handle.title(),
                    "organisation": "nccn",
                    "matrix_id": account.user_id,
                    "role": role,
                    "languages": ["en"],
                    "timezone": "Europe/Brussels",
                    "groups": ["icc"],
                }
                for handle, account, role in contacts
            ],
            "groups": {"icc": "ICC"},
        }


def new_cast(synapse: DevServer) -> Cast:
    names = ("bot", "lead", "member", "partner", "dg", "stranger", "deputy")
    return Cast(*(register_account(synapse, name) for name in names))


def desk_cast() -> Cast:
    """The same people as `cast`, with Matrix IDs on no homeserver (the desk's)."""
    names = ("bot", "lead", "member", "partner", "dg", "stranger", "deputy")
    return Cast(*(Account(f"@{name}:{SERVER}", "", name) for name in names))


def people_of(cast: Cast) -> dict[str, str]:
    """Role -> Matrix ID, for `Desk.say("lead", …)`."""
    roles = ("lead", "member", "partner", "dg", "stranger", "deputy")
    return {role: getattr(cast, role).user_id for role in roles}


def paging_directory(cast: Cast, *, ghost: str | None = None) -> dict[str, Any]:
    """The cast with backups: partner ← dg, deputy ← lead; ERCC is an organisation of two."""
    directory = cast.directory()
    directory["organisations"].append(
        {"key": "ercc", "name": "ERCC", "kind": "eu", "country": "EU"}
    )
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["partner"].update(organisation="ercc", backup="dg", languages=["fr", "en"])
    by_handle["dg"].update(organisation="ercc", languages=["de"])
    by_handle["deputy"].update(backup="lead", languages=["nl"])
    if ghost:
        directory["contacts"].append(
            {
                "handle": "ghost",
                "name": "Ghost",
                "organisation": "nccn",
                "matrix_id": ghost,
                "role": "partner",
            }
        )
    return directory


def with_everyone(
    directory: dict[str, Any],
    people: int,
    *,
    name: str = "Partner {n}",
    organisation: str = "nccn",
    **extra: object,
) -> dict[str, Any]:
    """`directory` with `people` partners more (`p000`…, on the desk's homeserver), all in the
    group `everyone`: a page to many. `extra` fields are given to each; a callable is called
    with the person's number (`email=lambda n: f"duty-{n:03d}@partners.example"`)."""
    directory["groups"] = {**directory.get("groups", {}), "everyone": "Everyone"}
    directory["contacts"] += [
        {
            "handle": f"p{n:03d}",
            "name": name.format(n=n),
            "organisation": organisation,
            "matrix_id": f"@p{n:03d}:{SERVER}",
            "groups": ["everyone"],
            # (each its own copy: a list shared by all would be written as a YAML alias)
            **{
                key: value(n) if callable(value) else deepcopy(value)
                for key, value in extra.items()
            },
        }
        for n in range(people)
    ]
    return directory
