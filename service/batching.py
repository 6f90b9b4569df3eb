"""Dynamic batching: concurrent small requests to one model session, in one gunicorn worker (whose
gthreads share the sessions), merged into one onnxruntime run, the way Triton's dynamic batcher
merges them (BATCHING, BATCH_WINDOW_US, BATCH_MAX_ROWS, BATCH_QUEUE, BATCH_LARGE_QUEUE:
service/config.py).

Each request brings its own inputs (a gan's seeded latents, drawn in its own thread, or a /v2
request's tensors) and queues them. There is no batching thread: the first request to find the
session idle leads. It waits up to the window for company (not when BATCH_MAX_ROWS rows are
queued already), takes the queue's head up to BATCH_MAX_ROWS rows, runs them as one batch in its
own thread under one slot of the guard, and hands every request its rows; the requests that
arrived meanwhile form the next batch, led by the first of them. With no window a lone request
runs at once, and merging happens exactly when requests would otherwise wait for each other.

Rows are independent in every graph served (a row's output never depends on the other rows:
tests/service/test_batching.py compares bits), so each request gets exactly the samples it gets
alone. Larger requests (above BATCH_MAX_ROWS, up to MAX_BATCH: one run each) queue in the same
line, at most BATCH_LARGE_QUEUE of them, and run as a batch of their own, so that under load they
wait their turn instead of getting the guard's 503. A request still queued at REQUEST_DEADLINE
leaves the queue with a 504. Not queued: score models' sampler loops (many runs per request;
with churn, each request draws its churn noise from its own seed's stream over its own rows) and
requests beyond MAX_BATCH rows, which run on the guard's pool under its deadline.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service import metrics
from service.errors import ApiError
from service.guard import Guard

# run(inputs) -> the first output [rows, ...] of one session over named inputs [rows, ...].
Run = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class BatchSettings:
    """window_s: seconds a batch's first request waits for others; max_rows: rows per merged
    run (and the largest request merged); max_queue: requests waiting, 503 beyond; max_large:
    of those, requests above max_rows (each a batch of its own), 503 beyond (0: such requests
    are not queued, see Batchers.takes)."""

    window_s: float
    max_rows: int
    max_queue: int
    max_large: int = 0


@dataclass(eq=False)
class Ticket:
    """One request in a batch queue: its inputs [rows, ...]; then its output rows (or the error
    its batch met), the seconds it waited and the seconds its batch's run took."""

    inputs: dict[str, np.ndarray]
    rows: int
    arrived: float
    woken: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    output: np.ndarray | None = None
    error: BaseException | None = None
    queue_s: float = 0.0
    compute_s: float = 0.0


