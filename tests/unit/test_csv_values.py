"""Numbers and dates as real CSV exports write them; ambiguous ones are refused, never guessed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cryptoetl.transform.csv_values import AmbiguousValue, parse_datetime, parse_number

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("134.21", 134.21),
        ("  47781833544.0 ", 47781833544.0),
        ("9,926,540,000", 9_926_540_000.0),
        ("1,234.5", 1234.5),
        ("6.61575E+11", 6.61575e11),
        ("9.4e-05", 9.4e-05),
        ("1.234.567,89", 1234567.89),
        ("$12.5", 12.5),
        ("-3.5", -3.5),
        ("0", 0.0),
        (".5", 0.5),
    ],
)
def test_numbers_that_are_read(text: str, expected: float) -> None:
    """Plain, E-notation, comma thousands and unambiguous European forms are read."""
    assert parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "-", "  ", "N/A", "nan", "null", "None"])
def test_missing_numbers(text: str) -> None:
    """Empty cells, `-` and the usual placeholders mean missing, not zero."""
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("14.748.800.659.179.600", "several dots"),
        ("1.445.399.932.861.320", "several dots"),
        ("1,234", "thousands separator or a decimal comma"),
        ("0,5", "thousands separator or a decimal comma"),
        ("12abc", "is not a number"),
        ("inf", "is not a number"),
        ("1e999", "not a finite number"),
    ],
)
def test_ambiguous_numbers_are_refused(text: str, reason: str) -> None:
    """A number that could be read two ways, or not at all, is refused with a reason."""
    with pytest.raises(AmbiguousValue, match=reason):
        parse_number(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-04-28 23:59:59", datetime(2013, 4, 28, 23, 59, 59, tzinfo=UTC)),
        ("2020-08-28", datetime(2020, 8, 28, tzinfo=UTC)),
        ("2024-11-17T16:08:39.395Z", datetime(2024, 11, 17, 16, 8, 39, 395000, tzinfo=UTC)),
        ("2024-11-17T18:08:39+02:00", datetime(2024, 11, 17, 16, 8, 39, tzinfo=UTC)),
        ("28/4/2013", datetime(2013, 4, 28, tzinfo=UTC)),
        ("1/12/2017", datetime(2017, 12, 1, tzinfo=UTC)),
        ("28-04-2013 23:59", datetime(2013, 4, 28, 23, 59, tzinfo=UTC)),
        ("2017/12/06", datetime(2017, 12, 6, tzinfo=UTC)),
        ("Feb 20, 2018", datetime(2018, 2, 20, tzinfo=UTC)),
        ("September 3, 2017", datetime(2017, 9, 3, tzinfo=UTC)),
        ("1512549554", datetime(2017, 12, 6, 8, 39, 14, tzinfo=UTC)),
        ("1598659200.0", datetime(2020, 8, 29, tzinfo=UTC)),
    ],
)
def test_dates_that_are_read(text: str, expected: datetime) -> None:
    """ISO, D/M/YYYY, month names and unix seconds become UTC datetimes."""
    assert parse_datetime(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("29-04-13 23:59", "two-digit year"),
        ("04/07/21", "two-digit year"),
        ("4/28/2013", "looks like M/D/YYYY"),
        ("31/2/2017", "not a valid date"),
        ("1512549554000", "not unix seconds"),
        ("2001-01-01", "outside 2009-01-03"),
        ("2031-01-01", "outside 2009-01-03"),
        ("Foo 3, 2017", "unknown month name"),
        ("yesterday", "not a date this service reads"),
    ],
)
def test_ambiguous_dates_are_refused(text: str, reason: str) -> None:
    """Two-digit years, M/D order, impossible or out-of-range dates are refused with a reason."""
    with pytest.raises(AmbiguousValue, match=reason):
        parse_datetime(text, NOW)


def test_missing_date() -> None:
    """An empty date cell is missing (the row is rejected by the caller, not guessed)."""
    assert parse_datetime(" ", NOW) is None
