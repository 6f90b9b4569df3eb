"""The reference's own passes, computed once per reference rows and kept.

A service diagnoses many batches against one reference: a model's mixture draws (the same
seeded rows for every batch of a size), a bundled or uploaded features reference. Two parts
of the feature section depend on the reference rows alone: their k-NN sweep (the manifold
radii and the near-duplicate threshold) and their K-means (the NDB bins and the reference's
histogram). At 50k x 50k, d = 64, they are about 4.6 of the report's 10.4 s (docs/
performance.md). ReferencePasses keeps them per process, keyed by the rows' digest (shape,
dtype and the SHA-256 of their bytes: about 25 ms for 50,000 x 64 float64), so a later
report against the same rows skips them and gets the very arrays a fresh computation gives
(deterministic: the same bits).

Bounded: at most `entries` references are kept (the least recently used leaves first); an
entry holds float64 [N, k + 1] distances and the K-means fit, about 3 MB for 50,000 rows.
Kept arrays are read-only. Two threads asking for the same missing part wait for one
computation. The service sets `entries` from REFERENCE_PASS_ENTRIES (0: nothing is kept).
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_ENTRIES = 8


def reference_digest(reference: np.ndarray) -> str:
    """The key of a reference's rows: shape, dtype and SHA-256 of the bytes (C order)."""
    rows = np.ascontiguousarray(reference)
    digest = hashlib.sha256(memoryview(rows).cast("B")).hexdigest()
    return f"{rows.dtype.str}{list(rows.shape)}:{digest}"


def _read_only(value):
    """Mark value's arrays (itself, or a dataclass's array fields) read-only."""
    arrays = [value] if isinstance(value, np.ndarray) else list(vars(value).values())
    for array in arrays:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return value


class ReferencePasses:
    """A bounded memo of per-reference results: get(digest, part, compute)."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self.entries = entries
        # observer(part, kept): told of each lookup, kept True when it found the part (the
        # service counts them in Prometheus)
        self.observer: Callable[[str, bool], None] | None = None
        self._kept: OrderedDict[str, dict[str, object]] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[tuple[str, str], threading.Lock] = {}
        self.hits = self.misses = 0

    def get(self, digest: str | None, part: str, compute: Callable[[], T]) -> T:
        """The kept `part` of the reference with this digest, else compute() kept for the next
        call. digest None (or entries 0): compute() every time. An exception is not kept."""
        if digest is None or self.entries <= 0:
            return compute()
        key = (digest, part)
        with self._lock:
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:  # one computation of a part at a time; the others then find it
            with self._lock:
                kept = self._kept.get(digest, {})
                found = part in kept
                if found:
                    self._kept.move_to_end(digest)
                    self.hits += 1
            if self.observer is not None:
                self.observer(part, found)
            if found:
                return kept[part]
            try:
                value = compute()
                self.put(digest, part, value)
                with self._lock:
                    self.misses += 1
            finally:
                with self._lock:
                    self._computing.pop(key, None)
        return value

    def put(self, digest: str, part: str, value) -> None:
        """Keep value as the reference's `part` (read from where an earlier process stored
        it); nothing when entries is 0."""
        if self.entries <= 0:
            return
        value = _read_only(value)
        with self._lock:
            self._kept.setdefault(digest, {})[part] = value
            self._kept.move_to_end(digest)
            while len(self._kept) > self.entries:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self.hits = self.misses = 0


REFERENCE_PASSES = ReferencePasses()  # the process's memo, used by features.feature_metrics
