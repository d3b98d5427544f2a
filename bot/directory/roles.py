"""Who may do what: `icc-lead` ⊃ `icc-member` ⊃ `partner`; `dg` is a partner in the DG room."""

from __future__ import annotations

from enum import Enum


class Role(Enum):
    STRANGER = "stranger"
    PARTNER = "partner"
    DG = "dg"
    MEMBER = "icc-member"
    LEAD = "icc-lead"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, required: Role) -> bool:
        """Does a sender with this role meet a command's `required` role?

        `dg` ranks as a partner, so a DG may do what a partner may; a command that needs `dg`
        specifically is open to DGs and to the ICC (who run the DG platform), not to partners.
        """
        if required is Role.DG:
            return self in (Role.DG, Role.MEMBER, Role.LEAD)
        return self.rank >= required.rank

    @classmethod
    def parse(cls, text: str) -> Role:
        for role in cls:
            if role.value == text and role is not Role.STRANGER:
                return role
        raise ValueError(f"`{text}` is not a role: icc-lead, icc-member, partner, dg")


_RANK = {Role.STRANGER: 0, Role.PARTNER: 1, Role.DG: 1, Role.MEMBER: 2, Role.LEAD: 3}

ANYONE = Role.STRANGER
