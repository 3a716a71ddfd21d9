"""Per-source request pacing: a token bucket plus a minimum spacing between requests.

The bucket holds `capacity` tokens and refills at `per_minute / 60` tokens a second; every
request takes one. With the default capacity of 1 the requests of one source are spread evenly
at `60 / per_minute` seconds apart, so no 60-second window ever holds more than `per_minute`
requests, whatever window the provider counts in (retries included: they take tokens too).
`min_interval` (RATE_LIMIT_DELAY) is a floor on the gap between two requests on top of that.

A request made in the background (`acquire(background=True)`: a backfill's) waits while any
other request is waiting for the bucket, so a backfill sharing a source's bucket with the
scheduled ETL takes only the tokens the scheduled runs leave: it can slow them by at most the
one request it may already be waiting to send, never starve them.

A `Retry-After` pushes the bucket (`defer`): nothing is sent to that source before it expires,
even by the next run when the pipeline keeps one `RateLimits` for the whole process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Paces one source's requests; `acquire()` waits for a token and says how long it waited."""

    def __init__(
        self,
        per_minute: float,
        *,
        min_interval: float = 0.0,
        capacity: int = 1,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute
        self.min_interval = max(0.0, min_interval)
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        # GCRA form of the bucket: the theoretical time at which the bucket is full again.
        self._full_at = float("-inf")
        self._last_sent = float("-inf")
        self._not_before = float("-inf")
        self._foreground = 0  # requests not in the background waiting for a token
        self._no_foreground = asyncio.Event()
        self._no_foreground.set()

    def _earliest(self, now: float) -> float:
        tolerance = (self.capacity - 1) * self.interval
        return max(
            now,
            self._full_at - tolerance,
            self._last_sent + self.min_interval,
            self._not_before,
        )

    async def acquire(self, *, background: bool = False) -> float:
        """Wait until a request may be sent, take its token, return the seconds waited.

        `background`: first wait until no other request is waiting (see the module docstring).
        """
        start = self._clock()
        if not background:
            self._foreground += 1
            self._no_foreground.clear()
            try:
                async with self._lock:
                    return self._take(start, await self._wait_turn())
            finally:
                self._foreground -= 1
                if not self._foreground:
                    self._no_foreground.set()
        while True:
            while self._foreground:
                await self._no_foreground.wait()
            async with self._lock:
                if self._foreground:  # one came while this waited for the lock: it goes first
                    continue
                return self._take(start, await self._wait_turn())

    async def _wait_turn(self) -> float:
        """Sleep until the bucket allows the next request (call it holding the lock)."""
        at = self._earliest(self._clock())
        while at > self._clock():
            await self._sleep(at - self._clock())
            at = self._earliest(self._clock())
        return self._clock()

    def _take(self, start: float, now: float) -> float:
        self._full_at = max(self._full_at, now) + self.interval
        self._last_sent = now
        return max(0.0, now - start)

    def defer(self, seconds: float) -> None:
        """Send nothing for `seconds` from now (the upstream said Retry-After)."""
        self._not_before = max(self._not_before, self._clock() + max(0.0, seconds))


class RateLimits:
    """One bucket per source for the life of the process, so budgets hold across runs.

    The pipeline (or the scheduler) creates one and passes it in every run's `SourceContext`;
    a source without one gets a fresh bucket per run.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, source: str, per_minute: float, min_interval: float) -> TokenBucket:
        """The source's bucket, replaced when its budget or spacing setting changed."""
        current = self._buckets.get(source)
        if (
            current is None
            or current.per_minute != per_minute
            or current.min_interval != max(0.0, min_interval)
        ):
            current = TokenBucket(per_minute, min_interval=min_interval)
            self._buckets[source] = current
        return current
