"""Cross-signing the bot's own device, so that clients which exclude devices their owner has not
verified (MSC4153) still share room keys with it and read what it sends.

matrix-nio has no cross-signing. This module adds the little a bot needs, on nio's HTTP session:
`/keys/query` to see the bot's identity as everyone else sees it, `/keys/device_signing/upload`
for the identity's public keys (with the password, through user-interactive auth, when the
homeserver asks for it), and `/keys/signatures/upload` for the device's signature by the
self-signing key and the master key's signature by the device (as Element does). The keys and
how they are kept and recovered: `bot.matrix.identity`.

`bootstrap` runs at every start, after the login and the device-key upload; what it decides is in
`_identity_to_use`. It never stops the bot: a device left unsigned still works with every client
that does not exclude unverified devices, so each failure is logged with what to do, and the bot
carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nio import AsyncClient, AsyncClientConfig, KeysUploadError

from bot.matrix.client import LoginFailed, load_credentials, store_key
from bot.matrix.identity import (
    Identity,
    IdentityFileError,
    StoredKeys,
    canonical,
    holds_root,
    load_identity,
    read_recovery_key,
    recovery_candidates,
    save_identity,
    stored_keys,
    unb64,
    with_signature,
    write_recovery_key,
)
from bot.settings import Settings

log = logging.getLogger(__name__)

QUERY = "/_matrix/client/v3/keys/query"
SIGNING_KEYS = "/_matrix/client/v3/keys/device_signing/upload"
SIGNATURES = "/_matrix/client/v3/keys/signatures/upload"


class CrossSigningUnavailable(RuntimeError):
    """Why the device stays unsigned this time; the message says what would fix it."""


# -- what the homeserver shows ----------------------------------------------------------------


@dataclass(frozen=True)
class ServerView:
    """The bot's identity and device as `/keys/query` shows them to anyone."""

    user_id: str
    device_id: str
    master: dict[str, Any] | None
    self_signing: dict[str, Any] | None
    device: dict[str, Any] | None

    @property
    def master_key(self) -> str | None:
        return _public_of(self.master)

    @property
    def self_signing_key(self) -> str | None:
        return _public_of(self.self_signing)

    def holds(self, identity: Identity) -> bool:
        return (self.master_key, self.self_signing_key) == (
            identity.master,
            identity.self_signing,
        )

    @property
    def device_signed(self) -> bool:
        """The device carries a valid signature by the self-signing key."""
        return signed_by(self.device, self.user_id, self.self_signing_key)

    @property
    def self_signing_signed(self) -> bool:
        """The self-signing key carries a valid signature by the master key."""
        return signed_by(self.self_signing, self.user_id, self.master_key)

    @property
    def chain_valid(self) -> bool:
        """What an MSC4153 client checks: device ← self-signing key ← master key."""
        return self.device_signed and self.self_signing_signed


def signed_by(
    obj: dict[str, Any] | None, user_id: str, public: str | None, key_id: str | None = None
) -> bool:
    """Whether `obj` carries a valid signature by `user_id`'s ed25519 key `public` (key ID
    `ed25519:<public>` unless given, as for a device's own key)."""
    if obj is None or public is None:
        return False
    signature = (obj.get("signatures") or {}).get(user_id, {}).get(key_id or f"ed25519:{public}")
    if not isinstance(signature, str):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(unb64(public)).verify(unb64(signature), canonical(obj))
    except (InvalidSignature, ValueError):
        return False
    return True


def _public_of(key_object: dict[str, Any] | None) -> str | None:
    """The public key of a cross-signing key object (its one `ed25519:<key>` entry)."""
    keys = (key_object or {}).get("keys") or {}
    values = [v for k, v in keys.items() if k.startswith("ed25519:") and isinstance(v, str)]
    return values[0] if len(values) == 1 else None


