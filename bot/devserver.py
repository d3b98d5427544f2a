"""Throw-away local Synapse homeserver for ``icc-bot demo`` and the test suite.

Synapse only runs as a subprocess (``sys.executable -m synapse.app.homeserver``), so this
module imports with nothing but the stdlib and PyYAML. The server is offline by default:
it listens on 127.0.0.1 only, serves no federation, trusts no key servers and may not
federate with any domain. Rate limits are lifted so tests can hammer it.

Only tests opt in to federation (``start_synapse(..., federation=Federation(...))``): then
the server listens on another loopback address too, serves federation over TLS with a
certificate the caller made, is named "<ip>:<federation port>" so that other servers reach
it directly (no .well-known, no SRV), and federates with loopback servers without
checking their certificates.

One data directory holds everything (config, signing key, SQLite database, media, logs).
Starting again in the same directory reuses all of it, so users and rooms survive; only
the listener port (and paths) are rewritten on each start.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

CONFIG_FILE = "homeserver.yaml"
LOG_FILE = "homeserver.log"
# Synapse's stdout/stderr, overwritten on each start: catches what happens before its
# logging is set up (bad config, synapse not installed for this interpreter).
OUTPUT_FILE = "synapse.out"

# Every limiter synapse/config/ratelimiting.py (1.163) parses; nested ones with sub-keys.
_FLAT_RATE_LIMITERS = """rc_message rc_registration rc_registration_token_validity
    rc_joins_per_room rc_3pid_validation rc_admin_redaction rc_room_creation rc_profile
    rc_third_party_invite rc_media_create rc_delayed_event_mgmt rc_reports rc_user_directory
    rc_key_requests"""
_RATE_LIMITERS: dict[str, tuple[str, ...]] = dict.fromkeys(_FLAT_RATE_LIMITERS.split(), ()) | {
    "rc_login": ("address", "account", "failed_attempts"),
    "rc_joins": ("local", "remote"),
    "rc_invites": ("per_room", "per_user", "per_issuer"),
    "rc_presence": ("per_user",),
}

# A plain, unbuffered file handler: Synapse's generated log config buffers INFO lines,
# which can hide exactly the lines explaining a crash.
_LOG_CONFIG = """\
version: 1
formatters: {precise: {format: "%(asctime)s %(levelname)s %(name)s %(request)s: %(message)s"}}
handlers: {file: {class: logging.FileHandler, formatter: precise, filename: LOG_FILE}}
loggers: {synapse.storage.SQL: {level: WARNING}}
root: {level: INFO, handlers: [file]}
disable_existing_loggers: false
"""

# Proxy environment variables must never route requests for our loopback server.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# Federating test servers may reach each other on loopback, and no other address: every
# IPv4 range but 127.0.0.0/8, and all of IPv6, is blocked.
_EVERY_IPV4, _IPV4_LOOPBACK = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv4Network("127.0.0.0/8"),
)
_NOT_LOOPBACK = [*map(str, _EVERY_IPV4.address_exclude(_IPV4_LOOPBACK)), "::/0"]
# Keys only the federation mode writes; an offline start removes them again.
_FEDERATION_KEYS = (
    "tls_certificate_path",
    "tls_private_key_path",
    "federation_verify_certificates",
    "federation_ip_range_blacklist",
    "federation",
)


@dataclass(frozen=True)
class Federation:
    """Opt-in federation for a test homeserver (see the module docstring).

    Both listeners bind `host`, a loopback address (127.0.0.2 for a second server); the
    federation listener on `port` serves TLS with `certificate` and `private_key` (PEM
    files, self-signed is fine: peers do not verify). The server name is "host:port", so
    a server keeps its port for life: restart it with the same Federation and data_dir.
    `settings` go to Synapse's `federation:` section, e.g. {"destination_min_retry_interval":
    "5s"} (synapse/config/federation.py lists the keys).
    """

    host: str
    port: int
    certificate: Path
    private_key: Path
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def server_name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The federation API's base URL (HTTPS, self-signed)."""
        return f"https://{self.host}:{self.port}"


