"""Durations and clock times as liaison officers type and read them.

Time is UTC inside the bot; these helpers are the edges where it is parsed from what a person typed
and shown in a reader's zone next to UTC (`14:28 Brussels (13:28Z)`), so every message agrees.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_skeleton, get_timezone_location

_DURATION = re.compile(r"^(\d+)\s*([smhd])$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# No deadline, window or period the bot keeps is longer; a longer one is a typo, and one of
# billions of days would not even fit in a date.
MAX_DURATION = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `2h`, `1d` → timedelta; raises ValueError with the accepted forms."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"`{text}` is not a duration; use a number and a unit: 30s, 15m, 2h, 1d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"`{text}` is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Compact and exact enough for a latency: `45s`, `3m12s`, `2h05m`, `1d3h`."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def load_zone(name: str) -> ZoneInfo:
    """An IANA zone by name; ValueError (not the zoneinfo internals) when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"`{name}` is not an IANA time zone (e.g. Europe/Brussels)") from exc


def utcnow() -> datetime:
    return datetime.now(UTC)


def zone_label(zone: ZoneInfo) -> str:
    """`Europe/Brussels` → `Brussels`: the city is what a reader recognises."""
    return str(zone.key).rsplit("/", 1)[-1].replace("_", " ")


# The CLDR locale whose date shape a language's reader expects, where it is not the language's own.
_DATE_LOCALE = {"en": "en_GB"}


def format_local_utc(
    moment: datetime, zone: ZoneInfo, *, with_date: bool = False, lang: str = "en"
) -> str:
    """`14:28 Brussels (13:28Z)`; with_date prefixes the local date (`Sun 29 Nov`). Weekday,
    month and city are the reader's (`dim. 29 nov. 14:28 Bruxelles (13:28Z)`), from the
    CLDR through Babel, and so is the date's shape: a German reader reads `So., 29. Nov.`, not
    `So. 29 Nov.`. English is British English (`Sun 29 Nov`, not `Sun, Nov 29`). The UTC part
    is the same in every language."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: times inside the bot are UTC-aware")
    return _format_minute(moment.replace(second=0, microsecond=0), zone, with_date, lang)


@lru_cache(maxsize=4096)
def _format_minute(minute: datetime, zone: ZoneInfo, with_date: bool, lang: str) -> str:
    """`format_local_utc` of one minute: a board of three hundred people shows the same few
    minutes hundreds of times, each a zone conversion and two formats (~15 µs) uncached."""
    local = minute.astimezone(zone)
    utc = minute.astimezone(UTC)
    locale = _DATE_LOCALE.get(lang, lang)
    prefix = f"{format_skeleton('MMMEd', local, locale=locale)} " if with_date else ""
    return f"{prefix}{local:%H:%M} {_city(zone, lang)} ({utc:%H:%M}Z)"


def format_due(moment: datetime, zone: ZoneInfo, *, lang: str = "en") -> str:
    """A due time as `format_local_utc` writes it, with the date when it is not today where
    the reader is: an improvement action due in a week is not due "12:28"."""
    today = utcnow().astimezone(zone).date()
    return format_local_utc(
        moment, zone, with_date=moment.astimezone(zone).date() != today, lang=lang
    )


@cache
def _city(zone: ZoneInfo, lang: str) -> str:
    """The zone's city in `lang` (the CLDR's, through Babel: ~30 µs a look-up, and a page's
    board or a situation board names hundreds of times)."""
    return str(get_timezone_location(zone, locale=lang, return_city=True))


_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_past_time(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    """`HH:MM` in `zone` (its latest occurrence not after `now`), or ISO 8601; → aware UTC.

    For a logbook entry typed at 00:10 about something at 23:50, `23:50` means yesterday.
    """
    match = _CLOCK.match(text.strip())
    if match:
        local_now = now.astimezone(zone)
        moment = local_now.replace(
            hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0
        )
        if moment > local_now:
            moment = (moment - timedelta(days=1)).replace(tzinfo=zone)
        return moment.astimezone(UTC)
    try:
        moment = _aware(datetime.fromisoformat(text.strip()), zone)
    except ValueError:
        raise ValueError(f"`{text}` is not a time: use HH:MM or ISO 8601") from None
    except OverflowError:
        raise ValueError(f"`{text}` is out of range") from None
    if moment > now:
        raise ValueError(f"`{text}` is in the future")
    return moment


def parse_future_time(text: str, zone: ZoneInfo, now: datetime) -> datetime:
    """A deadline: `HH:MM` in `zone` (its next occurrence), ISO 8601, or a duration from now.

    `--by 17:00` typed at 18:00 means tomorrow 17:00; `--by 2h` means two hours from now.
    """
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    match = _CLOCK.match(text.strip())
    if match:
        local_now = now.astimezone(zone)
        moment = local_now.replace(
            hour=int(match.group(1)), minute=int(match.group(2)), second=0, microsecond=0
        )
        if moment <= local_now:
            moment = moment + timedelta(days=1)
        return moment.astimezone(UTC)
    try:
        moment = _aware(datetime.fromisoformat(text.strip()), zone)
    except ValueError:
        raise ValueError(
            f"`{text}` is not a time: use HH:MM, ISO 8601 or a duration (2h)"
        ) from None
    except OverflowError:
        raise ValueError(f"`{text}` is out of range") from None
    if moment <= now:
        raise ValueError(f"`{text}` is in the past")
    if moment - now > MAX_DURATION:
        raise ValueError(f"`{text}` is more than {MAX_DURATION.days} days ahead")
    return moment


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    """A typed ISO time in UTC, read in `zone` when it has no offset. OverflowError when that
    falls outside what a datetime holds (0001-01-01 in a zone east of UTC, 9999-12-31 west)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
