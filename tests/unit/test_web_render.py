"""Pure tests of what the pages draw: the price chart, its axes, the run timeline, the
formats. Hand-made series in, SVG out, parsed as XML (so it must also be well-formed)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from cryptoetl.web import format as fmt
from cryptoetl.web.chart import COLUMNS, Series, line_chart, thin
from cryptoetl.web.ticks import linear_scale, log_scale, price_scale, time_axis, time_ticks
from cryptoetl.web.timeline import BARS, STATUS_COLORS, RunMark, run_timeline

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 2, 1, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output


def plot_of(root: ET.Element) -> ET.Element:
    """The plot (the SVG nested in `svg.chart`; the price labels are in `svg.y-axis`)."""
    plot = root.find(f"{SVG}svg[@class='chart']/{SVG}svg")
    assert plot is not None
    return plot


def paths(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}path[@class='series']")


def texts(root: ET.Element, css: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == css]


def coords(d: str) -> list[tuple[str, float, float]]:
    return [(c, float(x), float(y)) for c, x, y in re.findall(r"([ML])([\d.]+) ([\d.]+)", d)]


def daily(prices: list[float], start: datetime = T0) -> list[tuple[datetime, float]]:
    return [(start + timedelta(days=i), price) for i, price in enumerate(prices)]


def test_chart_draws_one_path_per_series_with_points_in_order() -> None:
    """One `path.series` per source that has prices, named and coloured per source; a source
    with no price gets no line and no legend entry."""
    root = parse(
        line_chart(
            [
                Series("coingecko", daily([10, 11, 12])),
                Series("csv", []),
                Series("coinpaprika", daily([11, 12, 13])),
            ],
            label="BTC",
        )
    )
    drawn = paths(root)
    assert [p.get("data-source") for p in drawn] == ["coingecko", "coinpaprika"]
    assert [p.get("stroke") for p in drawn] == ["#009E73", "#D55E00"]
    assert texts(root, "legend") == ["coingecko", "coinpaprika"]
    assert root.findtext(f"{SVG}svg[@class='chart']/{SVG}title") == "BTC"
    # the price labels are left of the plot, in an SVG of their own: no line crosses them
    axis = root.find(f"{SVG}svg[@class='y-axis']")
    assert axis is not None
    assert [t.get("class") for t in axis.iter(f"{SVG}text")] == ["tick"] * len(texts(axis, "tick"))
    assert texts(axis, "tick")


def test_chart_puts_each_point_where_its_time_and_price_say() -> None:
    """First point at the left edge, last at the right, the lowest price on the bottom of the
    plot and the highest on its top, the middle one half-way (linear prices)."""
    root = parse(line_chart([Series("csv", daily([10.0, 11.0, 12.0]))], label="x"))
    plot = plot_of(root)
    height = float(plot.get("height", "0"))
    assert coords(paths(root)[0].get("d", "")) == [
        ("M", 0.0, height),
        ("L", COLUMNS / 2, height / 2),
        ("L", float(COLUMNS), 0.0),
    ]
    assert texts(root, "tick")[:5] == ["$10.0", "$10.5", "$11.0", "$11.5", "$12.0"]


def test_chart_axes_name_the_years_of_a_long_history() -> None:
    """A twelve-year daily history: year labels on the time axis, dollar labels on the price
    axis, and a log scale (said in the legend) because the price grew a thousandfold."""
    history = [
        (datetime(2013, 4, 28, tzinfo=UTC) + timedelta(days=i), 100 * 1.0025**i)
        for i in range(0, 4300, 7)
    ]
    root = parse(line_chart([Series("csv", history)], label="x"))
    ticks = texts(root, "tick")
    assert [t for t in ticks if not t.startswith("$")] == ["2015", "2020", "2025"]
    assert [t for t in ticks if t.startswith("$")] == [
        "$100",
        "$1,000",
        "$10,000",
        "$100,000",
        "$1,000,000",
    ]
    assert "log price scale" in texts(root, "legend note")


def test_log_scale_puts_a_price_on_its_tick() -> None:
    """On a log scale $1,000 sits exactly on the $1,000 grid line."""
    points = [(T0, 68.0), (T0 + timedelta(days=1), 1000.0), (T0 + timedelta(days=2), 63000.0)]
    root = parse(line_chart([Series("csv", points)], label="x"))
    grid = {
        text.text: float(text.get("y", "0")) - 4
        for text in root.iter(f"{SVG}text")
        if text.get("class") == "tick" and (text.text or "").startswith("$")
    }
    plot = plot_of(root)
    top = float(plot.get("y", "0"))
    middle = coords(paths(root)[0].get("d", ""))[1]
    assert middle[2] + top == pytest.approx(grid["$1,000"], abs=0.01)


def test_chart_escapes_what_the_data_says() -> None:
    """A series named like markup is text in the legend and an attribute value, never markup."""
    name = '<script>alert("x")</script>'
    svg = line_chart([Series(name, daily([1, 2]))], label="<b>coin</b>")
    assert "<script" not in svg
    assert "<b>" not in svg
    root = parse(svg)
    assert texts(root, "legend") == [name]
    assert paths(root)[0].get("data-source") == name


def test_sparse_series_get_markers_and_long_gaps_break_the_line() -> None:
    """A one-point source (a snapshot) is a visible marker with its value as a tooltip; a
    daily series with a year missing is drawn as two pieces, not a straight line across."""
    gap = daily([1.0] * 30) + daily([2.0] * 30, start=T0 + timedelta(days=400))
    root = parse(
        line_chart(
            [Series("coingecko", [(T0 + timedelta(days=5), 1.5)]), Series("csv", gap)],
            label="x",
        )
    )
    snapshot, history = paths(root)
    assert [c for c, _, _ in coords(snapshot.get("d", ""))] == ["M"]
    markers = root.findall(f".//{SVG}circle")
    assert len(markers) == 1
    assert markers[0].findtext(f"{SVG}title") == "coingecko: $1.50 at 2025-02-06 00:00 UTC"
    assert [c for c, _, _ in coords(history.get("d", ""))].count("M") == 2


def test_thinning_keeps_a_spike() -> None:
    """Ten thousand points become at most the budget, in time order, and the one spike stays."""
    points = daily([1.0] * 10_000)
    points[4321] = (points[4321][0], 50.0)
    kept = thin(points, points[0][0], points[-1][0], 600)
    assert len(kept) <= 600
    assert kept == sorted(kept)
    assert max(price for _, price in kept) == 50.0


def test_empty_chart_says_there_is_nothing_to_draw() -> None:
    """No prices at all: a short message, no axes."""
    root = parse(line_chart([Series("csv", [])], label="x"))
    assert paths(root) == []
    assert "No prices to draw yet." in "".join(root.itertext())
    said = parse(line_chart([Series("csv", [])], label="x", empty="No prices in this range."))
    assert "No prices in this range." in "".join(said.itertext())


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (95_123, 98_000, ["$95,000", "$96,000", "$97,000", "$98,000"]),
        (0.998, 1.003, ["$0.998", "$0.999", "$1.000", "$1.001", "$1.002", "$1.003"]),
        (1, 19, ["$0", "$5", "$10", "$15", "$20"]),
        (100, 100, ["$95.0", "$97.5", "$100.0", "$102.5", "$105.0"]),
    ],
)
def test_linear_scale_has_round_ticks_around_the_prices(
    low: float, high: float, expected: list[str]
) -> None:
    """Round steps (1, 2, 2.5 or 5 x 10^n), bounds on ticks, at most six ticks."""
    scale = linear_scale(low, high, 6)
    assert [label for _, label in scale.ticks] == expected
    assert scale.low <= low
    assert scale.high >= high


def test_price_scale_turns_logarithmic_for_wide_ranges() -> None:
    """Above a 20x range the scale is log with 1-2-5 bounds; below it stays linear."""
    assert not price_scale(10, 190).log
    wide = price_scale(68, 63_000)
    assert wide.log
    assert (wide.low, wide.high) == (50, 100_000)
    assert wide.fraction(50) == 0
    assert wide.fraction(100_000) == 1
    small = log_scale(0.0001, 0.01, 6)
    assert [label for _, label in small.ticks] == [
        "$0.0001",
        "$0.0005",
        "$0.001",
        "$0.005",
        "$0.01",
    ]


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(seconds=8), ["10:00:02", "10:00:04", "10:00:06", "10:00:08"]),
        (timedelta(hours=3), ["11:00", "12:00", "13:00"]),
        (timedelta(hours=40), ["12:00", "2 Feb", "12:00", "3 Feb"]),
        (timedelta(days=60), ["3 Feb", "17 Feb", "3 Mar", "17 Mar", "31 Mar"]),
        (timedelta(days=400), ["Apr 2025", "Jul 2025", "Oct 2025", "Jan 2026"]),
    ],
)
def test_time_ticks_fall_on_calendar_boundaries(span: timedelta, expected: list[str]) -> None:
    """Seconds, hours (midnight shows the day), days (weeks start on Mondays), months."""
    start = T0 + timedelta(hours=10, seconds=1)
    assert [label for _, label in time_ticks(start, start + span, 5)] == expected


def run(run_id: int, source: str, status: str, minutes: float, seconds: float | None) -> RunMark:
    return RunMark(run_id, source, status, T0 + timedelta(minutes=minutes), seconds, f"#{run_id}")


def test_timeline_draws_each_run_in_its_source_row() -> None:
    """A bar per run, in its source's row, coloured by outcome, its height the duration
    relative to the longest; a source without runs says so."""
    runs = [
        run(1, "coingecko", "success", 0, 2.0),
        run(2, "csv", "partial", 0, 8.0),
        run(3, "coingecko", "failed", 5, 4.0),
        run(4, "csv", "running", 10, None),
    ]
    root = parse(run_timeline(runs, ["coingecko", "csv", "coinpaprika"]))
    rows = {
        t.text: float(t.get("y", "0"))
        for t in root.iter(f"{SVG}text")
        if t.get("class") == "source"
    }
    assert list(rows) == ["coingecko", "csv", "coinpaprika"]
    bars = root.findall(f".//{SVG}rect[@fill]")
    bars = [bar for bar in bars if "run" in (bar.get("class") or "")]
    assert [bar.findtext(f"{SVG}title") for bar in bars] == ["#1", "#3", "#2", "#4"]
    assert [bar.get("fill") for bar in bars] == [
        STATUS_COLORS["success"],
        STATUS_COLORS["failed"],
        STATUS_COLORS["partial"],
        STATUS_COLORS["running"],
    ]
    heights = [float(bar.get("height", "0")) for bar in bars]
    assert heights == [BARS / 4, BARS / 2, BARS, 3.0]  # a run with no duration yet: 3 px
    lefts = [float((bar.get("x") or "0%").rstrip("%")) for bar in bars]
    assert lefts[0] == lefts[2] < lefts[1] < lefts[3]  # same start, same place
    assert "no run in this window" in "".join(root.itertext())
    links = [a.get("href") for a in root.iter(f"{SVG}a")]
    assert links == ["/api/v1/runs/1", "/api/v1/runs/3", "/api/v1/runs/2", "/api/v1/runs/4"]


def test_timeline_escapes_tooltips_and_handles_no_runs() -> None:
    """An error text in a tooltip stays text; no runs at all is a sentence, not an empty box."""
    mark = RunMark(1, "csv", "failed", T0, 1.0, "error: <img src=x onerror=alert(1)>")
    svg = run_timeline([mark], ["csv"])
    assert "<img" not in svg
    assert parse(svg).findall(f".//{SVG}title")[1].text == mark.tooltip
    assert run_timeline([], ["csv"]) == '<p class="empty">No run yet.</p>'


def test_formats_read_like_a_person_writes_them() -> None:
    """Prices keep cents (or four significant digits below $1), sizes are compact, spans
    and ages are rounded to what matters."""
    assert fmt.usd(63241.126) == "$63,241.13"
    assert fmt.usd(0.0001234567) == "$0.0001235"
    assert fmt.usd(None) == "—"
    assert fmt.compact_usd(1.9e12) == "$1.90 T"
    assert fmt.compact_usd(456.7e9) == "$456.7 B"
    assert fmt.compact_usd(9876) == "$9,876"
    assert fmt.span(0.4213) == "0.42 s"
    assert fmt.span(302) == "5 min 02 s"
    assert fmt.span(3 * 3600 + 300) == "3 h 05 min"
    assert fmt.ago(T0 - timedelta(seconds=45), T0) == "45 s ago"
    assert fmt.ago(T0 - timedelta(minutes=3), T0) == "3 min ago"
    assert fmt.ago(T0 - timedelta(days=5), T0) == "5 d ago"
    assert fmt.ago(T0 + timedelta(seconds=3), T0) == "in 3 s"
    assert fmt.every(300) == "5 min"
    assert fmt.every(7200) == "2 h"
    assert fmt.utc(T0) == "2025-02-01 00:00 UTC"
    assert fmt.count(1234567) == "1,234,567"
    assert fmt.percent(0.1234) == "0.12 %"
    assert fmt.basename("/data/csv/prices.csv") == "prices.csv"


def test_time_axis_keeps_labels_inside_and_apart_on_a_phone() -> None:
    """Labels at the edges are anchored inward; one that would run into its neighbour at
    320 px is dropped, while every tick keeps its grid line."""
    ticks = [(2.0, "20:48:01"), (20.0, "20:48:02"), (24.0, "20:48:03"), (60.0, "20:48:04")]
    ticks.append((99.0, "20:48:05"))
    root = parse(
        '<svg xmlns="http://www.w3.org/2000/svg">'
        + "".join(time_axis(ticks, font=12, grid_top=0, grid_bottom=100, label_y=116))
        + "</svg>"
    )
    assert len(root.findall(f"{SVG}line")) == 5
    labels = [(t.text, t.get("text-anchor")) for t in root.findall(f"{SVG}text")]
    assert labels == [("20:48:01", "start"), ("20:48:04", "middle"), ("20:48:05", "end")]
