"""The guard against classified text: this channel carries unclassified information only.

Any free text carrying an EU, NATO or national classification marking is refused before it is
stored or sent. The list is configurable (`ICC_CLASSIFIED_MARKINGS`, comma-separated); matching
ignores case, accents' absence and spacing, and needs whole words, so `secretary` is no marking.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

DEFAULT_MARKINGS = (
    # EU classified information (Council Decision 2013/488/EU), in its French and English forms.
    "RESTREINT UE",
    "EU RESTRICTED",
    "CONFIDENTIEL UE",
    "EU CONFIDENTIAL",
    "SECRET UE",
    "EU SECRET",
    "TRÈS SECRET UE",
    "EU TOP SECRET",
    # NATO.
    "NATO RESTRICTED",
    "NATO CONFIDENTIAL",
    "NATO SECRET",
    "COSMIC TOP SECRET",
    # National equivalents: Belgium, France, Germany, the Netherlands, Luxembourg.
    "DIFFUSION RESTREINTE",
    "BEPERKTE VERSPREIDING",
    "CONFIDENTIEL DÉFENSE",
    "SECRET DÉFENSE",
    "TRÈS SECRET DÉFENSE",
    "VS-NUR FÜR DEN DIENSTGEBRAUCH",
    "VS-NfD",
    "VS-VERTRAULICH",
    "STAATSGEHEIM",
    "DEPARTEMENTAAL VERTROUWELIJK",
    "STG GEHEIM",
    "STG CONFIDENTIEEL",
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


class ClassificationGuard:
    def __init__(self, markings: Iterable[str] = DEFAULT_MARKINGS) -> None:
        self.markings = tuple(markings)
        patterns = [
            r"[\s\-]+".join(re.escape(word) for word in re.split(r"[\s\-]+", _fold(m)))
            for m in self.markings
        ]
        self._pattern = re.compile(r"(?<!\w)(" + "|".join(patterns) + r")(?!\w)")
        self._by_folded = {_fold(m): m for m in self.markings}

    def marking_in(self, text: str) -> str | None:
        """The marking (as configured) that `text` carries, or None."""
        if not self.markings:
            return None
        found = self._pattern.search(_fold(text))
        if found is None:
            return None
        key = re.sub(r"[\s\-]+", " ", found.group(1))
        return next(
            (m for folded, m in self._by_folded.items() if re.sub(r"[\s\-]+", " ", folded) == key),
            found.group(1),
        )
