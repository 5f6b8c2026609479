"""Which waiting windows go into the next batch: the ones due first.

A request that arrives at `t` has its window that ends `p` seconds into its audio due at `t + p * pace`.
With pace 1 (real time) a 5 s clip is due 5 s after it arrives and the tenth window of a 5-minute file
300 s after that file arrived: short requests go ahead of the rest of a long one, while requests that
arrive later can never hold a long file back further than real time. Pace 0 is first come, first served
(ties keep arrival order, and a request's windows stay in order).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


def due_at(arrival: float, audio_end_s: float, pace: float) -> float:
    return arrival + pace * audio_end_s


class DueQueue(Generic[T]):
    """A priority queue by due time; equal due times leave in the order they came."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._seq = itertools.count()

    def push(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), item))

    def pop(self) -> T:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)
