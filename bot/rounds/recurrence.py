"""When rounds run: `every 30m`, `daily 09:00`, `weekdays 08:30`, or a 5-field cron expression,
always as wall-clock time in a named IANA zone.

Everything becomes a cron expression evaluated by APScheduler's CronTrigger in that zone, so that
`daily 09:00` stays 09:00 Brussels across daylight-saving changes — never a fixed 86,400-second
interval.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from apscheduler.triggers.cron import CronTrigger

from bot.timeutil import load_zone

_EVERY = re.compile(r"^every\s+(\d+)\s*([mh])$", re.IGNORECASE)
_AT = re.compile(r"^(daily|weekdays)\s+([01]?\d|2[0-3]):([0-5]\d)$", re.IGNORECASE)


def to_cron(when: str) -> str:
    """The cron expression for a schedule as people write it; ValueError says what works."""
    text = " ".join(when.split())
    every = _EVERY.match(text)
    if every:
        n, unit = int(every.group(1)), every.group(2).lower()
        if unit == "m" and n > 0 and 60 % n == 0:
            return "* * * * *" if n == 1 else f"*/{n} * * * *"
        if unit == "h" and n > 0 and 24 % n == 0:
            return "0 * * * *" if n == 1 else f"0 */{n} * * *"
        raise ValueError(
            f"`{text}`: the interval must divide the hour or the day evenly "
            "(every 5m, 10m, 15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h)"
        )
    at = _AT.match(text)
    if at:
        days = "*" if at.group(1).lower() == "daily" else "1-5"
        return f"{int(at.group(3))} {int(at.group(2))} * * {days}"
    if len(text.split()) == 5:
        try:
            fires = trigger(text, "UTC").get_next_fire_time(None, datetime.now(UTC))
        except ValueError as exc:
            raise ValueError(f"`{text}` is not a valid cron expression: {exc}") from None
        if fires is None:  # 0 0 31 2 *: a valid expression for a day that never comes
            raise ValueError(f"`{text}` never runs: no date matches it")
        return text
    raise ValueError(
        f"`{text}` is not a schedule: use `every 30m`, `daily 09:00`, `weekdays 08:30` "
        "or a 5-field cron expression such as `0 9 * * 1-5`"
    )


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _cron_weekdays(field: str) -> str:
    """Crontab counts weekdays from Sunday = 0; APScheduler 3 from Monday = 0. Naming the days
    keeps `1-5` meaning Monday to Friday (with from_crontab it would mean Tuesday to Saturday)."""
    return re.sub(
        r"(?<![/\d])(\d)(?!\d)",
        lambda m: _DAY_NAMES[int(m.group(1))] if int(m.group(1)) <= 7 else m.group(1),
        field,
    )


def trigger(cron: str, timezone: str) -> CronTrigger:
    minute, hour, day, month, weekdays = cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_cron_weekdays(weekdays),
        timezone=load_zone(timezone),
    )


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first run strictly after `after` (aware), as an aware datetime in UTC."""
    fire = trigger(cron, timezone).get_next_fire_time(None, after)
    assert fire is not None
    if fire <= after:  # a run exactly at `after` is the one that just happened
        fire = trigger(cron, timezone).get_next_fire_time(fire, fire)
    return fire.astimezone(load_zone("UTC"))
