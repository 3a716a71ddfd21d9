"""Prometheus metrics of one app instance, on its own `CollectorRegistry` (no global state).

`Metrics` is three things:
- the HTTP view: requests and latency by method, route template and status (the middleware
  calls `observe_request`);
- a `SourceEvents` implementation (see `cryptoetl.sources.base`; a Protocol, so no import):
  HTTP requests, rate-limit waits and retries per source, as the pipeline reports them;
- the database view, read at scrape time (`render(snapshot)`), so every replica serving the
  same database reports the same ETL truth: runs by source and outcome, records by source and
  outcome, the last success time and the row count per source;
- the read replica (when `DATABASE_READ_URL` is set): up, in use, and its lag, as last checked.

Names (all prefixed `cryptoetl_`) are listed in docs/api.md ("GET /metrics").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECORD_OUTCOMES = ("fetched", "inserted", "updated", "unchanged", "rejected")


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Every run of one source with one status, summed (one row of the scrape-time query)."""

    source: str
    status: str
    runs: int
    records: dict[str, int] = field(default_factory=dict)
    last_finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DatabaseSnapshot:
    """What the database says at scrape time; `None` in `render` means it did not answer."""

    runs: Sequence[RunTotals] = ()
    rows: dict[str, int] = field(default_factory=dict)
    table_bytes: dict[str, int] = field(default_factory=dict)  # partitions summed per table
    database_bytes: int | None = None


class _DatabaseCollector:
    """Yields the families of the snapshot handed to it just before a scrape is rendered."""

    def __init__(self) -> None:
        self.snapshot: DatabaseSnapshot | None = None

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "cryptoetl_database_up", "1 when the database answered this scrape, else 0."
        )
        snapshot = self.snapshot
        up.add_metric([], 0 if snapshot is None else 1)
        yield up
        if snapshot is None:
            return
        runs = CounterMetricFamily(
            "cryptoetl_etl_runs",
            "Finished ETL runs by source and outcome (success, partial, failed).",
            labels=["source", "status"],
        )
        running = GaugeMetricFamily(
            "cryptoetl_etl_runs_running", "ETL runs in progress by source.", labels=["source"]
        )
        records = CounterMetricFamily(
            "cryptoetl_etl_records",
            "Records handled by ETL runs, by source and outcome "
            "(fetched, inserted, updated, unchanged, rejected).",
            labels=["source", "outcome"],
        )
        last_success = GaugeMetricFamily(
            "cryptoetl_etl_last_success_timestamp_seconds",
            "When the last successful run of each source finished (Unix time).",
            labels=["source"],
        )
        outcome_totals: dict[tuple[str, str], int] = {}
        successes: dict[str, float] = {}
        for totals in snapshot.runs:
            if totals.status == "running":
                running.add_metric([totals.source], totals.runs)
            else:
                runs.add_metric([totals.source, totals.status], totals.runs)
            for outcome in RECORD_OUTCOMES:
                key = (totals.source, outcome)
                outcome_totals[key] = outcome_totals.get(key, 0) + totals.records.get(outcome, 0)
            if totals.status == "success" and totals.last_finished_at is not None:
                stamp = totals.last_finished_at.timestamp()
                successes[totals.source] = max(stamp, successes.get(totals.source, stamp))
        for (source, outcome), value in sorted(outcome_totals.items()):
            records.add_metric([source, outcome], value)
        for source, stamp in sorted(successes.items()):
            last_success.add_metric([source], stamp)
        rows = GaugeMetricFamily(
            "cryptoetl_unified_rows", "Rows in unified_crypto_data by source.", labels=["source"]
        )
        for source, count in sorted(snapshot.rows.items()):
            rows.add_metric([source], count)
        tables = GaugeMetricFamily(
            "cryptoetl_table_size_bytes",
            "Bytes on disk per table, indexes and TOAST included (a partitioned table counts "
            "all of its partitions).",
            labels=["table"],
        )
        for table, size in sorted(snapshot.table_bytes.items()):
            tables.add_metric([table], size)
        yield from (runs, running, records, last_success, rows, tables)
        if snapshot.database_bytes is not None:
            database = GaugeMetricFamily(
                "cryptoetl_database_size_bytes", "Bytes on disk of the whole database."
            )
            database.add_metric([], snapshot.database_bytes)
            yield database


