"""Logging the bot in, on the same device every time.

The device ID and access token live in `ICC_DATA_DIR/credentials.json` (mode 0600): encryption keys
belong to a device, so a bot that made a new device at every start would lose the keys of every
room it is in. `whoami` must then agree with the configuration, or the bot refuses to start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import (
    ClientConnectionError,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    TCPConnector,
)
from nio import AsyncClient, AsyncClientConfig, LoginError, WhoamiError

from bot.settings import DEMO_STORE_KEY, Settings

log = logging.getLogger(__name__)


# What a reverse proxy answers while the homeserver behind it restarts or is down.
GATEWAY_ERRORS = frozenset({502, 503, 504})


class HomeserverAway(ClientConnectionError):
    """A gateway answered for an absent homeserver.

    nio retries connection errors with backoff until the homeserver answers again, but returns any
    HTTP error at once: behind nginx, a Synapse restart would turn every page sent during it into
    a failure after the bot's own few retries. Raised as a connection error, a 502 means what a
    refused connection means: wait, and deliver once it is back (the transaction IDs keep that
    once)."""


async def gateway_errors_as_outages(response: ClientResponse) -> None:
    if response.status in GATEWAY_ERRORS and not await _homeserver_said(response):
        response.release()
        raise HomeserverAway(f"{response.status} {response.reason} from {response.url.host}")


async def _homeserver_said(response: ClientResponse) -> bool:
    """Whether the homeserver itself answered (a Matrix error: JSON with an `errcode`), as
    Synapse does with 502 "Can't connect to server" when another homeserver is down: that is
    an answer to pass on, not an absence to wait out. The body stays readable for nio."""
    if response.content_type != "application/json":
        return False
    try:
        answer = await response.json()
    except (ValueError, ClientError):
        return False
    return isinstance(answer, dict) and isinstance(answer.get("errcode"), str)


class LoginFailed(RuntimeError):
    """The bot could not log in as configured; the message says what to fix."""


@dataclass(frozen=True)
class Credentials:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str


def private_dir(path: Path) -> Path:
    """Create `path` readable by the bot's user only: it holds tokens and keys."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def load_credentials(path: Path) -> Credentials | None:
    try:
        return Credentials(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise LoginFailed(f"{path} is damaged ({exc}); move it away to log in afresh") from None


def save_credentials(path: Path, credentials: Credentials) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(credentials), handle)
    tmp.replace(path)


def store_key(settings: Settings) -> str:
    """The key that encrypts the E2E store; `demo` means one made once and kept in the data dir."""
    if settings.store_key != DEMO_STORE_KEY:
        return settings.store_key or ""
    key_file = settings.data_dir / "store.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return key_file.read_text().strip()


def make_client(settings: Settings) -> AsyncClient:
    data_dir = private_dir(settings.data_dir)
    store_path = private_dir(data_dir / "store")
    config = AsyncClientConfig(
        encryption_enabled=settings.e2ee,
        store_sync_tokens=False,  # our own table keeps the sync position (bot.storage)
        pickle_key=store_key(settings) if settings.e2ee else "",
        max_timeout_retry_wait_time=10,  # back within 10 s of the homeserver returning
        request_timeout=60,
    )
    client = AsyncClient(
        settings.homeserver, settings.user_id, store_path=str(store_path), config=config
    )
    # aiohttp's default pool is 100 connections, and the sync long-poll holds one: a page to
    # 100 people would queue its last send behind it. The homeserver is the one to limit.
    client.client_session = ClientSession(
        timeout=ClientTimeout(total=config.request_timeout),
        connector=TCPConnector(limit=0),
        raise_for_status=gateway_errors_as_outages,
    )
    return client


async def log_in(client: AsyncClient, settings: Settings) -> Credentials:
    """Restore the stored session, or log in with the token or password; then check whoami."""
    path = settings.data_dir / "credentials.json"
    stored = load_credentials(path)
    if stored and stored.user_id != settings.user_id:
        raise LoginFailed(
            f"{path} belongs to {stored.user_id}, not {settings.user_id}; use another "
            "ICC_DATA_DIR or move the file away"
        )
    if stored and stored.homeserver != settings.homeserver:
        log.warning("homeserver URL changed from %s to %s", stored.homeserver, settings.homeserver)
    if stored:
        client.restore_login(stored.user_id, stored.device_id, stored.access_token)
        if await _whoami_ok(client, stored) or not settings.password:
            return await _confirm(client, settings, path)
        log.warning("stored access token refused; logging in again on device %s", stored.device_id)
        client.device_id = stored.device_id
    elif settings.access_token:
        client.access_token = settings.access_token
        who = await client.whoami()
        if isinstance(who, WhoamiError) or not who.device_id:
            raise LoginFailed(f"ICC_ACCESS_TOKEN refused by the homeserver: {_why(who)}")
        client.restore_login(settings.user_id, who.device_id, settings.access_token)
        return await _confirm(client, settings, path)
    response = await client.login(settings.password, device_name=settings.device_name)
    if isinstance(response, LoginError):
        raise LoginFailed(f"login as {settings.user_id} failed: {response.message}")
    return await _confirm(client, settings, path)


async def _whoami_ok(client: AsyncClient, stored: Credentials) -> bool:
    who = await client.whoami()
    return not isinstance(who, WhoamiError) and who.device_id == stored.device_id


async def _confirm(client: AsyncClient, settings: Settings, path: Path) -> Credentials:
    who = await client.whoami()
    if isinstance(who, WhoamiError):
        raise LoginFailed(f"the homeserver does not accept the bot's session: {_why(who)}")
    if who.user_id != settings.user_id:
        raise LoginFailed(f"logged in as {who.user_id}, but ICC_USER_ID is {settings.user_id}")
    if who.device_id and who.device_id != client.device_id:
        raise LoginFailed(f"the session is device {who.device_id}, expected {client.device_id}")
    credentials = Credentials(
        homeserver=settings.homeserver,
        user_id=settings.user_id,
        device_id=client.device_id,
        access_token=client.access_token,
    )
    save_credentials(path, credentials)
    log.info("logged in as %s on device %s", credentials.user_id, credentials.device_id)
    keys_kept_before_upload(client)
    return credentials


def keys_kept_before_upload(client: AsyncClient) -> None:
    """Write the bot's account, one-time keys included, to its store *before* those keys are
    published.

    nio generates one-time keys in memory, uploads them, and saves the account only once the
    homeserver has answered. A bot killed in between comes back without the private halves of
    keys the homeserver now hands out: every partner who claims one opens an Olm session the
    bot cannot read, and their room keys, and so their encrypted commands, never reach it
    (the bot then generates different keys under the same IDs, which the homeserver refuses).
    Saving first leaves, at worst, keys kept that were never published, which is harmless.
    """
    olm = client.olm
    if olm is None:
        return
    share_keys = olm.share_keys

    def share_and_save() -> dict[str, Any]:
        keys = share_keys()
        olm.save_account()
        return keys

    olm.share_keys = share_and_save


def _why(response: object) -> str:
    return str(getattr(response, "message", response))