class DevServerError(RuntimeError):
    """Synapse could not be set up, started or used; the message says why."""


class _PortInUseError(DevServerError):
    """Synapse could not bind its port: another process took it after free_port() chose it."""


def _unverified_tls() -> ssl.SSLContext:
    """TLS without certificate checks: only to ask a federating test server if it is up."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# Proxy-free like _OPENER, for the self-signed federation listener.
_TLS_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=_unverified_tls())
)


def _http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
    """Send a JSON request; return (status, JSON body) for error statuses too instead of raising."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = _TLS_OPENER if url.startswith("https:") else _OPENER
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"body": raw.decode(errors="replace")}


def _tail(path: Path, lines: int = 40) -> str:
    """The last lines of a file for error messages (the log grows across runs: read its end)."""
    if not path.exists():
        return f"({path} does not exist)"
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - 64 * 1024))
        text = file.read().decode(errors="replace").splitlines()[-lines:]
    return f"--- last {len(text)} lines of {path} ---\n" + "\n".join(text)


@dataclass
class DevServer:
    """A running Synapse subprocess plus what clients need to talk to it."""

    base_url: str
    server_name: str
    data_dir: Path
    process: subprocess.Popen
    shared_secret: str
    federation: Federation | None = None

    @property
    def port(self) -> int:
        """The client listener's port (restart on it with `start_synapse(..., port=port)`)."""
        return int(self.base_url.rsplit(":", 1)[1])

    def register(self, localpart: str, password: str, *, admin: bool = False) -> str:
        """Register via Synapse's shared-secret admin API (nonce + HMAC-SHA1).

        Uses /_synapse/admin/v1/register, which works although public registration is off.
        Idempotent: if the user exists already (M_USER_IN_USE), just return the user ID;
        the existing password is then left unchanged. Returns "@localpart:server_name".
        """
        url = f"{self.base_url}/_synapse/admin/v1/register"
        status, body = _http("GET", url)
        if status != 200 or "nonce" not in body:
            raise DevServerError(f"getting a registration nonce failed: HTTP {status} {body}")
        nonce = body["nonce"]
        fields = (nonce, localpart, password, "admin" if admin else "notadmin")
        message = b"\x00".join(field.encode() for field in fields)
        mac = hmac.new(self.shared_secret.encode(), message, hashlib.sha1).hexdigest()
        payload = {"nonce": nonce, "username": localpart, "password": password}
        status, body = _http("POST", url, payload | {"admin": admin, "mac": mac})
        if status == 200:
            return body["user_id"]
        if status == 400 and body.get("errcode") == "M_USER_IN_USE":
            return f"@{localpart}:{self.server_name}"
        raise DevServerError(f"registering {localpart!r} failed: HTTP {status} {body}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait, SIGKILL if needed. Safe to call twice."""
        _stop_process(self.process, timeout)

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL if needed; does nothing if the process has ended already."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _synapse_command(*args: str) -> list[str]:
    """Run Synapse with this interpreter, so it comes from the same virtualenv as the bot."""
    return [sys.executable, "-m", "synapse.app.homeserver", *args]


def _generate_config(data_dir: Path, config_path: Path, server_name: str) -> None:
    """Let Synapse write its default config, secrets and signing key (first run only)."""
    command = _synapse_command(
        *("--server-name", server_name, "--config-path", str(config_path)),
        *("--data-directory", str(data_dir), "--generate-config", "--report-stats=no"),
    )
    result = subprocess.run(command, cwd=data_dir, capture_output=True, text=True)
    if result.returncode != 0 or not config_path.exists():
        output = (result.stdout + result.stderr).strip()
        raise DevServerError(f"synapse --generate-config failed ({result.returncode}):\n{output}")


def _lifted_rate_limits() -> dict[str, dict]:
    """Huge limits for every limiter (fresh dicts, so the YAML has no &id001 aliases)."""

    def unlimited() -> dict[str, int]:
        return {"per_second": 10000, "burst_count": 100000}

    return {
        name: {key: unlimited() for key in sub_keys} if sub_keys else unlimited()
        for name, sub_keys in _RATE_LIMITERS.items()
    }


def _federating(config: dict[str, Any], federation: Federation) -> list[dict[str, Any]]:
    """Turn an offline config federating (in place); return the extra listener it needs."""
    config.pop("federation_domain_whitelist", None)  # none: any server name
    config |= {
        "tls_certificate_path": str(Path(federation.certificate).resolve()),
        "tls_private_key_path": str(Path(federation.private_key).resolve()),
        "federation_verify_certificates": False,  # self-signed test certificates
        # By default Synapse (1.163) blocks loopback and private ranges for federation.
        # Not ip_range_whitelist: a server name that is an IP literal is checked against
        # the blocked ranges only (BlocklistingAgentWrapper gets no allowed ranges).
        "federation_ip_range_blacklist": _NOT_LOOPBACK,
        "federation": dict(federation.settings),
    }
    return [
        {
            "port": federation.port,
            "bind_addresses": [federation.host],
            "type": "http",
            "tls": True,
            "x_forwarded": False,
            "resources": [{"names": ["federation"], "compress": False}],  # + key server
        }
    ]


def _configure(
    data_dir: Path,
    config_path: Path,
    server_name: str,
    port: int,
    federation: Federation | None = None,
    database: str | None = None,
) -> str:
    """Rewrite homeserver.yaml for offline, local, unthrottled use; return the shared secret.

    Runs on every start: the listener gets the new port and paths are re-pointed into
    data_dir (so the directory may be moved). Secrets and keys from the first run stay.
    With `federation`, the server federates instead (see Federation).
    """
    config = yaml.safe_load(config_path.read_text()) or {}
    if config.get("server_name", server_name) != server_name:
        raise DevServerError(
            f"{data_dir} holds server {config['server_name']!r}, not {server_name!r}:"
            " Synapse cannot rename a server, use another data_dir"
        )
    config.setdefault("registration_shared_secret", secrets.token_urlsafe(32))
    log_config_path = data_dir / Path(config.get("log_config", "log.config")).name
    log_config_path.write_text(
        _LOG_CONFIG.replace("LOG_FILE", json.dumps(str(data_dir / LOG_FILE)))
    )
    signing_key = Path(config.get("signing_key_path", f"{server_name}.signing.key")).name
    config.pop("pid_file", None)  # only used when daemonizing
    host = federation.host if federation else "127.0.0.1"
    listener = {
        "port": port,
        "bind_addresses": [host],
        "type": "http",
        "tls": False,
        "x_forwarded": False,
        "resources": [{"names": ["client"], "compress": False}],  # client includes admin API
    }
    config |= {
        "server_name": server_name,
        "public_baseurl": f"http://{host}:{port}/",
        "listeners": [listener],
        "database": _database(data_dir, database),
        "log_config": str(log_config_path),
        "media_store_path": str(data_dir / "media_store"),
        "signing_key_path": str(data_dir / signing_key),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],  # empty: no outgoing federation at all
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "bcrypt_rounds": 4,  # bcrypt's minimum: register/login take ms instead of ~0.2s
        **_lifted_rate_limits(),
    }
    if federation:
        config["listeners"] += _federating(config, federation)
    else:
        for key in _FEDERATION_KEYS:
            config.pop(key, None)  # left by a federating start in the same data_dir
    temporary = config_path.with_name(config_path.name + ".tmp")
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    temporary.replace(config_path)  # atomic: an interrupted start never leaves half a config
    return str(config["registration_shared_secret"])


