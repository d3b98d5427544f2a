"""Operations as operators run them (issue 25): liveness and readiness of each instance of an
active/standby pair, Prometheus metrics that move when their event happens, JSON logs without
secrets, secrets read from files, and the deployment files (Compose, systemd, Dockerfile)
checked against what the bot knows."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import EXIT_CONFIG, EXIT_LOGIN, EXIT_SCHEMA
from bot.matrix.sync import SyncLoop
from bot.paging import send as send_module
from bot.reach.links import ack_url
from bot.runtime.health import Readiness, readiness
from bot.runtime.leader import Leadership
from bot.runtime.logs import add_secrets
from bot.runtime.metrics import Metrics, build_version
from bot.settings import KNOWN_VARIABLES, SECRET_VARIABLES, SettingsError, load_settings
from bot.storage import page_store
from bot.storage.db import Database
from bot.storage.models import TimerKind
from bot.timeutil import utcnow
from bot.web.ops import OpsServer
from tests.support.cast import desk_cast, paging_directory
from tests.support.desk import Desk, desk_running
from tests.support.homeserver import ScriptedClient
from tests.support.mail import SmtpSink
from tests.support.ops import (
    REPO,
    answers,
    dockerfile_environment,
    free_port,
    get,
    logging_into,
    sample,
    unit_entries,
    unit_environment,
)
from tests.support.processes import BotProcess, process_env, run_cli, wait_for_log
from tests.support.reach import fallen_back, paged

GOOD = {
    "ICC_HOMESERVER": "https://matrix.crisis.example",
    "ICC_USER_ID": "@iccbot:crisis.example",
    "ICC_PASSWORD": "a-real-secret-value",
    "ICC_STORE_KEY": "another-long-random-value",
}
DEPLOY = REPO / "deploy"
PARTNER_MAIL = "duty@ercc.example"


# -- /livez, /readyz, /metrics --------------------------------------------------------------------


@asynccontextmanager
async def ready_stub(report: Readiness) -> AsyncIterator[OpsServer]:
    """The operations endpoint on a loopback port, always `report`ing, for the block."""

    async def ready() -> Readiness:
        return report

    server = OpsServer("127.0.0.1", 0, ready=ready, metrics=Metrics())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


STANDBY = Readiness(
    {"active": False, "sync": False, "database": True},
    "standby: waiting for the leader lock",
)


async def test_livez_answers_200_on_a_standby() -> None:
    async with ready_stub(STANDBY) as server:
        assert await get(server.port, "/livez") == (200, {"live": True})


async def test_readyz_answers_503_with_the_reason_on_a_standby() -> None:
    async with ready_stub(STANDBY) as server:
        status, said = await get(server.port, "/readyz")
    assert status == 503
    assert said == {
        "ready": False,
        "reason": "standby: waiting for the leader lock",
        "checks": {"active": False, "sync": False, "database": True},
    }


async def test_healthz_answers_as_readyz_for_existing_deployments() -> None:
    async with ready_stub(STANDBY) as server:
        assert await get(server.port, "/healthz") == await get(server.port, "/readyz")


async def test_metrics_are_served_as_prometheus_text() -> None:
    async with ready_stub(STANDBY) as server:
        status, text = await get(server.port, "/metrics")
    assert status == 200
    assert "# TYPE icc_commands_total counter" in text


async def database_answers() -> None:
    return None


async def database_away() -> None:
    raise OSError("connection refused")


async def test_ready_when_active_synced_and_the_database_answers() -> None:
    report = await readiness(leader=True, started=True, last_sync=utcnow(), ping=database_answers)
    assert report.ready
    assert report.as_json() == {
        "ready": True,
        "checks": {"active": True, "sync": True, "database": True},
    }


async def test_not_ready_when_the_last_sync_is_over_a_minute_old() -> None:
    last = utcnow() - timedelta(seconds=75)
    report = await readiness(leader=True, started=True, last_sync=last, ping=database_answers)
    assert not report.ready
    assert report.reason is not None
    assert report.reason.startswith("no sync within 60s (last: 75s ago")


async def test_not_ready_when_the_database_does_not_answer() -> None:
    report = await readiness(leader=True, started=True, last_sync=utcnow(), ping=database_away)
    assert (report.ready, report.reason) == (False, "the database does not answer")


async def test_not_ready_while_starting_up() -> None:
    report = await readiness(leader=True, started=False, last_sync=None, ping=database_answers)
    assert report.reason == "starting: the first sync is not handled yet"


@pytest.mark.synapse
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_each_instance_says_whether_it_is_active_and_they_swap_on_failover(
    bot_env: dict[str, str], tmp_path: Path
) -> None:
    """Two real `icc-bot run` on one PostgreSQL: the standby is live and not ready, the active
    one both; when the active one dies the standby becomes ready, and the first, started
    again, is the standby."""
    port_a, port_b = free_port(), free_port()
    env_a = bot_env | {"ICC_HEALTH_ADDR": f"127.0.0.1:{port_a}"}
    env_b = bot_env | {
        "ICC_HEALTH_ADDR": f"127.0.0.1:{port_b}",
        "ICC_DATA_DIR": str(tmp_path / "data-b"),
    }
    log_a, log_b = tmp_path / "a.log", tmp_path / "b.log"
    first, second = BotProcess(env_a, log_a), BotProcess(env_b, log_b)
    await first.start()
    second.launch()
    try:
        await wait_for_log(log_b, "standby: another instance is active")
        assert (await get(port_b, "/livez"))[0] == 200
        standby = await answers(port_b, "/readyz", 503)
        assert standby["reason"] == "standby: waiting for the leader lock"
        assert (await get(port_a, "/livez"))[0] == 200
        assert (await answers(port_a, "/readyz", 200))["ready"] is True

        await asyncio.to_thread(first.kill)
        await answers(port_b, "/readyz", 200, timeout=30)  # the standby took over
        first.launch()
        await wait_for_log(log_a, "standby: another instance is active")
        assert (await get(port_a, "/livez"))[0] == 200
        assert (await answers(port_a, "/readyz", 503))["checks"]["active"] is False
        assert (await get(port_b, "/readyz"))[0] == 200
    finally:
        for bot in (first, second):
            await asyncio.to_thread(bot.stop, 20)


# -- metrics: each moves when its event happens ---------------------------------------------------


def reach_directory() -> dict[str, Any]:
    """The paging cast: the partner reached by e-mail after Matrix, the DG by SMS (off here)."""
    directory = paging_directory(desk_cast())
    by_handle = {c["handle"]: c for c in directory["contacts"]}
    by_handle["partner"].update(email=PARTNER_MAIL, channels=["matrix", "email"])
    by_handle["dg"].update(phone="+32475123456", channels=["matrix", "sms"])
    return directory


@pytest.fixture
async def reach_desk(tmp_path: Path, database_url: str, smtp: SmtpSink) -> AsyncIterator[Desk]:
    env = smtp.env(ICC_PUBLIC_URL="https://icc.example")
    async with desk_running(tmp_path, database_url, contacts=reach_directory(), env=env) as d:
        yield d


async def test_a_command_is_counted_by_name_and_outcome_with_its_duration(desk: Desk) -> None:
    metrics = desk.services.metrics
    await desk.ask("lead", desk.room("lead"), "!icc help")
    assert sample(metrics, "icc_commands_total", command="help", outcome="done") == 1
    assert sample(metrics, "icc_command_duration_seconds_count", command="help") == 1


async def test_a_command_nobody_declared_is_counted_as_unknown_not_as_typed(desk: Desk) -> None:
    metrics = desk.services.metrics
    await desk.ask("lead", desk.room("lead"), "!icc frobnicate-x7")
    assert sample(metrics, "icc_commands_total", command="unknown", outcome="unknown") == 1
    assert "frobnicate" not in metrics.render().decode()


async def test_a_page_on_matrix_and_its_acknowledgement_are_counted_by_channel(
    paging_desk: Desk,
) -> None:
    desk, metrics = paging_desk, paging_desk.services.metrics
    await paged(desk, "partner", "Pumps needed?")
    assert sample(metrics, "icc_pages_sent_total", channel="matrix") == 1
    await desk.ask("partner", desk.dm_of("partner"), "!ack")
    assert sample(metrics, "icc_acknowledgements_total", channel="matrix", how="command") == 1
    assert sample(metrics, "icc_acknowledgement_latency_seconds_count", channel="matrix") == 1


async def test_a_fallback_by_email_is_counted_and_its_mail_as_a_page_sent(
    reach_desk: Desk, smtp: SmtpSink
) -> None:
    desk, metrics = reach_desk, reach_desk.services.metrics
    await fallen_back(desk, "partner", "Pumps needed?")
    assert len(smtp.to(PARTNER_MAIL)) == 1
    assert sample(metrics, "icc_fallbacks_total", channel="email") == 1
    assert sample(metrics, "icc_pages_sent_total", channel="email") == 1


async def test_an_acknowledgement_by_link_is_counted_under_link(reach_desk: Desk) -> None:
    desk, metrics = reach_desk, reach_desk.services.metrics
    await paged(desk, "partner", "Pumps needed?")
    async with desk.services.db.session() as session:
        [row] = await page_store.targets(session, 1)
    url = ack_url(desk.settings, row.id)
    assert url is not None
    await desk.services.links.acknowledge(url.rsplit("/", 1)[1])
    assert sample(metrics, "icc_acknowledgements_total", channel="link", how="link") == 1
    assert sample(metrics, "icc_acknowledgement_latency_seconds_count", channel="link") == 1


async def test_a_channel_that_is_off_is_a_send_failure_with_its_reason(reach_desk: Desk) -> None:
    desk, metrics = reach_desk, reach_desk.services.metrics
    await fallen_back(desk, "dg", "Convoy at the border?")  # SMS: no gateway configured
    assert sample(metrics, "icc_fallbacks_total", channel="sms") == 1
    assert sample(metrics, "icc_send_failures_total", channel="sms", reason="off") == 1


async def test_a_page_the_homeserver_refuses_is_a_send_failure(
    paging_desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(send_module, "SEND_RETRIES", (0.0, 0.0))
    desk, metrics = paging_desk, paging_desk.services.metrics
    room = await paged(desk, "partner", "First page")
    desk.messenger.failing.add(desk.dm_of("partner"))
    await desk.say("member", room, "!icc page partner Second page")
    assert sample(metrics, "icc_send_failures_total", channel="matrix", reason="refused") == 1


async def test_an_escalation_step_is_counted_and_its_lateness_observed(
    paging_desk: Desk,
) -> None:
    desk, metrics = paging_desk, paging_desk.services.metrics
    await paged(desk, "partner", "Pumps needed?")
    await desk.fire(TimerKind.PAGE_STEP)
    assert sample(metrics, "icc_escalation_steps_total", step="escalate") == 1
    assert sample(metrics, "icc_timer_lateness_seconds_count", kind="page.step") == 1


async def test_a_completed_sync_sets_the_last_sync_time(desk: Desk) -> None:
    metrics = Metrics()
    room = desk.room("lead")
    client = ScriptedClient(desk.settings.user_id, room, [desk.who("lead")])

    async def nothing() -> None:
        return None

    loop = SyncLoop(
        client,
        desk.services.db,
        wants=desk.runner.wants,
        dispatch=lambda _items: None,
        on_invite=lambda *_: nothing(),
        on_ready=nothing,
        timeout_ms=0,
        metrics=metrics,
    )
    before = utcnow().timestamp()
    running = asyncio.create_task(loop.run())
    try:
        await client.deliver([], running)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await client.close()
    assert sample(metrics, "icc_last_sync_timestamp_seconds") >= before


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_leader_state_is_1_on_the_active_instance_and_0_on_the_standby(
    database_url: str,
) -> None:
    first_db, second_db = Database(database_url), Database(database_url)
    first_metrics, second_metrics = Metrics(), Metrics()
    first = Leadership(first_db, "@bot:x", poll_seconds=0.1, metrics=first_metrics)
    second = Leadership(second_db, "@bot:x", poll_seconds=0.1, metrics=second_metrics)
    standby = None
    try:
        await first.acquire()
        standby = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.3)
        assert sample(first_metrics, "icc_leader") == 1
        assert sample(second_metrics, "icc_leader") == 0
        await first.release()
        await asyncio.wait_for(standby, 5)
        assert sample(first_metrics, "icc_leader") == 0
        assert sample(second_metrics, "icc_leader") == 1
    finally:
        if standby is not None and not standby.done():
            standby.cancel()
        await first.release()
        await second.release()
        for db in (first_db, second_db):
            await db.dispose()


def test_build_info_carries_the_version() -> None:
    metrics = Metrics()
    assert sample(metrics, "icc_build_info", version=build_version()) == 1


def test_the_standard_process_metrics_are_there() -> None:
    text = Metrics().render().decode()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"):
        assert f"\n{name}" in text, name


# -- logs ------------------------------------------------------------------------------------------


async def test_a_command_logs_one_json_line_with_its_fields(desk: Desk) -> None:
    buffer = io.StringIO()
    room = desk.room("lead")
    with logging_into(buffer, "json"):
        event_id, _ = await desk.said("lead", room, "!icc help")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    [line] = [line for line in lines if line.get("command") == "help"]
    assert line["logger"] == "bot.chat.dispatch"
    assert line["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["event"], line["room"], line["outcome"]) == (event_id, room, "done")
    assert line["message"].startswith("command=help ")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_a_log_line(log_format: str) -> None:
    secret = "sup3r-secret-pw"
    buffer = io.StringIO()
    log = logging.getLogger("bot.test")
    with logging_into(buffer, log_format, [secret]):
        log.info("login with %s", secret)
        log.info("a field", extra={"room": f"!{secret}:x"})
        try:
            raise RuntimeError(f"refused: {secret}")
        except RuntimeError:
            log.exception("it failed")
    written = buffer.getvalue()
    assert secret not in written
    assert "login with ***" in written
    assert "refused: ***" in written


def test_a_token_learnt_after_start_is_redacted_too() -> None:
    buffer = io.StringIO()
    with logging_into(buffer, "json"):
        add_secrets(["syt_learnt_at_login"])
        logging.getLogger("bot.test").info("token syt_learnt_at_login in a URL")
    assert json.loads(buffer.getvalue())["message"] == "token *** in a URL"


def test_the_database_password_is_never_in_the_start_up_line() -> None:
    url = "postgresql://icc:db-secret-pw@db.crisis.example/icc"
    settings = load_settings(GOOD | {"ICC_DATABASE_URL": url})
    assert settings.redacted()["database_url"] == "postgresql://icc:***@db.crisis.example/icc"
    assert "db-secret-pw" in settings.secrets()


def test_icc_run_writes_json_lines_only_and_no_secret(tmp_path: Path) -> None:
    """A real start with ICC_LOG_FORMAT=json (ended by a missing directory, exit 2): every line
    on standard error is a JSON object, and none carries a secret."""
    secrets = {"ICC_PASSWORD": "sup3r-secret-pw", "ICC_STORE_KEY": "st0re-secret-key"}
    env = secrets | {
        "ICC_HOMESERVER": f"http://127.0.0.1:{free_port()}",
        "ICC_USER_ID": "@iccbot:crisis.example",
        "ICC_DATA_DIR": str(tmp_path / "data"),
        "ICC_CONFIG_DIR": str(tmp_path / "config"),  # no directory.yaml
        "ICC_DATABASE_URL": f"sqlite:///{tmp_path / 'icc.db'}",
        "ICC_SMTP_URL": "smtp://icc:m4il-secret-pw@127.0.0.1:25",
        "ICC_MAIL_FROM": "icc@crisis.example",
        "ICC_HEALTH_ADDR": "127.0.0.1:0",
        "ICC_LOG_FORMAT": "json",
    }
    result = run_cli(env, "run")
    assert result.returncode == EXIT_CONFIG
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(line["message"].startswith("starting with") for line in lines)
    assert any("directory.yaml" in line["message"] for line in lines)
    for secret in [*secrets.values(), "m4il-secret-pw"]:
        assert secret not in result.stderr


def test_log_format_and_level_are_settings() -> None:
    settings = load_settings(GOOD | {"ICC_LOG_FORMAT": "JSON", "ICC_LOG_LEVEL": "debug"})
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    with pytest.raises(SettingsError, match="ICC_LOG_FORMAT: `xml` is not text or json"):
        load_settings(GOOD | {"ICC_LOG_FORMAT": "xml"})


# -- secrets from files ------------------------------------------------------------------------


# A valid value of each secret variable, and what it needs beside it.
SECRET_VALUES: dict[str, tuple[str, dict[str, str]]] = {
    "ICC_PASSWORD": ("pw-from-a-file", {}),
    "ICC_ACCESS_TOKEN": ("syt_from_a_file", {}),
    "ICC_STORE_KEY": ("store-key-from-a-file", {}),
    "ICC_DATABASE_URL": ("postgresql://icc:pw@db.crisis.example/icc", {}),
    "ICC_SMTP_URL": ("smtp://icc:pw@mail.crisis.example:587", {"ICC_MAIL_FROM": "i@c.example"}),
    "ICC_IMAP_URL": ("imaps://icc:pw@mail.crisis.example:993/INBOX", {}),
    "ICC_SMS_TOKEN": ("sms-token-from-a-file", {"ICC_SMS_URL": "https://sms.example/send"}),
    "ICC_SMS_SECRET": ("a-signing-secret-0123456789", {"ICC_PUBLIC_URL": "https://icc.example"}),
}


def test_every_secret_variable_has_a_file_form_here() -> None:
    assert set(SECRET_VALUES) == set(SECRET_VARIABLES)


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_a_secret_is_read_from_its_file_without_the_trailing_newline(
    name: str, tmp_path: Path
) -> None:
    value, beside = SECRET_VALUES[name]
    secret_file = tmp_path / "secret"
    secret_file.write_text(value + "\n")
    env = {k: v for k, v in GOOD.items() if k != name} | beside
    settings = load_settings(env | {f"{name}_FILE": str(secret_file)})
    assert getattr(settings, name.removeprefix("ICC_").lower()) == value


def test_a_secret_set_both_ways_is_refused(tmp_path: Path) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("pw-from-a-file\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(GOOD | {"ICC_PASSWORD_FILE": str(secret_file)})
    assert caught.value.problems == [
        "ICC_PASSWORD and ICC_PASSWORD_FILE: both are set; set only one of them"
    ]


def test_a_secret_file_that_is_missing_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in GOOD.items() if k != "ICC_PASSWORD"}
    missing = tmp_path / "nowhere"
    with pytest.raises(SettingsError) as caught:
        load_settings(env | {"ICC_PASSWORD_FILE": str(missing)})
    assert caught.value.problems == [
        f"ICC_PASSWORD_FILE: cannot read {missing}: No such file or directory"
    ]


def test_a_secret_file_that_is_missing_stops_the_bot_with_the_configuration_code(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in GOOD.items() if k != "ICC_STORE_KEY"}
    result = run_cli(env | {"ICC_STORE_KEY_FILE": str(tmp_path / "nowhere")}, "check")
    assert result.returncode == EXIT_CONFIG
    assert "ICC_STORE_KEY_FILE: cannot read" in result.stderr


# -- the deployment files --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def bots(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s.get("command") == ["run"]}


def test_compose_runs_synapse_postgresql_and_two_bot_instances() -> None:
    services = compose()["services"]
    assert services["synapse"]["image"].startswith("matrixdotorg/synapse:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert len(bots(services)) == 2
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    for bot in bots(services).values():
        assert bot["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_compose_health_checks_ask_liveness_of_each_bot_and_its_peers() -> None:
    services = compose()["services"]
    for name, service in services.items():
        if name == "migrate":
            continue  # runs once and ends
        assert service["healthcheck"]["test"], name
    for bot in bots(services).values():
        assert bot["healthcheck"]["test"] == ["CMD", "icc-bot", "probe", "live"]


def test_compose_gives_each_bot_its_own_data_volume() -> None:
    services, volumes = compose()["services"], compose()["volumes"]
    data = [
        next(v.split(":")[0] for v in bot["volumes"] if v.endswith(":/data"))
        for bot in bots(services).values()
    ]
    assert len(set(data)) == 2
    assert set(data) <= set(volumes)


def test_compose_sets_only_variables_the_bot_knows_and_secrets_as_files() -> None:
    image = dockerfile_environment(REPO / "Dockerfile")
    for name, service in compose()["services"].items():
        if not service.get("image", "").startswith("icc-bot"):
            continue
        env = service["environment"]
        assert set(env) <= KNOWN_VARIABLES, name
        assert not set(env) & set(SECRET_VARIABLES), f"{name}: a secret in plain sight"
        for secret in SECRET_VARIABLES:  # never both forms, the image's defaults included
            assert not (secret in env | image and f"{secret}_FILE" in env), (name, secret)
        for variable, path in env.items():
            if variable.endswith("_FILE") and variable != "ICC_RECOVERY_KEY_FILE":
                assert path.removeprefix("/run/secrets/") in service["secrets"], variable


def test_the_unit_does_not_restart_on_the_configuration_exit_codes() -> None:
    service = unit_entries(DEPLOY / "icc-bot.service")["Service"]
    [codes] = [value for key, value in service if key == "RestartPreventExitStatus"]
    assert {int(code) for code in codes.split()} == {EXIT_CONFIG, EXIT_LOGIN, EXIT_SCHEMA}
    assert ("Restart", "on-failure") in service


def test_the_unit_is_hardened_and_writes_only_its_data_directory() -> None:
    service = dict(unit_entries(DEPLOY / "icc-bot.service")["Service"])
    for option, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(option) == value, option
    data_dir = unit_environment(unit_entries(DEPLOY / "icc-bot.service")["Service"])
    assert service["ReadWritePaths"] == data_dir["ICC_DATA_DIR"]


def test_the_unit_sets_only_variables_the_bot_knows_and_loads_its_secrets() -> None:
    service = unit_entries(DEPLOY / "icc-bot.service")["Service"]
    env = unit_environment(service)
    assert set(env) <= KNOWN_VARIABLES
    assert not set(env) & set(SECRET_VARIABLES)
    loaded = {value.split(":", 1)[0] for key, value in service if key == "LoadCredential"}
    files = {v.removeprefix("%d/") for k, v in env.items() if k.endswith("_FILE")}
    assert files == loaded
    assert {"ICC_PASSWORD_FILE", "ICC_STORE_KEY_FILE", "ICC_DATABASE_URL_FILE"} <= set(env)


def test_the_image_listens_on_all_interfaces_and_exposes_its_ports() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    env = dockerfile_environment(REPO / "Dockerfile")
    ports = {env[name].rsplit(":", 1)[1] for name in ("ICC_HEALTH_ADDR", "ICC_WEB_ADDR")}
    assert {env[name].rsplit(":", 1)[0] for name in ("ICC_HEALTH_ADDR", "ICC_WEB_ADDR")} == {
        "0.0.0.0"
    }
    [exposed] = re.findall(r"^EXPOSE (.+)$", dockerfile, re.MULTILINE)
    assert set(exposed.split()) == ports
    assert 'CMD ["icc-bot", "probe", "live"]' in dockerfile


def test_the_docker_build_leaves_out_secrets_and_local_state() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for entry in ("config/.env", "data/", ".venv", ".git", "tests/"):
        assert entry in ignored, entry


SAMPLES = {  # the samples of a metric family, by its type
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "info": ("_info",),
}


def test_the_dashboard_uses_only_metrics_the_bot_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    used = {name for query in queries for name in re.findall(r"\bicc_\w+", query)}
    exported = {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in SAMPLES[family.type]
    }
    assert used
    assert used <= exported, used - exported


# -- the probe the image's health check runs ---------------------------------------------------


async def test_probe_live_exits_0_when_the_bot_answers_and_1_when_not() -> None:
    async with ready_stub(STANDBY) as server:
        env = process_env({"ICC_HEALTH_ADDR": f"0.0.0.0:{server.port}"})
        live = await asyncio.to_thread(probe, env, "live")
        ready = await asyncio.to_thread(probe, env, "ready")
    assert (live, ready) == (0, 1)


def probe(env: dict[str, str], what: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "bot", "probe", what],
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    ).returncode
