"""The gunicorn worker: gthread, leaving each new connection to the worker that holds the fewest.

The workers share the master's listening socket, and every one is woken for a new connection;
with plain gthread whichever ran first took it, and 32 keep-alive clients ended up 23-26 on one
of two workers and 6-9 on the other (docs/performance.md). Here each worker publishes how many
connections it holds, at each turn of its event loop and after each accept, in memory that the
master shares with every worker it forks. A worker that holds more than the fewest another
live worker holds leaves the connection waiting for that worker, for DEFER_S at most, then
takes it itself, so a busy or slow worker never delays a connection by more. The socket stays
the master's: when a worker dies or drains, the connections waiting for it go to the others.
(One SO_REUSEPORT socket per worker also spreads them, but resets the ones queued on a worker
that dies; measured.)

A worker's count is trusted while its loop has turned within FRESH_S (it turns at least once a
second); a worker that stopped turning (stuck, killed, draining) is ignored. With one worker
nothing changes.
"""

import ctypes
import multiprocessing
import time

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 64  # workers alive at once, replacements included (WEB_CONCURRENCY is far smaller)
FRESH_S = 2.5  # a count older than this is ignored (the event loop waits 1 s at most)
DEFER_S = 0.005  # how long a connection is left to a worker that holds fewer, at most
DEFER_NAP_S = 0.0002  # the pause between two looks at a connection left to another worker
# A slot's count, or one of these marks (negative, so never the fewest):
FREE = -1.0  # no worker (the master's child_exit)
BOOTING = -2.0  # forked, loading its app: its loop has not turned yet
DRAINING = -3.0  # stopping (its handle_exit): takes no new connection

# Per slot: [connections held, or a mark above; the time of its loop's last turn
# (time.monotonic, one clock for every process)]. Allocated when gunicorn imports this module
# in the master, so every forked worker shares it.
_COUNTS = multiprocessing.RawArray(ctypes.c_double, [FREE] * (2 * SLOTS))
_USED = multiprocessing.RawValue(ctypes.c_int, 0)  # slots ever claimed: 0 .. _USED - 1


def claim_slot() -> int | None:
    """A free slot for the worker about to be forked (the master's pre_fork); None beyond SLOTS
    workers, whose extra ones then take connections as plain gthread does."""
    for slot in range(SLOTS):  # the lowest free one, so that _USED stays near the workers
        if _COUNTS[2 * slot] == FREE:
            publish(slot, BOOTING)
            _USED.value = max(_USED.value, slot + 1)
            return slot
    return None


def release_slot(slot: int | None, mark: float = FREE) -> None:
    """Mark a worker's slot: FREE when it exited (the master's child_exit, the only place a slot
    is freed, so that a draining worker's slot is never handed to a new one), DRAINING when it
    stops taking connections."""
    if slot is not None:
        _COUNTS[2 * slot] = mark


def publish(slot: int, connections: float) -> None:
    _COUNTS[2 * slot + 1] = time.monotonic()
    _COUNTS[2 * slot] = connections


def fewest_elsewhere(slot: int) -> float:
    """The fewest connections a live, accepting worker other than `slot` holds (inf: none)."""
    now, fewest = time.monotonic(), float("inf")
    for other in range(_USED.value):
        held, turned = _COUNTS[2 * other], _COUNTS[2 * other + 1]
        if other != slot and held >= 0 and now - turned < FRESH_S:
            fewest = min(fewest, held)
    return fewest


class BalancedThreadWorker(ThreadWorker):
    """gthread's worker, leaving a new connection to another worker that holds fewer."""

    slot: int | None = None  # set by the master before the fork (gunicorn.conf.py pre_fork)
    deferring_since: float | None = None  # when this worker began leaving a connection
    looked = False  # accept() ran since the loop's last turn

    @property
    def worker_connections(self) -> int:
        """gthread's loop reads this once a turn (to decide whether to poll the listening
        socket at all): the turn publishes this worker's count, and a turn after one without a
        waiting connection ends a deferral (another worker took that connection)."""
        if self.slot is not None and self.alive:
            publish(self.slot, self.nr_conns)
        if not self.looked:
            self.deferring_since = None
        self.looked = False
        return self.limit

    @worker_connections.setter
    def worker_connections(self, limit: int) -> None:
        self.limit = limit

    def accept(self, listener) -> None:
        """Accept one waiting connection, unless another live worker holds fewer: then leave
        it to that one (every worker is woken for it) for up to DEFER_S, and take it after."""
        self.looked = True
        if self.slot is not None and self.nr_conns > fewest_elsewhere(self.slot):
            now = time.monotonic()
            self.deferring_since = self.deferring_since or now
            if now - self.deferring_since < DEFER_S:
                time.sleep(DEFER_NAP_S)  # the GIL to this worker's threads, the turn to the other
                return
        self.deferring_since = None
        super().accept(listener)
        if self.slot is not None and self.alive:
            publish(self.slot, self.nr_conns)

    def handle_exit(self, sig, frame) -> None:
        release_slot(self.slot, DRAINING)  # the others no longer leave connections to it
        super().handle_exit(sig, frame)