def _database(data_dir: Path, url: str | None) -> dict[str, Any]:
    """Synapse's `database` section: SQLite in data_dir, or the PostgreSQL database `url`
    (through psycopg2, Synapse's driver; any locale, for a database made without C collation)."""
    if url is None:
        return {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}}
    parts = urlsplit(url)
    args = {
        "user": parts.username or "postgres",
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "dbname": parts.path.lstrip("/"),
        "cp_min": 5,
        "cp_max": 10,
    }
    if parts.password:
        args["password"] = parts.password
    return {"name": "psycopg2", "allow_unsafe_locale": True, "args": args}


def _answers(base_url: str, federation: Federation | None) -> bool:
    """Whether the client API (and the federation API, if any) answer."""
    try:
        if _http("GET", f"{base_url}/_matrix/client/versions", timeout=2)[0] != 200:
            return False
        if federation is None:
            return True
        return _http("GET", f"{federation.url}/_matrix/federation/v1/version", timeout=2)[0] == 200
    except OSError:
        return False  # not listening yet


def _launch(
    data_dir: Path,
    config_path: Path,
    base_url: str,
    timeout: float,
    federation: Federation | None = None,
) -> subprocess.Popen:
    """Run Synapse on an already configured data_dir and wait until it answers clients
    (and other servers, if it federates)."""
    output_path = data_dir / OUTPUT_FILE
    with output_path.open("wb") as output:
        process = subprocess.Popen(
            _synapse_command("--config-path", str(config_path)),
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the caller, who stops it
        )
    atexit.register(_stop_process, process)  # no orphan if the caller crashes
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(base_url, federation):
                return process
            time.sleep(0.05)
    except BaseException:  # e.g. Ctrl-C while waiting
        _stop_process(process)
        raise
    if process.poll() is None:
        _stop_process(process)
        reason = f"Synapse did not answer on {base_url} within {timeout}s"
    else:
        reason = f"Synapse exited with code {process.returncode} while starting"
    printed = _tail(output_path)
    error = _PortInUseError if "Address already in use" in printed else DevServerError
    raise error(f"{reason}\n{printed}\n{_tail(data_dir / LOG_FILE)}")


