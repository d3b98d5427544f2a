"""What other people's clients see of the bot's cross-signing, checked independently of the bot:
`/keys/query` asked as another user, signatures verified with PyNaCl (the bot uses
`cryptography`), and a client that, as MSC4153 asks, only deals with devices their owner
cross-signed: it shares its room keys with no other device and accepts none from one."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nio
import pytest
from canonicaljson import encode_canonical_json
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from nio import RoomSendError
from unpaddedbase64 import decode_base64
from unpaddedbase64 import encode_base64 as b64

from tests.support.bots import bot_running
from tests.support.matrix_people import Person

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
CROSS_SIGNING_UPLOADS = ("/keys/device_signing/upload", "/keys/signatures/upload")


@dataclass(frozen=True)
class Published:
    """One user's keys as `/keys/query` shows them to the asker."""

    user_id: str
    master: dict[str, Any] | None
    self_signing: dict[str, Any] | None
    devices: dict[str, dict[str, Any]]

    @property
    def master_key(self) -> str | None:
        return only_key(self.master)

    @property
    def self_signing_key(self) -> str | None:
        return only_key(self.self_signing)

    def self_signing_trusted(self) -> bool:
        """The self-signing key is signed by the master key."""
        master = self.master_key
        return master is not None and verifies(
            self.self_signing, self.user_id, f"ed25519:{master}", master
        )

    def device_signed(self, device_id: str) -> bool:
        """The device's own signature holds, and the self-signing key signed it."""
        device, ssk = self.devices.get(device_id), self.self_signing_key
        own = ((device or {}).get("keys") or {}).get(f"ed25519:{device_id}")
        return (
            own is not None
            and ssk is not None
            and verifies(device, self.user_id, f"ed25519:{device_id}", own)
            and verifies(device, self.user_id, f"ed25519:{ssk}", ssk)
        )

    def cross_signed(self) -> set[str]:
        """The devices an MSC4153 client deals with: device ← self-signing key ← master key."""
        if not self.self_signing_trusted():
            return set()
        return {device_id for device_id in self.devices if self.device_signed(device_id)}

    def master_signed_by(self, device_id: str) -> bool:
        own = self.devices.get(device_id, {}).get("keys", {}).get(f"ed25519:{device_id}")
        return own is not None and verifies(self.master, self.user_id, f"ed25519:{device_id}", own)


def only_key(key_object: dict[str, Any] | None) -> str | None:
    values = list(((key_object or {}).get("keys") or {}).values())
    return values[0] if len(values) == 1 else None


def verifies(obj: dict[str, Any] | None, signer: str, key_id: str, public: str) -> bool:
    """A Matrix signature check with PyNaCl: canonical JSON without signatures and unsigned."""
    signature = ((obj or {}).get("signatures") or {}).get(signer, {}).get(key_id)
    if obj is None or signature is None:
        return False
    message = encode_canonical_json(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    )
    try:
        VerifyKey(decode_base64(public)).verify(message, decode_base64(signature))
    except (BadSignatureError, ValueError):
        return False
    return True


