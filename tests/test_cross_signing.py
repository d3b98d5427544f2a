"""The bot's device is cross-signed by the bot's own identity (issue 21), as other people's
clients see it on a real homeserver: the signature chain, restarts, a new device, a lost data
directory with and without the recovery key, another identity on the homeserver, a bot without
its password, a client that excludes unsigned devices (MSC4153), and `icc-bot crypto status`."""

from __future__ import annotations

import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nio import OlmUnverifiedDeviceError

from bot.devserver import DevServer
from bot.matrix.identity import IdentityFileError, b64, load_identity, read_recovery_key
from bot.matrix.recovery_key import RecoveryKeyError, decode, encode
from tests.support.bots import bot_running
from tests.support.cast import Cast
from tests.support.cross_signing import (
    StrictClient,
    bot_device,
    published,
    published_to_bot,
    record_cross_signing_uploads,
    replace_identity,
    started_and_stopped,
)
from tests.support.matrix_people import Person, body
from tests.support.processes import run_cli
from tests.support.rooms import bot_joined

pytestmark = pytest.mark.synapse

STORE_KEY = "test-store-key-0123456789"
SIGNATURES = "/_matrix/client/v3/keys/signatures/upload"


@pytest.fixture
def env(bot_env: dict[str, str]) -> dict[str, str]:
    return bot_env | {"ICC_E2EE": "true", "ICC_STORE_KEY": STORE_KEY}


@pytest.fixture
def data_dir(env: dict[str, str]) -> Path:
    return Path(env["ICC_DATA_DIR"])


@pytest.fixture
async def lead(synapse: DevServer, cast: Cast) -> AsyncIterator[Person]:
    """Another user, who asks the homeserver for the bot's keys."""
    person = await Person.login(synapse.base_url, cast.lead.user_id, cast.lead.password)
    try:
        yield person
    finally:
        await person.close()


async def test_the_device_is_signed_by_the_self_signing_key_signed_by_the_master_key(
    env: dict[str, str], lead: Person, cast: Cast, data_dir: Path
) -> None:
    async with bot_running(env):
        keys = await published(lead, cast.bot.user_id)
    device = bot_device(data_dir)
    assert keys.master_key is not None
    assert keys.self_signing_key is not None
    assert keys.self_signing_trusted()
    assert keys.device_signed(device)


async def test_the_device_signs_the_master_key_as_element_does(
    env: dict[str, str], data_dir: Path
) -> None:
    """Shown to the bot's own sessions only (as Synapse does): how its other clients know the
    master key is the one this device trusts."""
    async with bot_running(env):
        keys = await published_to_bot(data_dir)
    assert keys.master_signed_by(bot_device(data_dir))


