"""Reading numbers and dates as real-world CSV files write them, and refusing to guess.

Each parser returns the value, `None` for a cell that means "missing" (empty, `-`, `N/A`), or
raises `AmbiguousValue` with a reason a user can act on. A value that could be read two ways
(`14.748.800.659.179.600`, `1,234`, `29-04-13`) is refused, never guessed: the service must
not store a wrong price.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from cryptoetl.transform.common import EARLIEST, FUTURE_SLACK

MISSING = frozenset({"", "-", "--", "—", "n/a", "na", "nan", "null", "none", "?"})

_PLAIN = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_COMMA_GROUPS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_DOT_GROUPS_COMMA_DECIMAL = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3})+,\d+$")
_DOT_GROUPS = re.compile(r"^[+-]?\d{1,3}(?:\.\d{3}){2,}$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")

# Unix seconds above this are milliseconds or garbage (this is the year 5138).
MAX_UNIX_SECONDS = 1e11

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}

_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<tz>Z|UTC|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)
_YMD_SLASH = re.compile(r"^(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})$")
_DMY = re.compile(
    r"^(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?P=sep)(?P<y>\d{4})"
    r"(?:[ T](?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)
_TWO_DIGIT_YEAR = re.compile(r"^\d{1,2}[/.-]\d{1,2}[/.-]\d{2}(?:\s.*)?$")
_MONTH_NAME = re.compile(
    r"^(?P<mon>[A-Za-z]{3,9})\.?\s+(?P<d>\d{1,2}),?\s+(?P<y>\d{4})"
    r"(?:\s+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?)?$"
)


class AmbiguousValue(ValueError):
    """A cell that cannot be read with certainty; the message says why."""


def parse_number(text: str) -> float | None:
    """A finite number, `None` when missing, or `AmbiguousValue`."""
    value = text.strip().removeprefix("$").strip()
    if value.lower() in MISSING:
        return None
    if _PLAIN.match(value):
        number = float(value)
    elif _COMMA_GROUPS.match(value) and (value.count(",") >= 2 or "." in value):
        number = float(value.replace(",", ""))
    elif _DOT_GROUPS_COMMA_DECIMAL.match(value):
        number = float(value.replace(".", "").replace(",", "."))
    elif _DOT_GROUPS.match(value):
        raise AmbiguousValue(
            f"{text!r} has several dots: thousands separators or a mangled decimal "
            "(a spreadsheet re-save loses the original number)"
        )
    elif _COMMA_GROUPS.match(value) or _DECIMAL_COMMA.match(value):
        raise AmbiguousValue(f"{text!r} could be a thousands separator or a decimal comma")
    else:
        raise AmbiguousValue(f"{text!r} is not a number")
    if not math.isfinite(number):
        raise AmbiguousValue(f"{text!r} is not a finite number")
    return number


def _offset(tz: str | None) -> timedelta:
    if tz is None or tz.upper() in ("Z", "UTC"):
        return timedelta(0)
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))


def _build(
    text: str, y: str, m: str, d: str, hh: str | None, mm: str | None, ss: str | None
) -> datetime:
    try:
        return datetime(
            int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=UTC
        )
    except ValueError as exc:
        raise AmbiguousValue(f"{text!r} is not a valid date ({exc})") from None


def _in_range(text: str, moment: datetime, now: datetime) -> datetime:
    if moment < EARLIEST or moment > now + FUTURE_SLACK:
        raise AmbiguousValue(f"{text!r} is outside {EARLIEST.date()}..today")
    return moment


def parse_datetime(text: str, now: datetime) -> datetime | None:
    """A UTC datetime, `None` when missing, or `AmbiguousValue`.

    Read: unix seconds (integer or float), ISO 8601 (naive means UTC), `YYYY/MM/DD`,
    `D/M/YYYY` (also with `-` or `.`, and a time), `Feb 20, 2018`. Refused: two-digit years,
    a `D/M/YYYY` whose month is above 12 (it is `M/D/YYYY`), anything else.
    """
    value = text.strip()
    if value.lower() in MISSING:
        return None
    if _PLAIN.match(value):
        seconds = float(value)
        if not math.isfinite(seconds) or abs(seconds) >= MAX_UNIX_SECONDS:
            raise AmbiguousValue(f"{text!r} is not unix seconds (milliseconds?)")
        return _in_range(text, datetime.fromtimestamp(seconds, UTC), now)
    if match := _ISO.match(value):
        moment = _build(
            text, match["y"], match["m"], match["d"], match["H"], match["M"], match["S"]
        )
        if match["f"]:
            moment = moment.replace(microsecond=int(match["f"][:6].ljust(6, "0")))
        return _in_range(text, moment - _offset(match["tz"]), now)
    if match := _YMD_SLASH.match(value):
        return _in_range(
            text, _build(text, match["y"], match["m"], match["d"], None, None, None), now
        )
    if _TWO_DIGIT_YEAR.match(value):
        raise AmbiguousValue(f"{text!r} has a two-digit year; day, month and year order is a guess")
    if match := _DMY.match(value):
        if int(match["m"]) > 12:
            raise AmbiguousValue(f"{text!r} looks like M/D/YYYY; only D/M/YYYY is read")
        moment = _build(
            text, match["y"], match["m"], match["d"], match["H"], match["M"], match["S"]
        )
        return _in_range(text, moment, now)
    if match := _MONTH_NAME.match(value):
        month = MONTHS.get(match["mon"].lower())
        if month is None:
            raise AmbiguousValue(f"{text!r}: unknown month name {match['mon']!r}")
        moment = _build(
            text, match["y"], str(month), match["d"], match["H"], match["M"], match["S"]
        )
        return _in_range(text, moment, now)
    raise AmbiguousValue(f"{text!r} is not a date this service reads")


# Number formats a column can show (see `number_format`): thousands grouped with commas and a
# decimal point, or a decimal comma (with or without dot groups).
GROUPING = "grouping"
DECIMAL_COMMA = "decimal_comma"
BOTH = "both"
_ONE_COMMA_GROUP = re.compile(r"^[+-]?\d{1,3},\d{3}$")
_LONG_DECIMAL_COMMA = re.compile(r"^[+-]?(?:\d+,(?:\d{1,2}|\d{4,})|\d{4,},\d{3})$")


def number_format(text: str) -> str | None:
    """The convention a cell shows unambiguously (`GROUPING`: `1,000,300`, `2,100.25`;
    `DECIMAL_COMMA`: `1.234,5`, `0,5`, `12,3456`), or None (plain, ambiguous or not a number)."""
    value = text.strip().removeprefix("$").strip()
    if _COMMA_GROUPS.match(value) and (value.count(",") >= 2 or "." in value):
        return GROUPING
    if _DOT_GROUPS_COMMA_DECIMAL.match(value) or _LONG_DECIMAL_COMMA.match(value):
        return DECIMAL_COMMA
    return None


def merge_format(known: str | None, shown: str | None) -> str | None:
    """A column's convention once it has also shown `shown`."""
    if shown is None or known == shown:
        return known
    return shown if known is None else BOTH


def parse_number_in(text: str, column_format: str | None) -> float | None:
    """`parse_number`, except that a value it refuses as ambiguous between a thousands comma and
    a decimal comma (`245,000`, `0,5`) is read the way its column has shown it writes numbers
    (`GROUPING` or `DECIMAL_COMMA`); a column that showed both, or neither, refuses it."""
    try:
        return parse_number(text)
    except AmbiguousValue:
        if column_format not in (GROUPING, DECIMAL_COMMA):
            raise
        value = text.strip().removeprefix("$").strip()
        if _ONE_COMMA_GROUP.match(value):
            return float(value.replace(",", "" if column_format == GROUPING else "."))
        if column_format == DECIMAL_COMMA and number_format(value) == DECIMAL_COMMA:
            return float(value.replace(".", "").replace(",", "."))
        raise