# () -> (connected, serving reads, lag in seconds or None): the read replica as last checked
ReplicaFigures = Callable[[], tuple[bool, bool, float | None]]


class _ReplicaCollector:
    """The read replica's families, only when one is configured (`DATABASE_READ_URL`)."""

    def __init__(self) -> None:
        self.figures: ReplicaFigures | None = None

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self.figures is None:
            return
        connected, serving, lag = self.figures()
        up = GaugeMetricFamily(
            "cryptoetl_read_replica_up", "1 when the read replica answered its last check, else 0."
        )
        up.add_metric([], 1 if connected else 0)
        used = GaugeMetricFamily(
            "cryptoetl_read_replica_in_use",
            "1 while reads go to the read replica, 0 while they fall back to the primary.",
        )
        used.add_metric([], 1 if serving else 0)
        lag_family = GaugeMetricFamily(
            "cryptoetl_read_replica_lag_seconds",
            "How far the read replica's replay is behind the primary (0: caught up; NaN: "
            "unknown, the replica does not answer or replayed nothing yet).",
        )
        lag_family.add_metric([], math.nan if lag is None else lag)
        yield from (up, used, lag_family)


class Metrics:
    """The metrics of one app; also the `SourceEvents` the pipeline reports to."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "cryptoetl_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "cryptoetl_http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route template and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.source_requests = Counter(
            "cryptoetl_source_requests",
            "HTTP requests to upstream sources, by source and status ('none': no answer).",
            ["source", "status"],
            registry=r,
        )
        self.source_duration = Histogram(
            "cryptoetl_source_request_duration_seconds",
            "Time of HTTP requests to upstream sources.",
            ["source"],
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self.rate_limit_waits = Counter(
            "cryptoetl_source_rate_limit_waits",
            "Times a source waited for its request budget or a Retry-After.",
            ["source"],
            registry=r,
        )
        self.rate_limit_wait_seconds = Counter(
            "cryptoetl_source_rate_limit_wait_seconds",
            "Seconds sources spent waiting for their request budget or a Retry-After.",
            ["source"],
            registry=r,
        )
        self.retries = Counter(
            "cryptoetl_source_retries",
            "Transient upstream failures retried, by source and reason (429, 503, timeout...).",
            ["source", "reason"],
            registry=r,
        )
        self.scheduler_leader = Gauge(
            "cryptoetl_scheduler_leader",
            "1 while this replica holds the scheduler lease (it runs scheduled ETL), else 0.",
            registry=r,
        )
        # label children by (method, route, status): labels() costs more than inc()
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._database = _DatabaseCollector()
        r.register(self._database)
        self._replica = _ReplicaCollector()
        r.register(self._replica)

    def watch_replica(self, figures: ReplicaFigures | None) -> None:
        """Export the read replica's state (`figures` is called at each scrape)."""
        self._replica.figures = figures

    # -- the HTTP view ------------------------------------------------------------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.http_requests.labels(*labels), self.http_duration.labels(*labels))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # -- SourceEvents -------------------------------------------------------------------------
    def rate_limit_wait(self, source: str, seconds: float) -> None:
        self.rate_limit_waits.labels(source).inc()
        self.rate_limit_wait_seconds.labels(source).inc(max(seconds, 0.0))

    def retry(self, source: str, reason: str, delay: float) -> None:
        self.retries.labels(source, reason).inc()

    def request(self, source: str, status: int | None, seconds: float) -> None:
        self.source_requests.labels(source, "none" if status is None else str(status)).inc()
        self.source_duration.labels(source).observe(max(seconds, 0.0))

    # -- exposition ---------------------------------------------------------------------------
    def render(self, snapshot: DatabaseSnapshot | None, accept: str = "") -> tuple[bytes, str]:
        """The exposition (body, content type) for `accept`, with `snapshot` as the DB view."""
        encoder, content_type = choose_encoder(accept)
        self._database.snapshot = snapshot
        try:
            return encoder(self.registry), content_type
        finally:
            self._database.snapshot = None