async def query_own(client: AsyncClient) -> ServerView:
    user_id, device_id = client.user_id, client.device_id
    status, answer = await _post(client, QUERY, {"device_keys": {user_id: [device_id]}})
    if status != 200:
        raise CrossSigningUnavailable(f"/keys/query failed: {_why(status, answer)}")
    device = (answer.get("device_keys") or {}).get(user_id, {}).get(device_id)
    return ServerView(
        user_id,
        device_id,
        (answer.get("master_keys") or {}).get(user_id),
        (answer.get("self_signing_keys") or {}).get(user_id),
        device if isinstance(device, dict) else None,
    )


# -- start-up ------------------------------------------------------------------------------------


async def bootstrap(client: AsyncClient, settings: Settings) -> ServerView | None:
    """Make sure the bot's device is cross-signed by the bot's identity; the homeserver's view
    at the end, or None when encryption is off or it could not be done (logged)."""
    if client.olm is None:
        return None  # no device keys, nothing to sign (ICC_E2EE=false)
    try:
        return await _cross_sign(client, settings)
    except CrossSigningUnavailable as exc:
        log.warning("device %s not cross-signed: %s", client.device_id, exc)
    except IdentityFileError as exc:  # the operator's to fix: it will not mend itself
        log.error("device %s not cross-signed: %s", client.device_id, exc)
    except (ClientError, TimeoutError) as exc:
        log.warning("device %s not cross-signed: homeserver away (%s)", client.device_id, exc)
    except Exception:  # a bug here must not keep the bot from paging people
        log.exception("device %s not cross-signed: unexpected failure", client.device_id)
    log.warning(
        "clients that exclude unverified devices will not share room keys with the bot "
        "until it is; the bot tries again at its next start"
    )
    return None


async def _cross_sign(client: AsyncClient, settings: Settings) -> ServerView:
    if client.should_upload_keys:  # the device must be on the server before it can be signed
        uploaded = await client.keys_upload()
        if isinstance(uploaded, KeysUploadError):
            raise CrossSigningUnavailable(f"device keys not uploaded: {uploaded.message}")
    view = await query_own(client)
    identity, upload = _identity_to_use(settings, view)
    if upload:
        await upload_identity(client, identity, settings.password)
        _keep(settings, identity)
    if not await _sign_own(client, identity, view):
        log.info("device %s cross-signed (master key %s)", client.device_id, identity.master)
        return view
    view = await query_own(client)
    if not view.chain_valid:
        raise CrossSigningUnavailable("the homeserver does not show the signatures just uploaded")
    log.info("device %s now cross-signed (master key %s)", client.device_id, identity.master)
    return view


def _identity_to_use(settings: Settings, view: ServerView) -> tuple[Identity, bool]:
    """The identity to sign the device with, and whether its keys must be uploaded first.

    1. The stored identity is the homeserver's: it.
    2. A recovery key (ICC_RECOVERY_KEY_FILE, then those in the data dir) gives the homeserver's
       identity: restored from it and stored again. This is how a bot whose data directory was
       lost, or the second instance of a pair with data directories of their own, keeps the
       identity people verified: nothing is uploaded, no password is needed.
    3. A stored identity, and none on the homeserver (a first upload that failed, a homeserver
       started afresh): the stored one is uploaded.
    4. A key file that does not open: restored from a recovery key as in 2 if one gives the
       homeserver's identity, else the device stays unsigned. The right ICC_STORE_KEY opens it
       again; a reset here would throw away the identity people verified.
    5. Otherwise a new identity, uploaded with the password, replacing the homeserver's if it has
       one. With nothing stored (a data directory lost without its recovery key) that is a reset,
       logged as a warning. With *another* identity stored, it is logged as an error naming both:
       someone signed in as the bot and reset it, or an instance with a data directory of its own
       and no shared recovery key did. The stored identity cannot be put back (a key ID, once
       replaced, is never accepted again: Synapse answers 500), and the homeserver's is of no use
       without its private keys, so the only way to have the device signed is a new identity; the
       bot is there to reach people, including those whose clients exclude unsigned devices, so it
       takes that way, loudly, rather than stay unsigned until an operator notices.

    Replacing keys the homeserver already has needs the password (user-interactive auth);
    without one, the bot carries on unsigned (`upload_identity`).
    """
    try:
        stored = load_identity(settings.data_dir, view.user_id, store_key(settings))
    except IdentityFileError:
        recovered = _recovered(settings, view)
        if recovered is None:
            raise
        return recovered, False
    if stored is not None and view.holds(stored):
        return stored, False
    recovered = _recovered(settings, view)
    if recovered is not None:
        return recovered, False
    if view.master_key is None:
        return stored or Identity.generate(view.user_id), True
    if stored is not None:
        log.error(
            "the homeserver holds another cross-signing identity for %s (master key %s) than the "
            "bot's own (master key %s), and no recovery key for it: a new identity replaces both. "
            "People who verified the bot must verify it again. If the homeserver's identity is "
            "meant to be the bot's, give its recovery key (ICC_RECOVERY_KEY_FILE); two instances "
            "with data directories of their own must share one",
            view.user_id,
            view.master_key,
            stored.master,
        )
    else:
        log.warning(
            "no stored cross-signing keys in %s (was it wiped?) and no recovery key for the "
            "homeserver's identity of %s (master key %s): a new identity replaces it. People "
            "who verified the bot must verify it again; ICC_RECOVERY_KEY_FILE keeps an identity "
            "instead",
            settings.data_dir,
            view.user_id,
            view.master_key,
        )
    return Identity.generate(view.user_id), True


