"""The bot's cross-signing identity: three ed25519 keys grown from one secret, kept encrypted.

- **One root, three keys.** A 32-byte random *root* is the whole identity: the master,
  self-signing and user-signing keys are ed25519 keys whose seeds are HKDF-SHA256 of the root,
  each with its own label. Three independent seeds would need three secrets kept and recovered;
  one root derived three ways needs one.
- **The recovery key is the root**, in the Matrix recovery-key format (`bot.matrix.recovery_key`),
  written once to a 0600 file in ICC_DATA_DIR and never overwritten. Given back to a bot whose data
  directory was lost (ICC_RECOVERY_KEY_FILE), it yields the very same public keys, so the identity
  people verified is restored without the homeserver's help (no secret storage on the server,
  nothing re-uploaded, no password needed). It is not an Element security key: Element cannot use
  it, and the bot's account holds no secret storage for one.
- **At rest**, ICC_DATA_DIR/cross-signing.json holds the root sealed with AES-256-GCM, under a key
  derived by PBKDF2-SHA256 from the store key (ICC_STORE_KEY may be a passphrase, hence a slow
  KDF), with a fresh salt and nonce on every write. The public keys sit beside it in clear (for
  `icc-bot crypto status`, which needs no store key) and are bound to the ciphertext as associated
  data, so a file edited to show other keys no longer opens.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from canonicaljson import encode_canonical_json
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from bot.matrix import recovery_key

KEY_FILE = "cross-signing.json"
RECOVERY_FILE = "recovery-key.txt"
USAGES = ("master", "self_signing", "user_signing")
KDF_ITERATIONS = 600_000
FORMAT = 1


class IdentityFileError(RuntimeError):
    """The stored identity exists but cannot be used; the message says what to do."""


def b64(data: bytes) -> str:
    """Unpadded base64, as Matrix writes keys and signatures."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical(obj: dict[str, Any]) -> bytes:
    """What a Matrix signature covers: canonical JSON without `signatures` and `unsigned`."""
    return encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )


def with_signature(
    obj: dict[str, Any], user_id: str, key_id: str, signature: str
) -> dict[str, Any]:
    """A copy of `obj` with one more signature (and without `unsigned`)."""
    signed = {k: v for k, v in obj.items() if k != "unsigned"}
    by_user = {**(obj.get("signatures") or {}).get(user_id, {}), key_id: signature}
    signed["signatures"] = {**(obj.get("signatures") or {}), user_id: by_user}
    return signed


