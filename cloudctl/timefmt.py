"""How people write durations and times on the command line, and how cloudctl prints them.

Durations: `90s`, `30m`, `1h30m`, `2d`, `1d2h`, `HH:MM:SS` or plain seconds.
Times: ISO 8601 (local time unless it carries an offset), `now`, or `+DURATION` from now.
Internally every time is an integer of Unix seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from cloudctl.errors import InvalidInput

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_CLOCK = re.compile(r"(\d+):([0-5]?\d):([0-5]?\d)")


def parse_duration(text: str, *, option: str = "duration") -> int:
    """Seconds in a duration; zero and negative durations are refused."""
    value = text.strip().lower()
    seconds: int | None = None
    if value.isdigit():
        seconds = int(value)
    elif (clock := _CLOCK.fullmatch(value)) is not None:
        h, m, s = (int(g) for g in clock.groups())
        seconds = h * 3600 + m * 60 + s
    elif value and (match := _DURATION.fullmatch(value)) is not None:
        seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS.values(),
                                                       strict=True) if g)
    if seconds is None:
        raise InvalidInput(f"{option}: cannot read {text!r} as a duration "
                           "(write 90s, 30m, 1h30m, 2d or HH:MM:SS)")
    if seconds <= 0:
        raise InvalidInput(f"{option}: must be longer than zero, got {text!r}")
    return seconds


def parse_time(text: str, now: int, *, option: str = "time") -> int:
    """Unix seconds for `now`, `+DURATION` or an ISO 8601 time (local unless offset)."""
    value = text.strip()
    if value.lower() == "now":
        return now
    if value.startswith("+"):
        return now + parse_duration(value[1:], option=option)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{option}: cannot read {text!r} as a time (write ISO 8601 "
                           "like 2026-11-22T14:00, 'now' or '+1h')") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's local time zone
    return int(moment.timestamp())


def iso(seconds: int | None) -> str | None:
    """ISO 8601 in UTC, as JSON output carries it."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def local(seconds: int | None) -> str:
    """A short local time for tables."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def human_duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds == 0:
        return "0s"
    out = []
    rest = int(seconds)
    for unit, size in _UNITS.items():
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
