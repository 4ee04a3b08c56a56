"""Run-wide limits shared by every task of a run: requests in flight, requests per minute,
a pause after a 429's Retry-After, and the spending budget.

Tasks run as threads of one process (ThreadPoolTaskRunner), so plain locks are enough; the
flow builds one ``RequestLimiter`` and one ``Budget`` per run and passes them down.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from collections.abc import Iterator

from docingest.errors import BudgetExhausted


class RequestLimiter:
    def __init__(self, max_in_flight: int, requests_per_minute: float | None = None,
                 clock=time.monotonic, sleep=time.sleep):
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._lock = threading.Lock()
        self._next_start = 0.0  # earliest start of the next request (rpm spacing)
        self._paused_until = 0.0  # set by a Retry-After
        self._clock, self._sleep = clock, sleep
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.peak_in_flight = 0

    def pause(self, seconds: float) -> None:
        """The server said "retry after": no request of this run starts before then."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _wait_turn(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                start = max(now, self._next_start, self._paused_until)
                if start <= now:
                    self._next_start = now + self._interval
                    return
            self._sleep(min(start - now, 1.0))

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._slots.acquire()
        try:
            self._wait_turn()
            with self._lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
            self._slots.release()


class Budget:
    """Spending so far against ``--budget-usd``. Once reached, no new request is sent."""

    def __init__(self, limit_usd: float | None):
        self.limit_usd = limit_usd
        self._spent = 0.0
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def check(self, estimate_usd: float = 0.0) -> None:
        if self.limit_usd is None:
            return
        with self._lock:
            if self._spent >= self.limit_usd or self._spent + estimate_usd > self.limit_usd:
                self.refused += 1
                raise BudgetExhausted(
                    f"budget of ${self.limit_usd:.4f} reached (spent ${self._spent:.4f}, next "
                    f"request estimated at ${estimate_usd:.4f}): no new VLM requests"
                )

    def add(self, cost_usd: float) -> None:
        with self._lock:
            self._spent += cost_usd