@dataclass(frozen=True)
class Identity:
    user_id: str
    root: bytes = field(repr=False)

    @classmethod
    def generate(cls, user_id: str) -> Identity:
        return cls(user_id, secrets.token_bytes(recovery_key.KEY_BYTES))

    @cached_property
    def _keys(self) -> dict[str, Ed25519PrivateKey]:
        return {usage: Ed25519PrivateKey.from_private_bytes(self._seed(usage)) for usage in USAGES}

    def _seed(self, usage: str) -> bytes:
        label = f"icc-bot cross-signing {usage} key v1".encode()
        return HKDF(SHA256(), length=32, salt=None, info=label).derive(self.root)

    def public(self, usage: str) -> str:
        return b64(self._keys[usage].public_key().public_bytes_raw())

    @property
    def master(self) -> str:
        return self.public("master")

    @property
    def self_signing(self) -> str:
        return self.public("self_signing")

    def sign(self, usage: str, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj` with this identity's `usage` key's signature added."""
        signature = b64(self._keys[usage].sign(canonical(obj)))
        public = self.public(usage)
        return with_signature(obj, self.user_id, f"ed25519:{public}", signature)

    def key_object(self, usage: str) -> dict[str, Any]:
        """The public key as /keys/device_signing/upload takes it; the master key signs the
        other two."""
        public = self.public(usage)
        obj = {"user_id": self.user_id, "usage": [usage], "keys": {f"ed25519:{public}": public}}
        return obj if usage == "master" else self.sign("master", obj)

    def upload_body(self) -> dict[str, Any]:
        return {f"{usage}_key": self.key_object(usage) for usage in USAGES}

    def recovery_key(self) -> str:
        return recovery_key.encode(self.root)


@dataclass(frozen=True)
class StoredKeys:
    """The public half of the key file, readable without the store key."""

    user_id: str
    master: str
    self_signing: str
    recovery_file: Path | None


def key_file(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def save_identity(data_dir: Path, identity: Identity, store_key: str, recovery: Path) -> None:
    """Seal the root in the key file (replaced atomically: a half-written file would be a lost
    identity) and note where its recovery key is."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    sealed = AESGCM(_file_key(store_key, salt)).encrypt(
        nonce, identity.root, _bound(identity.user_id, identity.master, identity.self_signing)
    )
    payload = {
        "format": FORMAT,
        "user_id": identity.user_id,
        "master_key": identity.master,
        "self_signing_key": identity.self_signing,
        "recovery_key_file": str(recovery),
        "kdf": {"name": "pbkdf2-sha256", "iterations": KDF_ITERATIONS, "salt": b64(salt)},
        "nonce": b64(nonce),
        "sealed_root": b64(sealed),
    }
    path = key_file(data_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    tmp.replace(path)


def load_identity(data_dir: Path, user_id: str, store_key: str) -> Identity | None:
    """The stored identity; None when there is none. A file that exists but does not open
    raises: it may open again with the right store key, so it must not be taken for absent."""
    path = key_file(data_dir)
    payload = _read(path)
    if payload is None:
        return None
    try:
        kdf = payload["kdf"]
        if payload["format"] != FORMAT or kdf["name"] != "pbkdf2-sha256":
            raise IdentityFileError(f"{path} has a format this bot does not know")
        key = _file_key(store_key, unb64(kdf["salt"]), int(kdf["iterations"]))
        bound = _bound(payload["user_id"], payload["master_key"], payload["self_signing_key"])
        root = AESGCM(key).decrypt(unb64(payload["nonce"]), unb64(payload["sealed_root"]), bound)
    except InvalidTag:
        raise IdentityFileError(
            f"{path} does not open with ICC_STORE_KEY (another key, or an edited file)"
        ) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise IdentityFileError(f"{path} is damaged ({exc!r})") from None
    if payload["user_id"] != user_id:
        raise IdentityFileError(f"{path} belongs to {payload['user_id']}, not {user_id}")
    return Identity(user_id, root)


def stored_keys(data_dir: Path) -> StoredKeys | None:
    """The public keys and the recovery key's place, as the key file says; None without one."""
    try:
        payload = _read(key_file(data_dir))
        if payload is None:
            return None
        recovery = payload.get("recovery_key_file")
        return StoredKeys(
            payload["user_id"],
            payload["master_key"],
            payload["self_signing_key"],
            Path(recovery) if recovery else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IdentityFileError(f"{key_file(data_dir)} is damaged ({exc!r})") from None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise IdentityFileError(f"{path} is damaged ({exc})") from None
    if not isinstance(payload, dict):
        raise IdentityFileError(f"{path} is damaged (not a JSON object)")
    return payload


def _file_key(store_key: str, salt: bytes, iterations: int = KDF_ITERATIONS) -> bytes:
    kdf = PBKDF2HMAC(SHA256(), length=32, salt=salt, iterations=iterations)
    return kdf.derive(store_key.encode())


def _bound(user_id: str, master: str, self_signing: str) -> bytes:
    return encode_canonical_json({"user_id": user_id, "master": master, "ssk": self_signing})


# -- the recovery key file ------------------------------------------------------------------------

RECOVERY_HEADER = """\
# Recovery key of the cross-signing identity of {user_id}
# (master key {master}).
# Keep a copy somewhere other than this machine. A bot whose data directory is lost gets the same
# identity back when ICC_RECOVERY_KEY_FILE names a file holding it. It is not an Element
# security key. This file is written once and never overwritten.
"""


def write_recovery_key(data_dir: Path, identity: Identity) -> Path:
    """Write the identity's recovery key to a new 0600 file and return its path.

    Never overwrites: `recovery-key.txt` if there is none yet, else (the data directory keeps the
    key of an identity that was replaced) a file named after the new master key, so that the
    operator's copy of the old key and the file never disagree silently."""
    text = RECOVERY_HEADER.format(user_id=identity.user_id, master=identity.master)
    text += identity.recovery_key() + "\n"
    tag = "".join(c for c in identity.master if c.isalnum())[:8]
    for name in (RECOVERY_FILE, f"recovery-key-{tag}.txt"):
        path = data_dir / name
        if holds_root(path, identity.root):
            return path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path
    raise IdentityFileError(f"{data_dir} already has recovery key files for other identities")


def read_recovery_key(path: Path) -> bytes:
    """The root a recovery key file holds (lines starting with # are comments)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return recovery_key.decode(" ".join(ln for ln in lines if not ln.lstrip().startswith("#")))


def holds_root(path: Path, root: bytes) -> bool:
    """Whether the file at `path` is a recovery key file for the identity grown from `root`."""
    try:
        return read_recovery_key(path) == root
    except (OSError, ValueError):
        return False


def recovery_candidates(data_dir: Path, configured: Path | None) -> list[Path]:
    """Where a recovery key may be: the configured file first, then those in the data dir."""
    found = sorted(data_dir.glob("recovery-key*.txt"))
    return [*([configured] if configured else []), *(p for p in found if p != configured)]
