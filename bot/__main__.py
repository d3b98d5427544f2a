"""`icc-bot` — run, demo, check, db upgrade, directory reload|schema [directory|playbook|rota],
logbook verify, crypto status.

Exit codes of `run`: see bot.app; `logbook verify` exits 6 when the hash chain is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from bot.directory import shape as directory_shape
from bot.directory.keeper import PID_FILE, STATUS_FILE, load_configuration
from bot.directory.model import DirectoryError
from bot.playbooks import shape as playbook_shape
from bot.rota import shape as rota_shape
from bot.runtime.logs import setup_logging
from bot.settings import (
    DEFAULT_HEALTH_ADDR,
    LOG_LEVELS,
    Settings,
    SettingsError,
    gather_environment,
    load_settings,
    log_options,
    parse_addr,
)

if TYPE_CHECKING:
    from bot.matrix.cross_signing import Status

log = logging.getLogger("bot")
EXIT_CONFIG = 2  # as bot.app.EXIT_CONFIG, without importing nio for `check`
# `icc-bot directory schema [file]`: the JSON Schema of each file the directory is loaded with.
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "directory": directory_shape.json_schema,
    "playbook": playbook_shape.json_schema,
    "rota": rota_shape.json_schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="icc-bot", description="ICC liaison bot for Matrix")
    parser.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=LOG_LEVELS,
        help="DEBUG, INFO, WARNING, ERROR; wins over ICC_LOG_LEVEL (default: it, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the bot with the configuration from the environment or .env")
    sub.add_parser("demo", help="start a local homeserver with demo users and run the bot on it")
    sub.add_parser(
        "check",
        help="validate configuration, directory, duty rotas and playbooks; non-zero on any problem",
    )
    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply migrations")
    logbook = sub.add_parser("logbook", help="an activation's logbook")
    logbook.add_argument("action", choices=["verify"], help="verify: recompute the hash chain")
    logbook.add_argument("ref", help="the activation, e.g. ICC-2026-007")
    directory = sub.add_parser("directory", help="the liaison directory")
    directory.add_argument(
        "action",
        choices=["reload", "schema"],
        help="reload: make the running bot re-read directory.yaml, the rotas and the playbooks; "
        "schema: print a file's JSON Schema, for editors",
    )
    directory.add_argument(
        "file",
        nargs="?",
        choices=list(SCHEMAS),
        help="for schema: which file's (directory.yaml, config/playbooks/<key>.yaml, "
        "config/rota/<team>.yaml); default directory",
    )
    asking = sub.add_parser(
        "probe",
        help="ask the bot running here (ICC_HEALTH_ADDR): live (the process answers) or ready "
        "(the active instance, syncing, its database reachable); exit 0 if so, else 1",
    )
    asking.add_argument("what", choices=["live", "ready"])
    crypto = sub.add_parser("crypto", help="the bot's encryption identity")
    crypto.add_argument(
        "action",
        choices=["status"],
        help="status: the bot's cross-signing identity and device, as the homeserver shows them",
    )
    args = parser.parse_args(argv)

    if args.command == "directory" and args.action == "schema":  # needs no configuration
        print(json.dumps(SCHEMAS[args.file or "directory"](), indent=2, ensure_ascii=False))
        return 0
    if args.command == "directory" and args.file is not None:
        parser.error(f"`directory {args.action}` takes no file; `directory schema {args.file}`")
    if args.command == "probe":  # needs ICC_HEALTH_ADDR only: a container's health check
        return probe(args.what)
    # In the configured format from the first line (the warnings of reading the settings);
    # the secrets are known once the settings are read.
    log_format, level = log_options()
    setup_logging(args.log_level or level, log_format=log_format)
    if args.command == "demo":
        from bot.demo import run_demo

        return run_demo()
    try:
        settings = load_settings()
    except SettingsError as exc:
        if args.command == "run" and log_format == "json":  # for the log collector, as JSON
            for line in exc.problems:
                log.error("configuration: %s", line)
        else:
            _print_problems("configuration", exc.problems)
        return EXIT_CONFIG
    setup_logging(
        args.log_level or settings.log_level, settings.secrets(), log_format=settings.log_format
    )
    if args.command == "check":
        return check(settings)
    if args.command == "db":
        return asyncio.run(upgrade_database(settings))
    if args.command == "directory":
        return reload_directory(settings)
    if args.command == "logbook":
        return asyncio.run(verify_logbook(settings, args.ref))
    if args.command == "crypto":
        return asyncio.run(crypto_status(settings))
    return run(settings)


def probe(what: str, timeout: float = 4.0) -> int:
    """GET /livez or /readyz of the bot on ICC_HEALTH_ADDR (a wildcard address asked on
    loopback): 0 when it answers 200, 1 otherwise, 2 when the address is not one."""
    env = gather_environment()
    address = (env.get("ICC_HEALTH_ADDR") or "").strip() or DEFAULT_HEALTH_ADDR
    try:
        host, port = parse_addr(address)
    except ValueError as exc:
        print(f"ICC_HEALTH_ADDR: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/{what}z"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            print(answer.read().decode(errors="replace"))
            return 0
    except urllib.error.HTTPError as exc:
        print(f"{url}: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
    return 1


def check(settings: Settings) -> int:
    """The directory and the duty rotas and playbooks beside it, checked as the bot loads them."""
    try:
        directory, rotas, playbooks, warnings = load_configuration(
            settings.directory_path, zone=settings.timezone
        )
    except DirectoryError as exc:
        own = all(line.startswith(str(settings.directory_path)) for line in exc.problems)
        _print_problems("directory" if own else "directory, rota and playbook", exc.problems)
        return EXIT_CONFIG
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for channel, on, setting in (
        ("email", settings.smtp_url, "ICC_SMTP_URL"),
        ("sms", settings.sms_url, "ICC_SMS_URL"),
    ):
        reached = [c.handle for c in directory.contacts.values() if channel in c.channels]
        if reached and not on:
            print(
                f"warning: {len(reached)} contacts are to be reached by {channel} "
                f"({', '.join(reached[:5])}{', …' if len(reached) > 5 else ''}), but {setting} "
                "is not set: that step is recorded as not sent and the next channel goes",
                file=sys.stderr,
            )
    sample = _sms_sample(settings) if settings.sms_url else None
    if settings.sms_url and sample is None:
        return EXIT_CONFIG
    teams = f"{len(rotas)} rotas ({', '.join(rotas.teams())})" if len(rotas) else "no rotas"
    books = f"{len(playbooks)} playbooks ({', '.join(playbooks)})" if playbooks else "no playbooks"
    print(
        f"configuration OK; directory OK ({len(directory.contacts)} contacts, "
        f"{len(directory.organisations)} organisations); {teams}; {books}"
    )
    if sample:
        print(f"SMS gateway request, for a sample SMS: {sample}")
    return 0


def _sms_sample(settings: Settings) -> str | None:
    """The request a sample SMS makes with the templates in force, or None (and the problem
    printed) when the operator's `sms_request` template does not make one."""
    from bot.reach.sms import SmsError, SmsGateway, sample_request
    from bot.render import Renderer

    gateway = SmsGateway(settings.sms_url, settings.sms_token, Renderer(settings.template_dir))
    try:
        body, content_type = sample_request(gateway)
    except SmsError as exc:
        _print_problems("SMS template", [str(exc)])
        return None
    return f"POST {settings.sms_url} ({content_type}) {body}"


