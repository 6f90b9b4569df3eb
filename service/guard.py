"""The concurrency guard: a bounded number of heavy requests in flight per worker, a deadline.

Generation and diagnostics run on a small thread pool whose size is the in-flight limit. A
request beyond the limit gets a fast 503 with Retry-After instead of queueing (a gan's or a /v2
request of up to MAX_BATCH rows queues in its batcher instead, service/batching.py); one past
its deadline gets 504 while its computation finishes in the background, still holding its slot
so that late work cannot pile up.
"""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from service import metrics
from service.errors import ApiError

T = TypeVar("T")


class Guard:
    """Runs heavy work with at most `max_in_flight` at once, each within `deadline_s` seconds."""

    def __init__(self, max_in_flight: int, deadline_s: float, retry_after_s: int = 1) -> None:
        self.max_in_flight = max_in_flight
        self.deadline_s = deadline_s
        self.retry_after_s = retry_after_s
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="guarded")

    def run(
        self, work: Callable[..., T], *args: object, bounded: bool = False, wait: bool = False
    ) -> T:
        """work(*args), or ApiError 503 (no free slot) / 504 (deadline passed).

        bounded: the work is known to be short (one generation batch), so it runs in the
        calling thread, skipping the pool's hand-off (a slot is still taken; no deadline).
        wait: when every slot is taken, wait for one up to the deadline (504 after it) instead
        of the 503: a merged batch (service/batching.py), whose requests already waited their
        turn in its bounded queue.
        """
        self._acquire(wait)
        if bounded:
            try:
                return work(*args)
            finally:
                self._release()
        try:
            future = self._pool.submit(work, *args)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        try:
            return future.result(timeout=self.deadline_s)
        except FutureTimeout:
            raise self.past_deadline() from None

    def past_deadline(self) -> ApiError:
        """The 504 of a request past REQUEST_DEADLINE (counted): its work running too long, or
        its wait for a slot or for its turn in a batch queue (service/batching.py)."""
        metrics.DEADLINE_EXCEEDED.inc()
        return ApiError(
            504,
            f"not done within the deadline of {self.deadline_s:g} s "
            "(REQUEST_DEADLINE); ask for fewer samples, or send 'Prefer: respond-async' "
            "to run it as a job (202 and Location: /v1/jobs/<id>)",
            "deadline",
        )

    def _acquire(self, wait: bool = False) -> None:
        if wait:
            if not self._slots.acquire(timeout=self.deadline_s):
                raise self.past_deadline()
        elif not self._slots.acquire(blocking=False):
            metrics.GUARD_REJECTIONS.inc()
            raise ApiError(
                503,
                f"busy: {self.max_in_flight} requests already in flight "
                "(MAX_IN_FLIGHT); retry shortly",
                "busy",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        metrics.IN_FLIGHT.inc()

    def _release(self) -> None:
        metrics.IN_FLIGHT.dec()
        self._slots.release()
