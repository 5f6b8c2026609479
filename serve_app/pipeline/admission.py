"""ASR admission: one queue, one owner, one loop that forms every batch.

Windows of every request wait here with a due time (`due_at`); a single loop takes the windows due first,
up to the batch size, runs the model on them in a thread, and resolves each window's future. It is the
only place that decides what runs next, so:

- a long file's later windows wait behind the short requests that arrive meanwhile (they are due later),
  yet never more than `pace` times real time behind its own arrival;
- a window whose caller has gone (its future cancelled) is dropped before it reaches the model;
- a window that must go first (live audio) enters with a near due time;
- the batch size and the wait for a batch to fill apply from the next batch on when changed;
- live windows (realtime sessions) go first, yet while file windows wait they get at most `live_share` of
  the model's recent time: on a saturated machine live audio cannot starve file requests (nor can they
  starve it: a file window only goes first when it is due first).

The wait works like Serve's `@serve.batch`: a batch that is not full waits until its oldest window has
waited `batch_wait_s`, so a lone request is not held longer than that, and windows that queued while the
model was busy run as soon as it is free. This replaces a due-time queue in front of `@serve.batch`, whose
FIFO queue held windows out of order (a long file's windows ahead of every short request after it) and
whose items had to be tracked twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Generic, Optional, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)

# The model time that `live_share` compares is a moving sum that halves every this many seconds: recent
# enough to react within a few batches, long enough to span several (a CPU batch takes seconds).
SHARE_HALF_LIFE_S = 10.0


def due_at(arrival: float, audio_end_s: float, pace: float) -> float:
    """When a window that ends `audio_end_s` into a request's audio is due, the request having arrived at
    `arrival`. With pace 1 (real time) a 5 s clip is due 5 s after it arrives and the tenth window of a
    5-minute file 300 s after that file arrived. Pace 0 is first come, first served (ties keep arrival
    order, and a request's windows stay in order)."""
    return arrival + pace * audio_end_s


@dataclass(order=True)
class _Entry(Generic[T]):
    due: float
    seq: int  # equal due times leave in the order they came
    arrived: float = field(compare=False)
    item: T = field(compare=False)
    future: asyncio.Future = field(compare=False)
    live: bool = field(default=False, compare=False)


class BatchAdmission(Generic[T, R]):
    """Forms batches of waiting items by due time and runs `run_batch(items) -> results` (one result per
    item, in order) in a thread, one batch at a time. Use from one event loop."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.05,
        live_share: float = 1.0,
        on_batch: Optional[Callable[[int], None]] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run_batch = run_batch
        self._on_batch = on_batch
        self._clock = clock
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()
        self._wake: Optional[asyncio.Event] = None
        self._loop_task: Optional[asyncio.Task] = None
        self.max_batch_size = 1
        self.batch_wait_s = 0.0
        self.live_share = 1.0
        self._model_time = {True: 0.0, False: 0.0}  # live / other: decayed seconds of model time
        self._model_time_at = clock()
        self.configure(max_batch_size, batch_wait_s, live_share)

    def configure(self, max_batch_size: int, batch_wait_s: float, live_share: float = 1.0) -> None:
        if max_batch_size < 1 or batch_wait_s < 0 or not 0 <= live_share <= 1:
            raise ValueError("max_batch_size must be >= 1, batch_wait_s >= 0 and live_share in [0, 1]")
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.live_share = live_share
        self._poke()  # a batch waiting to fill is decided again with the new figures

    @property
    def waiting(self) -> int:
        """Items waiting whose caller is still there."""
        return sum(1 for e in self._heap if not e.future.done())

    def submit(self, item: T, due: float, live: bool = False) -> asyncio.Future:
        """Queue one item; its future gets the item's result (or the batch's exception). Cancelling the
        future withdraws the item if its batch has not started. `live`: a realtime window (`live_share`)."""
        loop = asyncio.get_running_loop()
        if self._loop_task is None or self._loop_task.done():
            self._wake = asyncio.Event()
            self._loop_task = loop.create_task(self._serve())
        future = loop.create_future()
        heapq.heappush(self._heap, _Entry(due, next(self._seq), self._clock(), item, future, live))
        self._poke()
        return future

    async def run(self, items: Sequence[tuple[float, T]], live: bool = False) -> list[R]:
        """Queue (due, item) pairs and wait for all their results."""
        return [result async for result in self.in_order(items, live)]

    def live_time_share(self) -> float:
        """The live windows' share of the model's recent time (0 when it has been idle)."""
        self._decay()
        total = self._model_time[True] + self._model_time[False]
        return self._model_time[True] / total if total > 0 else 0.0

    def _decay(self) -> None:
        now = self._clock()
        factor = math.exp(-math.log(2) * (now - self._model_time_at) / SHARE_HALF_LIFE_S)
        self._model_time = {k: v * factor for k, v in self._model_time.items()}
        self._model_time_at = now

    async def in_order(self, items: Sequence[tuple[float, T]], live: bool = False) -> AsyncIterator[R]:
        """Queue (due, item) pairs and yield their results in the items' order, each as soon as it and the
        ones before it are done. Cancelled or closed early (the request went away, an item failed), it
        withdraws those of its items that have not started."""
        futures = [self.submit(item, due, live) for due, item in items]
        try:
            for future in futures:
                yield await future
        finally:
            for future in futures:
                if future.done():
                    if not future.cancelled():
                        future.exception()  # retrieved: a batch's error is raised once, not logged again
                else:
                    future.cancel()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _drop_gone(self) -> None:
        if any(e.future.done() for e in self._heap):
            self._heap = [e for e in self._heap if not e.future.done()]
            heapq.heapify(self._heap)

    def _next_batch(self) -> tuple[Optional[list[_Entry[T]]], Optional[float]]:
        """(the batch to run now, None), or (None, how long to wait for more items or for the oldest to
        have waited; None: until something arrives)."""
        self._drop_gone()
        if not self._heap:
            return None, None
        if len(self._heap) < self.max_batch_size:
            wait = min(e.arrived for e in self._heap) + self.batch_wait_s - self._clock()
            if wait > 0:
                return None, wait
        size = min(self.max_batch_size, len(self._heap))
        kinds = {e.live for e in self._heap}
        if len(kinds) == 2 and self.live_time_share() > self.live_share:
            # Live audio has had its share: the file windows waiting go first, by due time.
            batch = sorted(self._heap, key=lambda e: (e.live, e))[:size]
            taken = {id(e) for e in batch}
            self._heap = [e for e in self._heap if id(e) not in taken]
            heapq.heapify(self._heap)
            return batch, None
        return [heapq.heappop(self._heap) for _ in range(size)], None

    async def _serve(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            batch, wait = self._next_batch()
            if batch is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            await self._run(batch)

    async def _run(self, batch: list[_Entry[T]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        started = self._clock()
        try:
            # The model call blocks for seconds: keep it off the event loop. A caller that leaves now
            # does not stop it (the batch's other items need it); its result is dropped.
            results = await asyncio.to_thread(self._run_batch, [e.item for e in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # noqa: BLE001 - goes to every caller in the batch; the loop goes on
            logger.exception("a batch of %d failed", len(batch))
            for e in batch:
                if not e.future.done():
                    e.future.set_exception(exc)
        else:
            for e, result in zip(batch, results):
                if not e.future.done():
                    e.future.set_result(result)
        finally:
            # the batch's time, split between live and other windows by their number in it
            self._decay()
            spent = self._clock() - started
            live = sum(e.live for e in batch)
            self._model_time[True] += spent * live / len(batch)
            self._model_time[False] += spent * (len(batch) - live) / len(batch)