def _recovered(settings: Settings, view: ServerView) -> Identity | None:
    """The homeserver's identity, from the first recovery key that gives it."""
    if view.master_key is None:
        return None
    for path in recovery_candidates(settings.data_dir, settings.recovery_key_file):
        try:
            identity = Identity(view.user_id, read_recovery_key(path))
        except (OSError, ValueError) as exc:
            log.warning("recovery key file %s not used: %s", path, exc)
            continue
        if view.holds(identity):
            save_identity(settings.data_dir, identity, store_key(settings), path)
            log.info(
                "cross-signing identity (master key %s) restored from %s", identity.master, path
            )
            return identity
        if path == settings.recovery_key_file:
            log.warning("%s is the recovery key of another identity: not used", path)
    return None


def _keep(settings: Settings, identity: Identity) -> None:
    """Store an identity the homeserver now has: the key file, and its recovery key once."""
    existing = stored_keys(settings.data_dir)
    place = existing.recovery_file if existing and existing.master == identity.master else None
    if place is None or not holds_root(place, identity.root):
        place = write_recovery_key(settings.data_dir, identity)
        log.warning("recovery key of the bot's cross-signing identity written to %s", place)
    save_identity(settings.data_dir, identity, store_key(settings), place)


# -- uploads -------------------------------------------------------------------------------------


async def upload_identity(client: AsyncClient, identity: Identity, password: str | None) -> None:
    """Upload the identity's public keys. A homeserver that already has keys for the account asks
    for the password first (user-interactive auth); one that has none may not (MSC3967)."""
    body = identity.upload_body()
    status, answer = await _post(client, SIGNING_KEYS, body)
    if status == 401 and "flows" in answer:
        auth = _password_auth(client.user_id, password, answer)
        status, answer = await _post(client, SIGNING_KEYS, {**body, "auth": auth})
        if status == 401:
            raise CrossSigningUnavailable(
                f"the homeserver refused the password for replacing cross-signing keys "
                f"({_why(status, answer)}); check ICC_PASSWORD"
            )
    if status != 200:
        raise CrossSigningUnavailable(f"cross-signing keys not uploaded: {_why(status, answer)}")
    log.info("cross-signing keys uploaded (master key %s)", identity.master)


def _password_auth(user_id: str, password: str | None, challenge: dict[str, Any]) -> dict[str, Any]:
    flows = [flow.get("stages") for flow in challenge.get("flows") or []]
    if ["m.login.password"] not in flows:
        hint = challenge.get("msg") or f"it offers {flows}, not a password"
        raise CrossSigningUnavailable(f"the homeserver wants approval to replace them: {hint}")
    if not password:
        raise CrossSigningUnavailable(
            "the homeserver wants the bot's password to replace its cross-signing keys, and the "
            "bot has only an access token: set ICC_PASSWORD"
        )
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        "session": challenge.get("session"),
    }


