"""When rounds run: `every 30m`, `daily 09:00`, `weekdays 08:30`, or a 5-field cron expression,
always as wall-clock time in a named IANA zone.

Everything becomes a cron expression, evaluated as crontab evaluates it by cronsim (a maintained
library): weekdays counted from Sunday = 0 (7 too), steps on ranges (`1-5/2`), and a day given in
both day fields matching either (`0 9 1 * 1`: the 1st and every Monday). `daily 09:00` stays 09:00
Brussels across daylight-saving changes — never a fixed 86,400-second interval; a time the clock
skips runs when the clock resumes, a time it repeats runs once.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

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
        if not _valid(text):
            if _valid(_any_month(text)):  # 31 in February: each field is fine, together never
                raise ValueError(f"`{text}` never runs: no date matches it")
            try:
                CronSim(text, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(f"`{text}` is not a valid cron expression: {exc}") from None
        return text
    raise ValueError(
        f"`{text}` is not a schedule: use `every 30m`, `daily 09:00`, `weekdays 08:30` "
        "or a 5-field cron expression such as `0 9 * * 1-5`"
    )


def _valid(cron: str) -> bool:
    try:
        CronSim(cron, datetime.now(UTC))
    except CronSimError:
        return False
    return True


def _any_month(cron: str) -> str:
    minute, hour, day, _, weekday = cron.split()
    return f"{minute} {hour} {day} * {weekday}"


def describe(cron: str) -> str:
    """The schedule in words (`At 09:00 on Monday through Friday`), for the answer that
    confirms it."""
    return CronSim(cron, datetime.now(UTC)).explain()


def next_runs(cron: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The first `count` runs strictly after `after` (aware), as aware datetimes in UTC."""
    runs = CronSim(cron, after.astimezone(load_zone(timezone)))
    return [next(runs).astimezone(UTC) for _ in range(count)]


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first run strictly after `after` (aware), as an aware datetime in UTC."""
    return next_runs(cron, timezone, after, 1)[0]
