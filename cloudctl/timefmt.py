"""How people write durations and times on the command line, and how cloudctl prints them.

Durations: `90s`, `30m`, `1h30m`, `2d`, `1d2h`, `HH:MM:SS` or plain seconds.
Times: ISO 8601 (local time unless it carries an offset), `now`, or `+DURATION` from now.
Internally every time is an integer of Unix seconds.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from cloudctl.errors import InvalidInput
from cloudctl.limits import MAX_DURATION_S, MAX_TIME, MIN_TIME

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# ASCII digits only: Python's \d and int() also read '١' (Arabic-Indic) or '²'.
_SECONDS = re.compile(r"[0-9]+")
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_CLOCK = re.compile(r"([0-9]+):([0-5]?[0-9]):([0-5]?[0-9])")
_LONGEST = 40  # characters of a duration worth reading; longer is out of range anyway
_400_YEARS_S = 146_097 * 86400  # the Gregorian calendar repeats every 400 years


def _quoted(text: str) -> str:
    """The user's text for an error line, cut short when it is long."""
    return repr(text if len(text) <= _LONGEST else text[:_LONGEST] + "...")


def parse_duration(text: str, *, option: str = "duration") -> int:
    """Seconds in a duration; zero, negative and longer than 10 years are refused."""
    value = text.strip().lower()
    seconds: int | None = None
    if len(value) > _LONGEST:  # too many digits to be worth converting, if digits at all
        if any(form.fullmatch(value) for form in (_SECONDS, _CLOCK, _DURATION)):
            seconds = MAX_DURATION_S + 1
    elif _SECONDS.fullmatch(value):
        seconds = int(value)
    elif (clock := _CLOCK.fullmatch(value)) is not None:
        h, m, s = (int(g) for g in clock.groups())
        seconds = h * 3600 + m * 60 + s
    elif value and (match := _DURATION.fullmatch(value)) is not None:
        seconds = sum(int(g) * unit for g, unit in zip(match.groups(), _UNITS.values(),
                                                       strict=True) if g)
    if seconds is None:
        raise InvalidInput(f"{option}: cannot read {_quoted(text)} as a duration "
                           "(write 90s, 30m, 1h30m, 2d or HH:MM:SS)")
    if seconds <= 0:
        raise InvalidInput(f"{option}: must be longer than zero, got {_quoted(text)}")
    if seconds > MAX_DURATION_S:
        raise InvalidInput(f"{option}: at most 10 years (3650d), got {_quoted(text)}")
    return seconds


def parse_time(text: str, now: int, *, option: str = "time") -> int:
    """Unix seconds for `now`, `+DURATION` or an ISO 8601 time (local unless offset),
    between 1970 and 9999."""
    value = text.strip()
    if value.lower() == "now":
        return now
    if value.startswith("+"):
        return check_time(now + parse_duration(value[1:], option=option), text, option)
    try:
        if not value.isascii():
            raise ValueError(value)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{option}: cannot read {_quoted(text)} as a time (write ISO 8601 "
                           "like 2026-11-22T14:00, 'now' or '+1h')") from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the machine's local time zone
        seconds = int(moment.timestamp())
    except (ValueError, OverflowError, OSError):  # years 1 and 9999 at the calendar's ends
        seconds = MIN_TIME - 1 if moment.year < 1970 else MAX_TIME + 1
    return check_time(seconds, text, option)


def check_time(seconds: int, text: str, option: str) -> int:
    """`seconds`, if it lies between 1970-01-01 and 9999-01-01 UTC."""
    if not MIN_TIME <= seconds <= MAX_TIME:
        raise InvalidInput(f"{option}: must be between 1970-01-01 and 9999-01-01 UTC, "
                           f"got {_quoted(text)}")
    return seconds


def iso(seconds: int | None) -> str | None:
    """ISO 8601 in UTC, as JSON output carries it."""
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        return _expanded(seconds)


def _expanded(seconds: int) -> str:
    """ISO 8601's expanded years (`+10239-03-01T00:00:00Z`) for a time Python's dates cannot
    hold: a plan pushed past year 9999 must still print, never break a listing."""
    cycles, rest = divmod(int(seconds), _400_YEARS_S)
    moment = datetime.fromtimestamp(rest, timezone.utc)
    year = moment.year + 400 * cycles
    digits = f"{year:04d}" if 1 <= year <= 9999 else f"{year:+05d}"
    return f"{digits}{moment.strftime('-%m-%dT%H:%M:%S')}Z"


def local(seconds: int | None) -> str:
    """A short local time for tables."""
    if seconds is None:
        return "-"
    try:
        return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):
        return _expanded(seconds)


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
