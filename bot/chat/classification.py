"""The guard against classified text: this channel carries unclassified information only.

Any free text carrying an EU, NATO or national classification marking is refused before it is
stored or sent. The list is configurable (`ICC_CLASSIFIED_MARKINGS`, comma-separated). The guard
runs on every text argument of every command, so it is built once and matches with one regex.

Someone who wants classified text through will disguise the marking so that it still *reads* as
one; the guard therefore compares what a reader sees, not the code points. Text and markings are
brought to one canonical form:

- compatibility normalisation (NFKD: NFKC's folding of full-width, mathematical, circled and
  ligature forms, with accents split off) and accents dropped, so `TRES` is `TRÈS`;
- invisible characters removed: every format character (Unicode category Cf: zero-width space,
  joiner and non-joiner, soft hyphen, word joiner, BOM, bidi controls, tags) and the two
  conjoining Hangul fillers; the other two Hangul fillers show as a blank and count as one;
- look-alike letters folded to the Latin letter they are drawn like (Cyrillic `Е`, Greek `Ο`, …),
  from Unicode's confusables data as shipped by `confusable-homoglyphs`, not a table of our own;
- case ignored. Because `I` and `l` are drawn alike and case is ignored, `I`, `L`, `1` and `|`
  are one letter for the guard, and so are `O` and `0`: no real word differs from a marking only
  there, while `CONF1DENTIEL UE` is a disguise.

Matching then needs whole words: `secretary` is no marking, and neither is `SECRETUE` glued
together. Between the words of a marking may stand any run of spaces, punctuation or symbols
(`SECRET_UE`, `SECRET.UE`, `SECRET-UE`, `SECRET • UE`), except clause punctuation (`, ; ! ?`,
brackets, quotes): that is how prose separates words that merely follow each other, so
"a secret, ue" is not read as `SECRET UE` (but "secret. UE" is, a price paid for `SECRET.UE`).

Letter-spacing is a disguise too, so a marking word also matches when a separator (as above)
stands between *every one* of its letters: `S E C R E T UE`, `S.E.C.R.E.T U.E.`. A word split
anywhere else (`SEC RET`) does not match: ordinary words are never split letter by letter, so
prose is not affected.

Right-to-left controls make the displayed order differ from the stored one: a right-to-left
override (RLO, U+202E) shows its span reversed, so RLO then `EU TERCES` displays as `SECRET UE`,
and an embedding with right-to-left marks can swap whole words. When the text holds such a
control, the guard also reads it with each override span reversed, reversed whole, and with its
words in reverse order. This is not the full bidi algorithm; it covers the arrangements that
display a marking from one span.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
from collections.abc import Iterable, Iterator

from confusable_homoglyphs.utils import load  # the package ships no type hints

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

# The default-ignorable characters (DerivedCoreProperties.txt) that are letters, not Cf: the
# Hangul fillers. The conjoining two show as nothing; the other two show as a blank, but NFKD
# turns them into a conjoining one, so they become spaces before it.
_INVISIBLE_LETTERS = "\u115f\u1160"
_BLANK_LETTERS = "\u3164\uffa0"
# Separators between the words (or letters) of a marking: anything that is not a letter or digit,
# but not the clause punctuation with which prose separates words that merely follow each other.
_SEPARATOR = r"(?:[^\w,;!?()\[\]{}\"«»“”„]|_)+"
_NOT_BEFORE = r"(?<![^\W_])"
_NOT_AFTER = r"(?![^\W_])"
# Controls that can make a span display right to left: RLM, ALM, RLE, RLO, RLI, FSI.
_RIGHT_TO_LEFT = re.compile("[\u200f\u061c\u202b\u202e\u2067\u2068]")
# An override's span runs to its PDF (or the closing PDI of an isolate) or the end of the line.
_OVERRIDE_SPAN = re.compile("\u202e([^\u202c\u2069\n]*)")


@functools.cache
def _confusables() -> tuple[dict[str, str], dict[int, str]]:
    """What the guard takes from Unicode's confusables data, as `confusable-homoglyphs` ships
    it: the ASCII letter each listed character is drawn like, upper-cased; and each non-ASCII
    letter or digit that passes for a Latin letter in either case, with that letter.

    The data is read here, once, and only this is kept: loaded whole (as the package's own
    `confusables` module does at import) it holds 7.5 MB, a twentieth of the bot's memory
    (bench/, memory)."""
    data: dict[str, list[dict[str, str]]] = load("confusables.json")
    prototypes: dict[str, str] = {}
    for ch, entries in data.items():
        glyphs = (e["c"] for e in entries if len(e["c"]) == 1 and e["c"] in string.ascii_letters)
        if (glyph := next(glyphs, None)) is not None:
            prototypes[ch] = glyph.upper()

    def look_alike(ch: str) -> str | None:
        """The Latin letter `ch` passes for, in either case: lower-case Cyrillic `т` is `T`."""
        variants = (v for v in (ch, ch.upper(), ch.lower()) if len(v) == 1)
        return next((prototypes[v] for v in variants if v in prototypes), None)

    folds: dict[int, str] = {}
    for ch in {v for key in data for v in (key, key.lower(), key.upper())}:
        foreign = len(ch) == 1 and not ch.isascii() and _is_letter_or_digit(ch)
        if foreign and (latin := look_alike(ch)) is not None:
            folds[ord(ch)] = latin
    return prototypes, folds


def _latin_prototype(ch: str) -> str | None:
    """The ASCII letter Unicode's confusables data says `ch` is drawn like, upper-cased."""
    return _confusables()[0].get(ch)


