"""What is wrong with a playbook, one line each, worded like the directory's and the rotas':
the file, the line, the item (`checklist[2]`), the field, what to do — and for a misspelt key
or target, the one most likely meant."""

from __future__ import annotations

from dataclasses import dataclass

from bot.directory.shape import Where

SECTIONS = ("checklist", "pages", "rounds")  # the lists of items
TEXT_FIELDS = ("name", "description", "text")  # text per language: `text.fr` names one of them


@dataclass(frozen=True)
class PlaybookProblem:
    """One problem (or warning) in one playbook file; `path` is where in the file, as pydantic
    says it (`("checklist", 2, "owner")`), for its line and so a field is reported once."""

    file: str
    line: int | None
    item: str | None  # checklist[2], pages[0], rounds[1]; None: the file's own keys
    field: str | None
    message: str
    meant: str | None = None  # the key or target most likely meant
    path: Where = ()

    def __str__(self) -> str:
        parts = [self.file, f"line {self.line}" if self.line else None, self.item, self.field]
        return ": ".join([part for part in parts if part] + [self.message])


def place(path: Where) -> tuple[str | None, str | None]:
    """The item and field `path` is about: `("pages", 0, "targets", 1)` → `pages[0]`,
    `targets` (its line says which target); `("checklist", 2, "text", "fr")` → `checklist[2]`,
    `text.fr`."""
    if len(path) > 1 and path[0] in SECTIONS and isinstance(path[1], int):
        item: str | None = f"{path[0]}[{path[1]}]"
        rest = path[2:]
    else:
        item, rest = None, path
    if not rest:
        return item, None
    field = str(rest[0])
    if field in TEXT_FIELDS and len(rest) > 1 and isinstance(rest[1], str):
        field = f"{field}.{rest[1]}"
    return item, field
