"""The Matrix recovery-key format: what Element shows as a "security key".

32 bytes, prefixed with 0x8B 0x01 and followed by a parity byte (the XOR of all the bytes before
it), in base58 (Bitcoin's alphabet), written in groups of four characters. The prefix tells a
recovery key from any other base58 string; the parity byte catches most typing mistakes. Base58
is an encoding, not cryptography, and no maintained package the bot already depends on has it:
the few lines are here.
"""

from __future__ import annotations

from functools import reduce

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
PREFIX = b"\x8b\x01"
KEY_BYTES = 32


class RecoveryKeyError(ValueError):
    """Not a recovery key: the message says what is wrong with it (never the key itself)."""


def encode(key: bytes) -> str:
    """`key` (32 bytes) as a recovery key: `EsT… …` in groups of four."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a recovery key holds {KEY_BYTES} bytes, not {len(key)}")
    text = _b58encode(PREFIX + key + bytes([_parity(PREFIX + key)]))
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def decode(text: str) -> bytes:
    """The 32 bytes a recovery key holds; spaces and line breaks are ignored."""
    compact = "".join(text.split())
    try:
        raw = _b58decode(compact)
    except ValueError:
        raise RecoveryKeyError("it has characters a recovery key never has") from None
    if len(raw) != len(PREFIX) + KEY_BYTES + 1 or not raw.startswith(PREFIX):
        raise RecoveryKeyError("it is not a recovery key (wrong length or prefix)")
    if _parity(raw) != 0:
        raise RecoveryKeyError("its check digit is wrong (a typing mistake?)")
    return raw[len(PREFIX) : -1]


def _parity(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)  # ValueError for a foreign character
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