async def upgrade_database(settings: Settings) -> int:
    from bot.storage.db import Database

    db = Database(settings.database_url)
    try:
        await db.upgrade()
        print(f"database at revision {await db.check_schema()}")
    finally:
        await db.dispose()
    return 0


def run(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT; map start-up failures to distinct exit codes."""
    without_unused_drivers(settings.database_url)
    from bot.app import App, serve

    return asyncio.run(serve(App(settings)))


def without_unused_drivers(database_url: str) -> None:
    """Keep PostgreSQL drivers the bot will not use out of the process. nio keeps its keys with
    peewee, which imports every PostgreSQL driver installed when it is imported, in case a store
    is on PostgreSQL (nio's never is): psycopg2, which the bot never uses (7 MB where installed,
    beside a homeserver), and psycopg, for a bot on SQLite (12 MB). Called before nio is."""
    unused = ["psycopg2"] + ([] if database_url.startswith("postgresql") else ["psycopg"])
    for name in unused:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: imports fail


async def verify_logbook(settings: Settings, ref: str) -> int:
    """Recompute the hash chain of one activation's logbook; name the first broken entry."""
    from bot.activations import chain
    from bot.storage import activation_store
    from bot.storage.db import Database

    db = Database(settings.database_url)
    try:
        async with db.session() as session:
            activation = await activation_store.by_ref(session, ref)
            if activation is None:
                print(f"no activation {ref.upper()} in {settings.database_url}", file=sys.stderr)
                return 1
            entries = await activation_store.log_entries(session, activation.id)
    finally:
        await db.dispose()
    result = chain.verify(activation.ref, entries)
    if result.ok:
        print(f"{activation.ref}: logbook intact, {result.entries} entries")
        return 0
    print(
        f"{activation.ref}: logbook BROKEN at entry #{result.first_broken}: {result.reason}",
        file=sys.stderr,
    )
    return 6


async def crypto_status(settings: Settings) -> int:
    """Who the bot is, its device, its master key, and whether the device is cross-signed, as
    the homeserver shows them to anyone (asked with the stored session); 0 when it is."""
    from aiohttp import ClientError

    from bot.matrix.client import LoginFailed
    from bot.matrix.cross_signing import CrossSigningUnavailable, read_status
    from bot.matrix.identity import IdentityFileError

    try:
        status = await read_status(settings)
    except (LoginFailed, IdentityFileError) as exc:  # not logged in yet, a damaged file
        print(str(exc), file=sys.stderr)
        return 1
    except (CrossSigningUnavailable, ClientError, TimeoutError) as exc:
        print(f"could not ask the homeserver: {exc}", file=sys.stderr)
        return 1
    for label, value in _status_rows(status):
        print(f"{label + ':':<40}{value}")
    if not status.view.chain_valid:
        print(
            "the device is not cross-signed: see the log of the bot's last start", file=sys.stderr
        )
    return 0 if status.view.chain_valid else 1


def _status_rows(status: Status) -> list[tuple[str, str]]:
    from bot.matrix.cross_signing import recovery_file_of

    view, stored = status.view, status.stored
    master = view.master_key or "none on the homeserver"
    if view.master_key and stored is not None and stored.master != view.master_key:
        master += f" (NOT the one the bot stored, {stored.master})"
    recovery = recovery_file_of(status)
    place = "none known for this identity"
    if recovery is not None:
        place = str(recovery) if recovery.exists() else f"{recovery} (no longer there)"
    return [
        ("user", status.user_id),
        ("device", status.device_id),
        ("master key", master),
        ("device signed by self-signing key", "yes" if view.device_signed else "no"),
        ("self-signing key signed by master key", "yes" if view.self_signing_signed else "no"),
        ("recovery key file", place),
    ]


def reload_directory(settings: Settings, wait_seconds: float = 10.0) -> int:
    """Validate here first (so the operator sees the problems), then SIGHUP the running bot and
    wait for its verdict in the status file it writes after every load."""
    if check(settings) != 0:
        print("not reloaded: the running bot keeps its directory", file=sys.stderr)
        return EXIT_CONFIG
    pid_path = settings.data_dir / PID_FILE
    try:
        pid = int(pid_path.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        print(
            f"no running bot found ({pid_path}); `icc-bot run` loads the directory at start",
            file=sys.stderr,
        )
        return 1
    status_path = settings.data_dir / STATUS_FILE
    before = status_path.stat().st_mtime_ns if status_path.exists() else 0
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if status_path.exists() and status_path.stat().st_mtime_ns != before:
            status = json.loads(status_path.read_text())
            if status["ok"]:
                print(
                    f"directory reloaded by the running bot (pid {pid}): "
                    f"{status['contacts']} contacts"
                )
                return 0
            _print_problems("directory", status["problems"])
            return EXIT_CONFIG
        time.sleep(0.1)
    print(
        f"reload signalled to pid {pid}, but it did not report back within {wait_seconds:.0f}s; "
        "see its log",
        file=sys.stderr,
    )
    return 1


def _print_problems(what: str, problems: list[str]) -> None:
    print(f"{len(problems)} {what} problem{'s' if len(problems) != 1 else ''}:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