def _is_letter_or_digit(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


@functools.cache
def _canonical_table() -> dict[int, str | None]:
    """Invisible characters and accents to drop, look-alikes to fold into Latin letters.

    Built once per process (a few tenths of a second: it scans every code point once)."""
    table: dict[int, str | None] = {}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == "Cf" or category[0] == "M":
            table[code] = None
    table |= {ord(ch): None for ch in _INVISIBLE_LETTERS}
    table |= _confusables()[1]
    return table


def _canonical(text: str) -> str:
    """`text` as the guard compares it: see the module docstring.

    One `str.replace` per distinct character to change rather than `str.translate`: a message
    has few distinct characters, and this is three times faster on accented French."""
    if text.isascii():
        return text.upper()
    table = _canonical_table()
    for blank in _BLANK_LETTERS:
        text = text.replace(blank, " ")
    canonical = unicodedata.normalize("NFKD", text)
    for ch in set(canonical):
        if ord(ch) in table:
            canonical = canonical.replace(ch, table[ord(ch)] or "")
    return canonical.upper()


@functools.cache
def _drawn_alike() -> dict[str, str]:
    """For each canonical ASCII character drawn like others, all of them.

    From the confusables data: `I`, `1` and `|` are drawn like `l`, `0` like `O`; with case
    ignored, `I` and `L` become one letter."""
    canonical_ascii = [c for c in string.printable if c == c.upper() and not c.isspace()]

    def key(c: str) -> str:
        return (_latin_prototype(c) or c).upper()

    alike = {c: "".join(o for o in canonical_ascii if key(o) == key(c)) for c in canonical_ascii}
    return {c: others for c, others in alike.items() if len(others) > 1}


def _letter(c: str) -> str:
    """The regex for one canonical character, matching whatever is drawn like it."""
    alike = _drawn_alike().get(c)
    return f"[{re.escape(alike)}]" if alike else re.escape(c)


def _word_pattern(word: str) -> str:
    """A marking word, written whole or with a separator between every one of its letters."""
    letters = [_letter(c) for c in word]
    if len(letters) == 1:
        return letters[0]
    return f"(?:{''.join(letters)}|{_SEPARATOR.join(letters)})"


def _words(marking: str) -> list[str]:
    return re.findall(r"[^\W_]+", _canonical(marking))


def _by_first_letter(markings: Iterable[str]) -> dict[str, list[tuple[str, list[str]]]]:
    """Markings with their canonical words, grouped by the characters their first letter may be
    written with; longest first within a group, so where two match at one place the fuller one
    is named. A marking with no letters at all is left out: it would match everywhere."""
    groups: dict[str, list[tuple[str, list[str]]]] = {}
    for marking in markings:
        if words := _words(marking):
            first = _drawn_alike().get(words[0][0], words[0][0])
            groups.setdefault(first, []).append((marking, words))
    for candidates in groups.values():
        candidates.sort(key=lambda mw: len(" ".join(mw[1])), reverse=True)
    return groups


def _compile(markings: Iterable[str]) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """One regex for all markings, and the marking each of its groups stands for.

    Each group of markings sits behind a lookahead on its first letter, so at a word start only
    the markings that begin with that letter are tried: half the time of a plain alternation."""
    groups = _by_first_letter(markings)
    if not groups:
        return None, ()
    branches = [
        f"(?=[{re.escape(first)}])(?:"
        + "|".join(f"({_SEPARATOR.join(map(_word_pattern, words))})" for _, words in candidates)
        + ")"
        for first, candidates in groups.items()
    ]
    starts = re.escape("".join(groups))
    pattern = f"(?=[{starts}]){_NOT_BEFORE}(?:{'|'.join(branches)}){_NOT_AFTER}"
    named = tuple(marking for candidates in groups.values() for marking, _ in candidates)
    return re.compile(pattern), named


def _readings(text: str) -> Iterator[str]:
    """The canonical text, then, if right-to-left controls may reorder it, how it may display."""
    logical = _canonical(text)
    yield logical
    if _RIGHT_TO_LEFT.search(text) is None:
        return
    yield _canonical(_OVERRIDE_SPAN.sub(lambda span: span.group(1)[::-1], text))
    yield logical[::-1]
    yield " ".join(reversed(logical.split()))


class ClassificationGuard:
    """Finds the classification marking a text carries, however it is disguised."""

    def __init__(self, markings: Iterable[str] = DEFAULT_MARKINGS) -> None:
        self.markings = tuple(markings)
        self._pattern, self._group_marking = _compile(self.markings)
        _canonical_table()  # now, rather than on the first command that is not plain ASCII

    def marking_in(self, text: str) -> str | None:
        """The marking (as configured) that `text` carries, or None."""
        if self._pattern is None:
            return None
        for reading in _readings(text):
            found = self._pattern.search(reading)
            if found is not None and found.lastindex is not None:
                return self._group_marking[found.lastindex - 1]
        return None