def _post(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def replace_identity(base_url: str, user_id: str, password: str) -> str:
    """Sign in as `user_id` elsewhere and reset its cross-signing identity to a new one, with
    the password, as a client's "reset identity" does; the new master key."""
    api = f"{base_url}/_matrix/client/v3"
    identifier = {"type": "m.id.user", "user": user_id}
    login = {"type": "m.login.password", "identifier": identifier, "password": password}
    status, answer = await asyncio.to_thread(_post, f"{api}/login", login)
    assert status == 200, answer
    token = answer["access_token"]
    master, self_signing = SigningKey.generate(), SigningKey.generate()
    master_key, ssk_key = (b64(k.verify_key.encode()) for k in (master, self_signing))
    ssk = {"user_id": user_id, "usage": ["self_signing"], "keys": {f"ed25519:{ssk_key}": ssk_key}}
    signature = b64(master.sign(encode_canonical_json(ssk)).signature)
    body = {
        "master_key": {
            "user_id": user_id,
            "usage": ["master"],
            "keys": {f"ed25519:{master_key}": master_key},
        },
        "self_signing_key": ssk | {"signatures": {user_id: {f"ed25519:{master_key}": signature}}},
    }
    url = f"{api}/keys/device_signing/upload"
    status, answer = await asyncio.to_thread(_post, url, body, token)
    assert status == 401, answer  # the homeserver has the bot's keys: replacing needs auth
    auth = {**login, "session": answer["session"]}
    status, answer = await asyncio.to_thread(_post, url, body | {"auth": auth}, token)
    assert status == 200, answer
    return master_key


async def published(asker: Person, user_id: str) -> Published:
    """`user_id`'s keys, asked for by `asker`: what anyone else sees."""
    return await published_to(asker.client.homeserver, asker.client.access_token, user_id)


async def published_to_bot(data_dir: Path) -> Published:
    """The bot's keys as the bot's own session sees them: with the signatures its devices made
    on its master key, which a homeserver shows only to the key's owner."""
    credentials = json.loads((data_dir / "credentials.json").read_text())
    return await published_to(
        credentials["homeserver"], credentials["access_token"], credentials["user_id"]
    )


async def published_to(homeserver: str, token: str, user_id: str) -> Published:
    url = f"{homeserver}/_matrix/client/v3/keys/query"
    body = {"device_keys": {user_id: []}}
    status, answer = await asyncio.to_thread(_post, url, body, token)
    assert status == 200, answer
    return Published(
        user_id,
        answer.get("master_keys", {}).get(user_id),
        answer.get("self_signing_keys", {}).get(user_id),
        answer.get("device_keys", {}).get(user_id, {}),
    )


def bot_device(data_dir: Path) -> str:
    """The device the bot logged in on, as its credentials file says."""
    return json.loads((data_dir / "credentials.json").read_text())["device_id"]


@dataclass
class StrictClient:
    """A person's encrypting client that excludes devices their owner has not cross-signed:
    it verifies (in nio's device store) only cross-signed devices of `trusting`, sends with
    nio refusing unverified devices, and drops room keys from any device not verified."""

    person: Person
    trusting: str
    refused: list[str] = field(default_factory=list)  # sender keys whose room keys were dropped

    async def decide(self, timeout: float = 15) -> set[str]:
        """Ask the homeserver, as an MSC4153 client does; verify the cross-signed devices."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.person.client.device_store.active_user_devices(self.trusting):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.trusting}'s devices never reached the client")
            await self.person.sync()
        keys = await published(self.person, self.trusting)
        trusted = keys.cross_signed()
        store = self.person.client.device_store
        for device in store.active_user_devices(self.trusting):
            if device.id in trusted and device.ed25519 == _device_key(keys, device.id):
                self.person.client.verify_device(device)
        return trusted

    def guard_room_keys(self) -> None:
        olm = self.person.client.olm
        accept = olm._handle_room_key_event

        def only_from_verified(sender: str, sender_key: str, payload: dict[str, Any]) -> Any:
            device = olm.device_store.device_from_sender_key(sender, sender_key)
            if device is None or not device.verified:
                self.refused.append(sender_key)
                return None
            return accept(sender, sender_key, payload)

        olm._handle_room_key_event = only_from_verified

    async def send(self, room_id: str, text: str) -> str:
        """Send as a strict client does: nio raises if a device in the room is not verified."""
        content = {"msgtype": "m.text", "body": text}
        response = await self.person.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=False
        )
        if isinstance(response, RoomSendError):
            raise RuntimeError(f"send: {response.message}")
        return response.event_id


def _device_key(keys: Published, device_id: str) -> str | None:
    return keys.devices.get(device_id, {}).get("keys", {}).get(f"ed25519:{device_id}")


def record_cross_signing_uploads(monkeypatch: pytest.MonkeyPatch, user_id: str) -> list[str]:
    """The paths of the cross-signing uploads `user_id`'s nio clients make from now on."""
    made: list[str] = []
    real = nio.AsyncClient.send

    async def send(self: nio.AsyncClient, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if self.user_id == user_id and path.endswith(CROSS_SIGNING_UPLOADS):
            made.append(path)
        return await real(self, method, path, *args, **kwargs)

    monkeypatch.setattr(nio.AsyncClient, "send", send)
    return made


async def started_and_stopped(env: dict[str, str]) -> None:
    """The bot started (its identity made or checked, its device signed) and stopped again."""
    async with bot_running(env):
        return
