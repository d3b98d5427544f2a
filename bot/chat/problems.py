"""Validation that reports everything at once."""

from __future__ import annotations


class ProblemList(Exception):
    """Every problem found in one pass, one line each, so an operator fixes them in one go."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
