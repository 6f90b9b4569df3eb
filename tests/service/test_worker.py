"""service/worker.py's shared counts: slots, freshness, and the rule that decides when a worker
polls the listening socket (the real gunicorn: tests/service/test_gunicorn.py)."""

import time

import pytest

from service import worker
from service.worker import (
    DRAINING,
    FREE,
    BalancedThreadWorker,
    claim_slot,
    fewest_elsewhere,
    publish,
)


@pytest.fixture(autouse=True)
def empty_slots(monkeypatch):
    """Fresh shared counts for each test (the module's own live in this process only)."""
    counts = type(worker._COUNTS)(*([FREE] * len(worker._COUNTS)))
    used = type(worker._USED)(0)
    monkeypatch.setattr(worker, "_COUNTS", counts)
    monkeypatch.setattr(worker, "_USED", used)


def test_slots_are_claimed_lowest_first_and_released():
    assert [claim_slot() for _ in range(3)] == [0, 1, 2]
    worker.release_slot(1)
    assert claim_slot() == 1 and worker._USED.value == 3
    worker.release_slot(None)  # a worker the master never gave a slot: nothing happens
    while claim_slot() is not None:
        pass
    assert worker._USED.value == worker.SLOTS  # beyond SLOTS workers: None, plain gthread


def test_fewest_elsewhere_ignores_itself_free_and_stale_slots(monkeypatch):
    a, b, c = claim_slot(), claim_slot(), claim_slot()
    publish(a, 9)
    publish(b, 4)
    publish(c, 2)
    assert fewest_elsewhere(a) == 2 and fewest_elsewhere(c) == 4
    worker.release_slot(c, DRAINING)
    assert fewest_elsewhere(a) == 4
    worker.release_slot(b)  # exited
    booting = claim_slot()
    assert booting == b and fewest_elsewhere(a) == float("inf")  # loading: not waited for
    publish(b, 4)
    now = time.monotonic()
    monkeypatch.setattr(worker.time, "monotonic", lambda: now + worker.FRESH_S + 0.1)
    assert fewest_elsewhere(a) == float("inf")  # b's loop stopped turning: not waited for


class Stub(BalancedThreadWorker):
    """The accept rule alone: gthread's own accept replaced by a counter."""

    def __init__(self, slot, connections, limit=1000):
        self.slot, self.nr_conns, self.alive = slot, connections, True
        self.worker_connections = limit

    def accept_connection(self, listener) -> None:  # stands for ThreadWorker.accept
        self.nr_conns += 1


@pytest.fixture
def counted_accept(monkeypatch):
    monkeypatch.setattr(worker.ThreadWorker, "accept", Stub.accept_connection)


def test_a_worker_leaves_a_connection_to_one_holding_fewer_then_takes_it(
    counted_accept, monkeypatch
):
    a, b = Stub(claim_slot(), 0), Stub(claim_slot(), 0)
    assert a.worker_connections == b.worker_connections == 1000  # a turn of each loop
    a.accept(None)
    assert a.nr_conns == 1
    a.accept(None)  # b holds fewer: left to b
    assert a.nr_conns == 1 and a.deferring_since is not None
    b.accept(None)
    a.accept(None)  # level again: a takes it
    assert (a.nr_conns, b.nr_conns, a.deferring_since) == (2, 1, None)
    now = time.monotonic()
    # left waiting twice that long: taken all the same (exactly DEFER_S ago can round to a
    # hair under it, depending on the clock's value)
    a.deferring_since = now - 2 * worker.DEFER_S
    monkeypatch.setattr(worker.time, "monotonic", lambda: now)
    a.accept(None)
    assert a.nr_conns == 3


def test_a_lone_draining_or_slotless_worker_accepts_at_once(counted_accept):
    lone = Stub(claim_slot(), 5)
    lone.accept(None)
    assert lone.nr_conns == 6  # no other worker
    other = Stub(claim_slot(), 0)
    assert other.worker_connections == 1000
    worker.release_slot(other.slot, DRAINING)  # the other stops (its handle_exit)
    lone.accept(None)
    assert lone.nr_conns == 7
    slotless = Stub(None, 5)
    slotless.accept(None)
    assert slotless.nr_conns == 6


def test_a_deferral_ends_when_another_worker_took_the_connection(counted_accept):
    """A connection left to another worker and taken by it: the next one is left again, not
    taken at once because the first deferral began more than DEFER_S ago."""
    a, b = Stub(claim_slot(), 5), Stub(claim_slot(), 2)
    assert a.worker_connections == b.worker_connections == 1000
    a.accept(None)  # left to b
    b.accept(None)
    assert (a.nr_conns, b.nr_conns) == (5, 3)
    assert a.worker_connections == 1000 and a.deferring_since is not None  # a turn after a look
    assert a.worker_connections == 1000 and a.deferring_since is None  # a turn without one
    a.accept(None)  # the next connection: left to b again
    assert a.nr_conns == 5 and a.deferring_since is not None
