"""The people a rota names, checked against the directory: by handle, or — in a calendar — by
e-mail address.

Contacts have no e-mail field yet (SPEC lists an optional `email`; another issue adds it).
Until then an attendee's address names a contact when its local part, or the whole address, is
a handle (`mailto:amertens@crisis.example` → `amertens`). The addresses contacts will carry are
read in `People.__init__` already (`getattr`, so nothing changes when the field arrives): an
exact address then wins over the local part.
"""

from __future__ import annotations

import re

from bot.directory.model import Directory

_WORD = re.compile(r"[a-z0-9][a-z0-9._\-]*")


class People:
    """The directory's contacts as rota files name them."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory
        self._contacts = directory.contacts
        self._addresses = {
            str(email).strip().lower(): contact.handle
            for contact in directory.contacts.values()
            if (email := getattr(contact, "email", None))
        }

    def handle(self, name: str) -> str | None:
        """The handle `name` is (case and spaces aside), or None."""
        key = name.strip().lower()
        return key if key in self._contacts else None

    def by_address(self, address: str) -> str | None:
        """The contact an e-mail address (`mailto:` or not) stands for, or None."""
        address = address.strip().lower().removeprefix("mailto:")
        if address in self._addresses:
            return self._addresses[address]
        return self.handle(address.split("@", 1)[0]) or self.handle(address)

    def in_text(self, text: str) -> list[str]:
        """The handles written in `text` (`Duty: amertens`, `amertens / jdupont.`), in order."""
        words = (word.rstrip("._-") for word in _WORD.findall(text.lower()))
        return list(dict.fromkeys(word for word in words if word in self._contacts))

    def refusal(self, name: str) -> tuple[str, str | None]:
        """Why `name` is not a person of the directory, and the handle most likely meant."""
        key = name.strip().lower()
        if not key:
            return "names nobody", None
        if key in self._directory.organisations or key in self._directory.groups:
            kind = "an organisation" if key in self._directory.organisations else "a group"
            return f"`{name}` is {kind}, not a person; a rota names people by handle", None
        meant = self._directory.closest(key)
        if meant not in self._contacts:
            return f"unknown person `{name}`", None
        return f"unknown person `{name}`; did you mean `{meant}`?", meant
