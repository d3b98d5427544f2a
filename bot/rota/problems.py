"""What is wrong with a rota file, one line each, worded like the directory's problems:
the file, the line where it is known, the entry, the field, what to do — and for a name that
is not a person, the handle most likely meant."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RotaProblem:
    """One problem (or warning) in one rota file."""

    file: str
    line: int | None
    entry: str | None
    field: str | None
    message: str
    meant: str | None = None  # the handle (or key) most likely meant

    def __str__(self) -> str:
        parts = [self.file, f"line {self.line}" if self.line else None, self.entry, self.field]
        return ": ".join([part for part in parts if part] + [self.message])


@dataclass
class Findings:
    """The problems found in one file so far; readers add to it and go on reading."""

    file: str
    problems: list[RotaProblem] = field(default_factory=list)

    def add(
        self,
        line: int | None,
        entry: str | None,
        field: str | None,
        message: str,
        meant: str | None = None,
    ) -> None:
        self.problems.append(RotaProblem(self.file, line, entry, field, message, meant))