def start_synapse(
    data_dir: Path,
    *,
    port: int | None = None,
    server_name: str = "localhost",
    startup_timeout: float = 60.0,
    federation: Federation | None = None,
    database: str | None = None,
) -> DevServer:
    """Start Synapse in data_dir (created if missing) and wait until it serves clients.

    Its database is SQLite in data_dir, or with `database` (`postgresql://user@host:port/db`,
    an empty database of its own) PostgreSQL, as a production homeserver runs: the benchmarks'
    storms of messages make SQLite, a single writer, the homeserver's bottleneck.

    With `federation`, it federates on loopback (see Federation); the server name is then
    "host:federation port" and `server_name` must be left out. Without, it is offline.

    The first run lets Synapse generate config and signing key, then homeserver.yaml is
    rewritten; later runs with the same data_dir reuse config, keys, database and shared
    secret (the port may change). Waits until GET /_matrix/client/versions answers 200;
    if the process exits or the timeout passes, raises DevServerError with the log tail.
    Never run two servers on one data_dir at once: they would share one SQLite database.
    """
    if federation is not None:
        if server_name not in ("localhost", federation.server_name):
            raise DevServerError(
                f"a federating server is called {federation.server_name!r}, not {server_name!r}"
            )
        server_name = federation.server_name
    host = federation.host if federation else "127.0.0.1"
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    config_path = data_dir / CONFIG_FILE
    if not config_path.exists():
        _generate_config(data_dir, config_path, server_name)
    attempt = 0
    while True:
        attempt += 1
        chosen_port = port or free_port(host)
        shared_secret = _configure(
            data_dir, config_path, server_name, chosen_port, federation, database
        )
        base_url = f"http://{host}:{chosen_port}"
        try:
            process = _launch(data_dir, config_path, base_url, startup_timeout, federation)
        except _PortInUseError:
            # Another process can grab a free_port() port before Synapse binds it: retry.
            if port or attempt == 3:
                raise
            continue
        return DevServer(base_url, server_name, data_dir, process, shared_secret, federation)
