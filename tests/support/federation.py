"""Two Synapse homeservers federating on loopback, one of which a test can stop and start.

Server A listens on 127.0.0.1, server B on 127.0.0.2; each serves clients on one port and
federation (TLS, one self-signed certificate for both addresses) on another, and is named
"<ip>:<federation port>", so each reaches the other directly. Neither checks certificates.
A stopped server starts again on the same ports and data directory (its name holds its
federation port), with its users, rooms and keys.

How Synapse (1.163) deals with a peer that is down, which the tests depend on:

- A transaction (the events and EDUs for one destination) is retried with "long retries":
  `max_long_retries` (10) more attempts, `4**n` s apart but at most `max_long_retry_delay`
  (60 s), each times 0.8-1.4: about 8 minutes. If the peer is back within that time, the
  next attempt delivers; nothing can hurry it (no back-off is recorded yet).
- Then the destination is marked down for `destination_min_retry_interval` (10 min, then
  times `destination_retry_multiplier` 2, up to `destination_max_retry_interval` 7 d). Its
  events wait until a signed request from the peer arrives (any federation traffic, e.g.
  its user speaking in a shared room), the admin API's reset_connection, or the interval
  has passed (checked once a minute).
- Invites use "short retries" (`max_short_retries` 3, at most `max_short_retry_delay` 2 s
  apart) and ignore the back-off: each invite to a server that is down costs seconds.

QUICK_GIVE_UP shrinks the first phase to seconds (A marks B down some 5-8 s after a failed
send), so tests reach both phases fast; invites keep Synapse's defaults.

Starting and stopping block (B restarts in 1-2 s): from async code use `up()` / `down()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import ipaddress
import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.devserver import DevServer, Federation, free_port, start_synapse
from tests.support.matrix_people import Person

A_HOST = "127.0.0.1"
B_HOST = "127.0.0.2"

# For synapse/config/federation.py: a transaction is retried 5 times, 1 s apart (x 0.8-1.4)
# instead of 10 times up to 60 s apart, so a server gives up on a peer after 5-8 s: long
# enough for B to restart (1-2 s) in between, short enough to wait for.
QUICK_GIVE_UP: dict[str, Any] = {"max_long_retries": 5, "max_long_retry_delay": "1s"}

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def self_signed_certificate(directory: Path, hosts: tuple[str, ...]) -> tuple[Path, Path]:
    """A self-signed certificate for the IP addresses `hosts`: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.UTC)
    addresses = [x509.IPAddress(ipaddress.ip_address(host)) for host in hosts]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(addresses), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certificate_path, key_path = directory / "tls.crt", directory / "tls.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


def _request(
    method: str, url: str, body: Mapping[str, Any] | None = None, *, token: str = ""
) -> tuple[int, dict[str, Any]]:
    """A JSON request: (status, JSON body), for error statuses too."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw or b"{}")


def _quoted(part: str) -> str:
    return urllib.parse.quote(part, safe="")


@dataclass(eq=False)  # one object per server: hashed by identity
class Homeserver:
    """One federating Synapse that keeps its ports, data and name across stops and starts."""

    data_dir: Path
    client_port: int
    federation: Federation
    server: DevServer | None = None
    admin_id: str = ""
    _admin_token: str = field(default="", repr=False)

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.process.poll() is None

    @property
    def server_name(self) -> str:
        """ "<ip>:<federation port>": what follows the first colon of its users' IDs."""
        return self.federation.server_name

    @property
    def base_url(self) -> str:
        """The client-server API's URL (plain HTTP)."""
        return f"http://{self.federation.host}:{self.client_port}"

    def start(self) -> DevServer:
        """Start it on its ports and data directory (nothing if it runs); back once it serves
        clients and federation."""
        if self.server is None or not self.running:
            self.server = start_synapse(
                self.data_dir, port=self.client_port, federation=self.federation
            )
        return self.server

    def stop(self) -> None:
        """SIGTERM, as an administrator's stop (nothing if it is stopped)."""
        if self.server is not None:
            self.server.stop()

    async def up(self) -> float:
        """`start` from async code; returns how long it took, in seconds."""
        began = time.monotonic()
        await asyncio.to_thread(self.start)
        return time.monotonic() - began

    async def down(self) -> None:
        """`stop` from async code."""
        await asyncio.to_thread(self.stop)

    def register(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Register a user on this server (it must run); returns its Matrix ID."""
        if self.server is None or not self.running:
            raise RuntimeError(f"{self.server_name} is not running")
        return self.server.register(localpart, password, admin=admin)

    def new_user(self, name: str, *, admin: bool = False) -> tuple[str, str]:
        """A fresh user (unique localpart): (user ID, password)."""
        password = secrets.token_urlsafe(12)
        return self.register(f"{name}-{secrets.token_hex(3)}", password, admin=admin), password

    async def person(self, name: str) -> Person:
        """A fresh user on this server, logged in (close it at the end)."""
        user_id, password = self.new_user(name)
        return await Person.login(self.base_url, user_id, password)

    def api(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A request (`path` from /_matrix/ or /_synapse/) as this server's own admin user:
        (status, JSON body), for error statuses too."""
        if not self._admin_token:
            self.admin_id, password = self.new_user("admin", admin=True)
            login = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.admin_id},
                "password": password,
            }
            status, answer = _request("POST", f"{self.base_url}/_matrix/client/v3/login", login)
            if status != 200:
                raise RuntimeError(f"the admin's login failed: HTTP {status} {answer}")
            self._admin_token = answer["access_token"]
        return _request(method, f"{self.base_url}{path}", body, token=self._admin_token)

    def destination(self, other: Homeserver) -> dict[str, Any] | None:
        """This server's record of `other` (admin API: retry_last_ts, retry_interval in ms,
        failure_ts…), or None if it never sent it anything."""
        path = f"/_synapse/admin/v1/federation/destinations/{_quoted(other.server_name)}"
        status, answer = self.api("GET", path)
        return answer if status == 200 else None

    def backs_off(self, other: Homeserver) -> bool:
        """Whether this server has marked `other` down (and waits before sending again)."""
        record = self.destination(other)
        return bool(record and record["retry_last_ts"])

    def wait_backs_off(self, other: Homeserver, timeout: float = 30) -> float:
        """Wait until this server marks `other` down; returns how long that took, in s."""
        began = time.monotonic()
        while not self.backs_off(other):
            if time.monotonic() - began > timeout:
                raise AssertionError(f"{self.server_name} still tries {other.server_name}")
            time.sleep(0.1)
        return time.monotonic() - began

    def reset_connection(self, other: Homeserver) -> tuple[int, dict[str, Any]]:
        """Forget the back-off towards `other` and send it what waits, now (the admin API's
        reset_connection): (status, JSON body); 400 if there is no back-off to forget."""
        path = (
            f"/_synapse/admin/v1/federation/destinations/{_quoted(other.server_name)}"
            "/reset_connection"
        )
        return self.api("POST", path, {})