class Batcher:
    """The batch queue of one session (one model version's graph) in one worker."""

    def __init__(self, run: Run, settings: BatchSettings, guard: Guard, model: str, version: int):
        self._run, self._settings, self._guard = run, settings, guard
        self._lock = threading.Lock()
        self._filled = threading.Condition(self._lock)  # BATCH_MAX_ROWS rows are queued
        self._queue: deque[Ticket] = deque()
        self._queued_rows = 0
        self._large = 0  # queued requests of more than max_rows rows
        self._busy = False  # a leader is forming or running a batch
        labels = {"model": model, "version": str(version)}
        self._exec_count = metrics.INFERENCE_EXEC_COUNT.labels(**labels)
        self._queue_us = metrics.INFERENCE_QUEUE_US.labels(**labels)
        self._batch_requests = metrics.BATCH_REQUESTS.labels(model=model)
        self._queue_seconds = metrics.BATCH_QUEUE_SECONDS.labels(model=model)

    def submit(self, inputs: dict[str, np.ndarray]) -> Ticket:
        """Queue `inputs`, wait for its batch to run; the done ticket (its output, or the error
        to raise). ApiError 503 when max_queue requests (or max_large larger than max_rows) are
        waiting, 504 when it is still waiting at the guard's deadline."""
        ticket = Ticket(inputs, len(next(iter(inputs.values()))), time.perf_counter())
        with self._lock:
            self._admit(ticket)
            ticket.lead = not self._busy
            self._busy = True
            if self._queued_rows >= self._settings.max_rows:
                self._filled.notify()
        if not ticket.lead:
            self._await(ticket)  # its batch ran, or it was made the next leader
        if ticket.lead:
            self._run_batch()
        return ticket

    def _admit(self, ticket: Ticket) -> None:
        """Append the ticket to the queue (the lock held), or raise the 503 of a full queue."""
        large = ticket.rows > self._settings.max_rows
        if len(self._queue) >= self._settings.max_queue:
            raise self._queue_full(self._settings.max_queue, "BATCH_QUEUE", "requests")
        if large and self._large >= self._settings.max_large:
            limit, kind = self._settings.max_large, "requests above BATCH_MAX_ROWS"
            raise self._queue_full(limit, "BATCH_LARGE_QUEUE", kind)
        self._queue.append(ticket)
        self._queued_rows += ticket.rows
        self._large += large

    def _await(self, ticket: Ticket) -> None:
        """Wait until the ticket's batch has run or the ticket leads; past the guard's deadline
        a ticket still in the queue (neither taken into a batch nor leading) leaves it: 504."""
        if ticket.woken.wait(self._guard.deadline_s):
            return
        with self._lock:
            queued = not ticket.lead and ticket in self._queue
            if queued:
                self._queue.remove(ticket)
                self._queued_rows -= ticket.rows
                self._large -= ticket.rows > self._settings.max_rows
        if queued:
            raise self._guard.past_deadline()
        ticket.woken.wait()  # its batch is running, or it was just made the leader

    def _run_batch(self) -> None:
        """Form a batch from the queue's head (the leader's own ticket first), run it, hand out
        the rows, and make the next queued request the leader (or leave the session idle)."""
        batch = self._take()
        try:
            self._compute(batch)
            self._observe(batch)
        finally:
            self._hand_over(batch)

    def _compute(self, batch: list[Ticket]) -> None:
        """One run over the batch's concatenated inputs under a guard slot; each ticket gets its
        rows of the output, or the error (every request of the batch answers it)."""
        started = time.perf_counter()
        try:
            merged = batch[0].inputs if len(batch) == 1 else concatenated([t.inputs for t in batch])
            output = self._guard.run(self._run, merged, bounded=True, wait=True)
        except BaseException as error:  # noqa: B036 (even an exit is each request's answer)
            output = None
            for ticket in batch:
                ticket.error = error
        finished, start = time.perf_counter(), 0
        for ticket in batch:
            ticket.queue_s, ticket.compute_s = started - ticket.arrived, finished - started
            if output is not None:
                ticket.output = output[start : start + ticket.rows]
            start += ticket.rows

    def _take(self) -> list[Ticket]:
        """Wait up to the window unless max_rows rows are queued, then pop the queue's head:
        tickets while their rows fit in max_rows (the first always)."""
        settings = self._settings
        with self._lock:
            if settings.window_s > 0 and self._queued_rows < settings.max_rows:
                self._filled.wait(settings.window_s)
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            while self._queue and rows + self._queue[0].rows <= settings.max_rows:
                batch.append(self._queue.popleft())
                rows += batch[-1].rows
            self._queued_rows -= rows
            self._large -= rows > settings.max_rows  # a larger request is a batch of its own
        return batch

    def _hand_over(self, batch: list[Ticket]) -> None:
        """Wake the batch's requests; the queue's new head (if any) leads the next batch."""
        with self._lock:
            leader = self._queue[0] if self._queue else None
            if leader is None:
                self._busy = False
            else:
                leader.lead = True
        for ticket in batch:
            ticket.lead = False
            ticket.woken.set()
        if leader is not None:
            leader.woken.set()

    def _observe(self, batch: list[Ticket]) -> None:
        self._exec_count.inc()
        self._batch_requests.observe(len(batch))
        self._queue_us.inc(sum(ticket.queue_s for ticket in batch) * 1e6)
        for ticket in batch:
            self._queue_seconds.observe(ticket.queue_s)

    @staticmethod
    def _queue_full(limit: int, setting: str, kind: str) -> ApiError:
        metrics.GUARD_REJECTIONS.inc()
        return ApiError(
            503,
            f"busy: {limit} {kind} already waiting for this model version ({setting}); "
            "retry shortly",
            "busy",
            headers={"Retry-After": "1"},
        )


def concatenated(inputs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Several requests' named inputs as one: each name's arrays concatenated on the row axis,
    in list order."""
    return {name: np.concatenate([each[name] for each in inputs]) for name in inputs[0]}


class Batchers:
    """The batchers of one worker, one per (session, input signature), made on first use."""

    def __init__(self, settings: BatchSettings, guard: Guard) -> None:
        self.settings, self._guard = settings, guard
        self._lock = threading.Lock()
        self._batchers: dict[tuple, Batcher] = {}

    def takes(self, rows: int, max_batch: int) -> bool:
        """Whether a request of `rows` rows queues here: up to max_rows (merged with others),
        or up to `max_batch` (MAX_BATCH: one run) while max_large allows larger ones."""
        settings = self.settings
        return rows <= settings.max_rows or (settings.max_large > 0 and rows <= max_batch)

    def get(
        self, session: object, inputs: dict[str, np.ndarray], run: Run, model: str, version: int
    ) -> Batcher:
        """The batcher of `session` for inputs of this signature (names, dtypes and row shapes:
        only such inputs concatenate), running merged inputs with run(inputs)."""
        key = (session, *((n, a.dtype.str, a.shape[1:]) for n, a in sorted(inputs.items())))
        batcher = self._batchers.get(key)
        if batcher is None:
            with self._lock:
                batcher = self._batchers.get(key)
                if batcher is None:
                    batcher = Batcher(run, self.settings, self._guard, model, version)
                    self._batchers[key] = batcher
        return batcher
