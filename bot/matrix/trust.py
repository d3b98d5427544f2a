"""Trust on first use for the devices of the directory's people.

nio has no cross-signing. The bot signs its *own* device (`bot.matrix.cross_signing`), but it does
not check other people's devices against their cross-signing identities the way Element does:
that would mean reading, pinning and re-checking every member's master key. What it does instead
is what SSH does: trust the devices a directory member has when the bot first sees them, keep that
trust in the encrypted store across restarts, and log every change after that — a new device, a
removed one, a device that suddenly presents another signing key — so an operator can ask the
person whether it was them. New devices of a member are trusted too (a liaison officer who signs
in on a new phone at 3 a.m. must still get their page), but never silently. Devices of people who
are not in the directory are left unverified: the bot does not vouch for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from nio import AsyncClient, KeysQueryResponse
from nio.crypto import OlmDevice

log = logging.getLogger(__name__)


class DeviceTrust:
    """Reviews the device store after each key query; `members` gives the directory's Matrix IDs."""

    def __init__(self, client: AsyncClient, members: Callable[[], Iterable[str]]) -> None:
        self._client = client
        self._members = members
        self._active: dict[str, set[str]] | None = None  # what the last review saw, per member
        self.changes = 0  # device changes logged in this process (for tests and metrics)

    def review(self, response: KeysQueryResponse | None = None) -> None:
        """Trust members' new devices, log what changed since the last review."""
        if self._client.olm is None:
            return
        if response is not None:
            self._report_key_changes(response)
        store = self._client.device_store
        known_users = set(store.users)
        first_review = self._active is None
        seen: dict[str, set[str]] = {}
        for user_id in set(self._members()) & known_users:
            devices = {d.id: d for d in store.active_user_devices(user_id)}
            seen[user_id] = set(devices)
            previous = None if first_review else (self._active or {}).get(user_id)
            self._trust_new(user_id, devices, previous)
            if previous is not None:
                for device_id in sorted(previous - set(devices)):
                    self._changed("%s removed device %s", user_id, device_id)
        self._active = seen

    def _trust_new(
        self, user_id: str, devices: dict[str, OlmDevice], previous: set[str] | None
    ) -> None:
        untrusted = [d for d in devices.values() if not (d.verified or d.blacklisted)]
        if not untrusted:
            return
        ever_trusted = any(d.verified for d in self._client.device_store[user_id].values())
        for device in sorted(untrusted, key=lambda d: d.id):
            self._client.verify_device(device)
            if ever_trusted or (previous is not None and device.id not in previous):
                self._changed(
                    "%s has a new device %s (%s, fingerprint %s): trusted as a directory member; "
                    "confirm with them if they did not just sign in somewhere new",
                    user_id,
                    device.id,
                    device.display_name or "no name",
                    fingerprint(device),
                )
            else:
                log.info(
                    "trusted %s's device %s (fingerprint %s) on first use",
                    user_id,
                    device.id,
                    fingerprint(device),
                )

    def _report_key_changes(self, response: KeysQueryResponse) -> None:
        """nio keeps the old key of a device whose signing key changed; say so, loudly."""
        members = set(self._members())
        store = self._client.device_store
        for user_id, payloads in response.device_keys.items():
            if user_id not in members or user_id not in store.users:
                continue
            known = store[user_id]
            for device_id, payload in payloads.items():
                signing = _signing_key(payload, device_id)
                device = known.get(device_id)
                if device is not None and signing and signing != device.ed25519:
                    self._changed(
                        "%s's device %s now presents another signing key; refused (the bot keeps "
                        "the key it trusted): ask them to sign out and in again",
                        user_id,
                        device_id,
                    )

    def _changed(self, message: str, *args: Any) -> None:
        self.changes += 1
        log.warning("device change: " + message, *args)


def fingerprint(device: OlmDevice) -> str:
    """The ed25519 key as Element shows it: groups of four characters."""
    key = device.ed25519
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def _signing_key(payload: dict[str, Any], device_id: str) -> str | None:
    keys = payload.get("keys") if isinstance(payload, dict) else None
    return keys.get(f"ed25519:{device_id}") if isinstance(keys, dict) else None