async def test_a_restart_keeps_the_identity_and_uploads_nothing(
    env: dict[str, str], lead: Person, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    uploads = record_cross_signing_uploads(monkeypatch, cast.bot.user_id)
    async with bot_running(env):
        again = await published(lead, cast.bot.user_id)
    assert again.master_key == first.master_key
    assert again.self_signing_key == first.self_signing_key
    assert uploads == []


async def test_a_new_device_with_the_keys_kept_is_signed_by_the_same_identity(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session and the encryption store lost, the key file kept: a new device, signed by
    the identity people verified; only the signatures are uploaded."""
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    old_device = bot_device(data_dir)
    _new_device(data_dir)
    uploads = record_cross_signing_uploads(monkeypatch, cast.bot.user_id)
    async with bot_running(env):
        keys = await published(lead, cast.bot.user_id)
    device = bot_device(data_dir)
    assert device != old_device
    assert keys.master_key == first.master_key
    assert device in keys.cross_signed()
    assert uploads == [SIGNATURES]


async def test_a_wiped_data_dir_without_recovery_key_resets_the_identity_and_says_why(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing left to prove the old identity with: a new one (the password allows replacing
    it), the new device signed by it, and a warning that people must verify the bot again."""
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    shutil.rmtree(data_dir)
    async with bot_running(env):
        keys = await published(lead, cast.bot.user_id)
    assert keys.master_key != first.master_key
    assert bot_device(data_dir) in keys.cross_signed()
    assert "(was it wiped?) and no recovery key" in caplog.text
    assert "People who verified the bot must verify it again" in caplog.text
    assert "ICC_RECOVERY_KEY_FILE keeps an identity instead" in caplog.text


async def test_a_wiped_data_dir_with_the_recovery_key_keeps_the_identity(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    kept = tmp_path / "kept-recovery-key.txt"
    shutil.copy(data_dir / "recovery-key.txt", kept)
    shutil.rmtree(data_dir)
    uploads = record_cross_signing_uploads(monkeypatch, cast.bot.user_id)
    async with bot_running(env | {"ICC_RECOVERY_KEY_FILE": str(kept)}):
        keys = await published(lead, cast.bot.user_id)
    assert keys.master_key == first.master_key
    assert bot_device(data_dir) in keys.cross_signed()
    assert uploads == [SIGNATURES]  # the identity's keys are not uploaded again


async def test_the_recovery_key_is_written_once_to_a_file_only_the_bot_reads(
    env: dict[str, str], data_dir: Path
) -> None:
    await started_and_stopped(env)
    path = data_dir / "recovery-key.txt"
    written, text = path.stat(), path.read_bytes()
    assert stat.S_IMODE(written.st_mode) == 0o600
    await started_and_stopped(env)
    assert path.read_bytes() == text
    assert path.stat().st_mtime_ns == written.st_mtime_ns
    assert sorted(p.name for p in data_dir.glob("recovery-key*")) == ["recovery-key.txt"]


async def test_a_replacing_identitys_recovery_key_goes_to_a_file_of_its_own(
    env: dict[str, str], cast: Cast, synapse: DevServer, data_dir: Path
) -> None:
    """The first recovery key file is left exactly as it was (the operator's copy of it stays
    true); the new identity's key is written beside it."""
    await started_and_stopped(env)
    first = data_dir / "recovery-key.txt"
    text = first.read_bytes()
    await replace_identity(synapse.base_url, cast.bot.user_id, cast.bot.password)
    await started_and_stopped(env)
    assert first.read_bytes() == text
    files = sorted(data_dir.glob("recovery-key*.txt"))
    assert len(files) == 2
    second = next(f for f in files if f != first)
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert read_recovery_key(second) != read_recovery_key(first)


async def test_the_recovery_key_is_never_logged(
    env: dict[str, str], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await started_and_stopped(env)
    key = encode(read_recovery_key(data_dir / "recovery-key.txt"))
    assert "recovery key of the bot's cross-signing identity written to" in caplog.text
    assert key not in caplog.text
    assert key.split()[3] not in caplog.text


async def test_the_identity_is_kept_encrypted_with_the_store_key(
    env: dict[str, str], cast: Cast, data_dir: Path
) -> None:
    await started_and_stopped(env)
    root = read_recovery_key(data_dir / "recovery-key.txt")
    text = (data_dir / "cross-signing.json").read_text()
    assert b64(root) not in text
    assert root.hex() not in text
    assert load_identity(data_dir, cast.bot.user_id, STORE_KEY) is not None
    with pytest.raises(IdentityFileError, match="does not open with ICC_STORE_KEY"):
        load_identity(data_dir, cast.bot.user_id, "another-store-key-0123456789")


async def test_a_key_file_that_does_not_open_is_left_alone_and_the_device_unsigned(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another ICC_STORE_KEY (a new device, since the store goes with it) and the recovery key
    moved off the machine: no reset over an identity the right key would open again; an error
    says what to fix."""
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    key_file = (data_dir / "cross-signing.json").read_bytes()
    (data_dir / "recovery-key.txt").unlink()
    _new_device(data_dir)
    async with bot_running(env | {"ICC_STORE_KEY": "another-store-key-0123456789"}):
        keys = await published(lead, cast.bot.user_id)
    assert keys.master_key == first.master_key
    assert bot_device(data_dir) not in keys.cross_signed()
    assert (data_dir / "cross-signing.json").read_bytes() == key_file
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("does not open with ICC_STORE_KEY" in e for e in errors), errors


async def test_a_key_file_that_does_not_open_is_restored_from_the_recovery_key_beside_it(
    env: dict[str, str], lead: Person, cast: Cast, data_dir: Path
) -> None:
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    _new_device(data_dir)
    another_key = "another-store-key-0123456789"
    async with bot_running(env | {"ICC_STORE_KEY": another_key}):
        keys = await published(lead, cast.bot.user_id)
    assert keys.master_key == first.master_key
    assert bot_device(data_dir) in keys.cross_signed()
    assert load_identity(data_dir, cast.bot.user_id, another_key) is not None  # sealed anew


async def test_another_identity_on_the_homeserver_is_replaced_by_a_new_one_loudly(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    synapse: DevServer,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Someone signed in as the bot and reset its identity: at its next start the bot, which
    cannot sign with that identity nor put its own back (a replaced key is never accepted
    again), makes a new one to be signed at all, and logs an error naming both."""
    async with bot_running(env):
        own = await published(lead, cast.bot.user_id)
    other = await replace_identity(synapse.base_url, cast.bot.user_id, cast.bot.password)
    assert (await published(lead, cast.bot.user_id)).master_key == other
    async with bot_running(env):
        keys = await published(lead, cast.bot.user_id)
    assert keys.master_key not in (own.master_key, other)
    assert bot_device(data_dir) in keys.cross_signed()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(other in e and str(own.master_key) in e for e in errors), errors


async def test_a_bot_with_only_an_access_token_carries_on_unsigned_when_a_reset_needs_the_password(
    env: dict[str, str],
    lead: Person,
    cast: Cast,
    synapse: DevServer,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with bot_running(env):
        first = await published(lead, cast.bot.user_id)
    shutil.rmtree(data_dir)
    session = await Person.login(synapse.base_url, cast.bot.user_id, cast.bot.password)
    token_only = {k: v for k, v in env.items() if k != "ICC_PASSWORD"}
    try:
        async with bot_running(token_only | {"ICC_ACCESS_TOKEN": session.client.access_token}):
            keys = await published(lead, cast.bot.user_id)
    finally:
        await session.close()
    assert keys.master_key == first.master_key  # nothing overwritten
    assert bot_device(data_dir) not in keys.cross_signed()
    assert "the bot has only an access token: set ICC_PASSWORD" in caplog.text


async def test_a_bot_with_only_an_access_token_is_signed_on_its_first_start(
    env: dict[str, str], lead: Person, cast: Cast, synapse: DevServer, data_dir: Path
) -> None:
    """A first identity needs no password: the homeserver asks for none (MSC3967)."""
    session = await Person.login(synapse.base_url, cast.bot.user_id, cast.bot.password)
    token_only = {k: v for k, v in env.items() if k != "ICC_PASSWORD"}
    try:
        async with bot_running(token_only | {"ICC_ACCESS_TOKEN": session.client.access_token}):
            keys = await published(lead, cast.bot.user_id)
    finally:
        await session.close()
    assert bot_device(data_dir) in keys.cross_signed()


async def test_a_client_that_excludes_unsigned_devices_reads_the_bot(
    env: dict[str, str], synapse: DevServer, cast: Cast, data_dir: Path, tmp_path: Path
) -> None:
    """The lead's client deals only with cross-signed devices (MSC4153): it shares its room key
    with the bot and accepts the bot's, so it reads the bot's encrypted answer."""
    async with bot_running(env):
        strict = await _strict_lead(synapse, cast, tmp_path)
        try:
            room_id = await strict.person.create_room(invite=[cast.bot.user_id], encrypted=True)
            await strict.person.wait_for(room_id, bot_joined(cast.bot.user_id))
            assert bot_device(data_dir) in await strict.decide()
            asked = await strict.send(room_id, "!icc help")
            reply = await strict.person.wait_for_reply(room_id, asked, cast.bot.user_id)
        finally:
            await strict.person.close()
    assert "Commands you can use" in body(reply)
    assert strict.refused == []


async def test_without_cross_signing_such_a_client_excludes_the_bot(
    env: dict[str, str],
    synapse: DevServer,
    cast: Cast,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check above is not vacuous: the bot's device left unsigned, the same client will not
    share a room key with it."""

    async def not_signed(*args: object) -> None:
        return None

    monkeypatch.setattr("bot.matrix.cross_signing.bootstrap", not_signed)
    async with bot_running(env):
        strict = await _strict_lead(synapse, cast, tmp_path)
        try:
            room_id = await strict.person.create_room(invite=[cast.bot.user_id], encrypted=True)
            await strict.person.wait_for(room_id, bot_joined(cast.bot.user_id))
            assert await strict.decide() == set()
            with pytest.raises(OlmUnverifiedDeviceError):
                await strict.send(room_id, "!icc help")
        finally:
            await strict.person.close()


async def test_crypto_status_shows_a_signed_bot(
    env: dict[str, str], lead: Person, cast: Cast, data_dir: Path
) -> None:
    async with bot_running(env):
        keys = await published(lead, cast.bot.user_id)
    result = run_cli(env, "crypto", "status")
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert {k: v.strip() for k, v in lines.items()} == {
        "user": cast.bot.user_id,
        "device": bot_device(data_dir),
        "master key": keys.master_key,
        "device signed by self-signing key": "yes",
        "self-signing key signed by master key": "yes",
        "recovery key file": str(data_dir / "recovery-key.txt"),
    }


def test_crypto_status_before_the_first_login_says_so(tmp_path: Path) -> None:
    env = {
        "ICC_HOMESERVER": "http://127.0.0.1:9",
        "ICC_USER_ID": "@bot:nowhere.test",
        "ICC_PASSWORD": "a-long-enough-password",
        "ICC_E2EE": "false",
        "ICC_DATA_DIR": str(tmp_path / "data"),
        "ICC_CONFIG_DIR": str(tmp_path),
    }
    result = run_cli(env, "crypto", "status")
    assert result.returncode == 1
    assert "not logged in yet" in result.stderr
    assert "`icc-bot run` logs in" in result.stderr


def test_a_mistyped_recovery_key_is_refused() -> None:
    key = encode(bytes(range(32)))
    assert decode(key) == bytes(range(32))
    assert key.startswith("Es")  # the familiar look of a Matrix recovery key
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    with pytest.raises(RecoveryKeyError, match="check digit"):
        decode(typo)


async def _strict_lead(synapse: DevServer, cast: Cast, tmp_path: Path) -> StrictClient:
    store = tmp_path / "lead-store"
    store.mkdir()
    person = await Person.login(
        synapse.base_url, cast.lead.user_id, cast.lead.password, store_dir=str(store)
    )
    strict = StrictClient(person, cast.bot.user_id)
    strict.guard_room_keys()
    return strict


def _new_device(data_dir: Path) -> None:
    """The session and the encryption store gone: the bot logs in on a new device."""
    (data_dir / "credentials.json").unlink()
    shutil.rmtree(data_dir / "store")