@dataclass
class FederatedPair:
    """Server A (127.0.0.1) and server B (127.0.0.2), federating."""

    a: Homeserver
    b: Homeserver
    started_in: float = 0.0  # seconds start_pair took
    probe_room: str = ""  # a room both admins are in, for `heal`

    def stop(self) -> None:
        self.b.stop()
        self.a.stop()

    def _probe(self, sender: Homeserver, receiver: Homeserver) -> str:
        room = _quoted(self.probe_room)
        path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{secrets.token_hex(8)}"
        status, answer = sender.api("PUT", path, {"msgtype": "m.notice", "body": "probe"})
        if status != 200:
            raise RuntimeError(f"probe from {sender.server_name}: HTTP {status} {answer}")
        return f"/_matrix/client/v3/rooms/{room}/event/{_quoted(answer['event_id'])}"

    def heal(self, timeout: float = 60) -> None:
        """Both servers up and delivering to each other again: start what is stopped, then
        send a probe each way, resetting back-offs, until both arrive."""
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(self.a.start), pool.submit(self.b.start)]:
                future.result()
        probes = {(self.a, self.b): self._probe(self.a, self.b)}
        probes[self.b, self.a] = self._probe(self.b, self.a)
        while probes:
            for (sender, receiver), path in list(probes.items()):
                if receiver.api("GET", path)[0] == 200:
                    del probes[sender, receiver]
                elif sender.backs_off(receiver):
                    sender.reset_connection(receiver)
            if time.monotonic() - began > timeout:
                pending = [f"{s.server_name} -> {r.server_name}" for s, r in probes]
                raise RuntimeError(f"federation not healed within {timeout}s: {pending}")
            time.sleep(0.1)

    def _open_probe_room(self) -> None:
        """A room made by A's admin with B's admin in it."""
        self.b.api("GET", "/_matrix/client/v3/account/whoami")  # registers B's admin
        status, answer = self.a.api(
            "POST", "/_matrix/client/v3/createRoom", {"name": "probe", "invite": [self.b.admin_id]}
        )
        if status != 200:
            raise RuntimeError(f"creating the probe room failed: HTTP {status} {answer}")
        self.probe_room = answer["room_id"]
        status, answer = self.b.api("POST", f"/_matrix/client/v3/join/{_quoted(self.probe_room)}")
        if status != 200:
            raise RuntimeError(f"B's admin could not join the probe room: HTTP {status} {answer}")


def _homeserver(
    directory: Path, host: str, certificate: tuple[Path, Path], settings: Mapping[str, Any]
) -> Homeserver:
    federation = Federation(host, free_port(host), *certificate, settings=dict(settings))
    return Homeserver(directory / host, free_port(host), federation)


def start_pair(directory: Path, *, settings: Mapping[str, Any] = QUICK_GIVE_UP) -> FederatedPair:
    """Start A and B under `directory`, each on a free client and federation port, both with
    `settings` in Synapse's `federation:` section; back once each has seen a message of the
    other's (so they know each other's keys)."""
    began = time.monotonic()
    certificate = self_signed_certificate(directory / "tls", (A_HOST, B_HOST))
    pair = FederatedPair(
        _homeserver(directory, A_HOST, certificate, settings),
        _homeserver(directory, B_HOST, certificate, settings),
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # at once: seconds each
            for future in [pool.submit(pair.a.start), pool.submit(pair.b.start)]:
                future.result()
        pair._open_probe_room()
        pair.heal()
    except BaseException:
        pair.stop()
        raise
    pair.started_in = time.monotonic() - began
    return pair


@dataclass
class SharedRoom:
    """A room made on A by `a_user`, with `b_user` (on B) joined; `b_other` is another user of
    B's, in no room and logged in nowhere."""

    room_id: str
    a_user: Person
    b_user: Person
    b_other: str


@asynccontextmanager
async def shared_room(pair: FederatedPair) -> AsyncIterator[SharedRoom]:
    """Fresh users on A and B in a fresh room made on A (B must run); logged out afterwards."""
    a_user = await pair.a.person("alice")
    b_user = await pair.b.person("bob")
    try:
        room_id = await a_user.create_room(invite=[b_user.user_id], name="shared")
        await b_user.wait_for_invite(room_id)
        await b_user.join(room_id)
        b_other, _ = pair.b.new_user("carol")
        yield SharedRoom(room_id, a_user, b_user, b_other)
    finally:
        await a_user.close()
        await b_user.close()