async def _sign_own(client: AsyncClient, identity: Identity, view: ServerView) -> bool:
    """Sign the device with the self-signing key, and the master key with the device, where the
    homeserver lacks either signature; whether anything was uploaded."""
    device = _own_device(client, view)
    signatures: dict[str, Any] = {}
    if not signed_by(device, identity.user_id, identity.self_signing):
        signatures[client.device_id] = identity.sign("self_signing", device)
    master = view.master if view.master and view.holds(identity) else identity.key_object("master")
    device_key = device["keys"][f"ed25519:{client.device_id}"]
    if not signed_by(master, identity.user_id, device_key, f"ed25519:{client.device_id}"):
        signature = client.olm.account.sign(canonical(master).decode())
        key_id = f"ed25519:{client.device_id}"
        signatures[identity.master] = with_signature(master, identity.user_id, key_id, signature)
    if not signatures:
        return False
    status, answer = await _post(client, SIGNATURES, {identity.user_id: signatures})
    failures = (answer.get("failures") or {}).get(identity.user_id) or {}
    if status != 200 or client.device_id in failures:
        raise CrossSigningUnavailable(f"device signature refused: {_why(status, answer)}")
    if failures:
        log.warning("the master key's signature by the device was refused: %s", failures)
    return True


def _own_device(client: AsyncClient, view: ServerView) -> dict[str, Any]:
    """The device keys the homeserver shows for the bot's device, checked to be the bot's own:
    a homeserver must not get the bot to vouch for a key it does not hold."""
    device = view.device
    if device is None:
        raise CrossSigningUnavailable(f"the homeserver has no keys for device {client.device_id}")
    own = client.olm.account.identity_keys["ed25519"]
    shown = (device.get("keys") or {}).get(f"ed25519:{client.device_id}")
    if shown != own or not signed_by(device, view.user_id, own, f"ed25519:{client.device_id}"):
        raise CrossSigningUnavailable(
            f"the homeserver shows device {client.device_id} with a key the bot does not hold"
        )
    return device


async def _post(client: AsyncClient, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST with the bot's token on nio's session; 429s waited out (three tries)."""
    headers = {
        "Authorization": f"Bearer {client.access_token}",
        "Content-Type": "application/json",
    }
    for _ in range(3):
        response = await client.send("POST", path, json.dumps(body), headers)
        try:
            answer = await response.json(content_type=None)
        except ValueError:
            answer = None
        finally:
            response.release()
        answer = answer if isinstance(answer, dict) else {}
        if response.status != 429:
            break
        await asyncio.sleep(min(float(answer.get("retry_after_ms") or 1000), 30_000) / 1000)
    return response.status, answer


def _why(status: int, answer: dict[str, Any]) -> str:
    return f"{status} {answer.get('errcode', '')} {answer.get('error', '')}".strip()


# -- `icc-bot crypto status` ---------------------------------------------------------------------


class NotLoggedIn(LoginFailed):
    """No stored session to ask the homeserver with."""


@dataclass(frozen=True)
class Status:
    user_id: str
    device_id: str
    view: ServerView
    stored: StoredKeys | None


async def read_status(settings: Settings) -> Status:
    """The bot's identity as the homeserver shows it, asked with the stored session."""
    path = settings.data_dir / "credentials.json"
    credentials = load_credentials(path)
    if credentials is None:
        raise NotLoggedIn(f"not logged in yet: no {path}; `icc-bot run` logs in")
    client = AsyncClient(credentials.homeserver, config=AsyncClientConfig(encryption_enabled=False))
    client.restore_login(credentials.user_id, credentials.device_id, credentials.access_token)
    try:
        view = await query_own(client)
    finally:
        await client.close()
    return Status(credentials.user_id, credentials.device_id, view, stored_keys(settings.data_dir))


def recovery_file_of(status: Status) -> Path | None:
    """Where the recovery key of the homeserver's identity is, when the key file knows."""
    stored = status.stored
    if stored is None or stored.master != status.view.master_key:
        return None
    return stored.recovery_file
