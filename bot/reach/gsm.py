"""Keeping an SMS to one message: the GSM 03.38 alphabet, and a text shortened to fit.

One SMS holds 160 characters of the GSM alphabet (a few, such as `€` and `[`, count twice), but
only 70 once a single character outside it appears (the whole message is then sent as UCS-2).
So typographic punctuation is written the GSM way first (’ as ', « » as ", … as ...) and letters
GSM lacks lose their accent (ê → e, ç → c); what still does not fit (Cyrillic, an emoji) makes it
a UCS-2 message. Then only the page's own words are shortened, ending in "...", until the
message fits; the ref, the TLP and the way to acknowledge never are. When that would leave fewer
than `MIN_EXCERPT` characters of the page's words (a long ICC_PUBLIC_URL, the exercise marker,
words in a script GSM cannot write), the message goes in several parts instead, which phones
show as one message, with the page's words cut to `LONG_EXCERPT` characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")  # two characters each: an escape, then the character
ONE_GSM, ONE_UCS2 = 160, 70  # characters (UTF-16 units for UCS-2) in a single SMS
PART_GSM, PART_UCS2 = 153, 67  # in each part of a concatenated SMS (the rest is its header)
ELLIPSIS = "..."
MIN_EXCERPT = 20  # characters of the page's words one SMS must keep, or it takes several
LONG_EXCERPT = 60  # characters of the page's words kept when the message takes several SMS
GSM_SPELLING = {
    **dict.fromkeys("‘’‚‛′`´", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−", "-"),
    **dict.fromkeys("\u00a0\u2007\u202f\u2009\u200a\t", " "),
    "…": ELLIPSIS,
    "•": "-",
    "œ": "oe",
    "Œ": "OE",
}


def gsm_spelling(text: str) -> str:
    """`text` with what GSM can write in its place: punctuation its way, accents GSM lacks
    dropped from the letter. Characters with no such spelling stay as they are."""
    out = []
    for char in text:
        if char in GSM_BASIC or char in GSM_EXTENDED:
            out.append(char)
        elif char in GSM_SPELLING:
            out.append(GSM_SPELLING[char])
        else:
            base = unicodedata.normalize("NFKD", char)[:1]
            out.append(base if base and base in GSM_BASIC and base.isalpha() else char)
    return "".join(out)


def is_gsm(text: str) -> bool:
    return all(char in GSM_BASIC or char in GSM_EXTENDED for char in text)


def length(text: str) -> int:
    """The message's length as the network counts it: GSM characters (extended ones twice), or
    UTF-16 units when it must go as UCS-2."""
    if is_gsm(text):
        return len(text) + sum(char in GSM_EXTENDED for char in text)
    return len(text.encode("utf-16-le")) // 2


def parts(text: str) -> int:
    """How many SMS the message takes."""
    units = length(text)
    one, part = (ONE_GSM, PART_GSM) if is_gsm(text) else (ONE_UCS2, PART_UCS2)
    return 1 if units <= one else -(-units // part)


def excerpt(words: str, keep: int) -> str:
    """The first `keep` characters of `words`, cut back to a word's end where one is near, then
    "..."; `words` itself when it is no longer than `keep`."""
    if len(words) <= keep:
        return words
    cut = words[:keep]
    space = cut.rfind(" ")
    if space >= keep * 2 // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + ELLIPSIS


def one_sms(render: Callable[[str], str], words: str) -> str:
    """The message `render` makes around `words` (the page's own words), written the GSM way,
    with `words` shortened until the message fits one SMS. When one SMS cannot hold the rest
    with at least `MIN_EXCERPT` characters of `words`, it goes in several parts, with `words`
    cut to `LONG_EXCERPT`."""
    words = " ".join(gsm_spelling(words).split())  # one line: an SMS is read at a glance

    def made(keep: int) -> str:
        return gsm_spelling(render(excerpt(words, keep)))

    if parts(whole := made(len(words))) == 1:
        return whole
    fits, too_long = MIN_EXCERPT, len(words)  # bounds of the longest excerpt that fits
    if parts(made(fits)) > 1:
        return made(LONG_EXCERPT)
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        fits, too_long = (middle, too_long) if parts(made(middle)) == 1 else (fits, middle)
    return made(fits)
