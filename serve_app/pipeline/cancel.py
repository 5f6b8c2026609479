"""Blocking work (decoding, diarization) that stops when the request it serves is cancelled.

A replica runs model and FFmpeg work in threads so that its event loop keeps serving. Cancelling the
awaiting coroutine does not stop a thread: without this, a request that timed out or whose client left
kept its thread busy, and Serve, which had already counted the request as done, admitted the next one, so
a replica meant to run one diarization at a time ran two. Here the work gets a `stop` event that it checks
between steps, and the coroutine waits for the thread to end before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside stopped work, at its next check; never reaches a client (the request is gone)."""


def check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise Cancelled()


class WorkGauge:
    """How many pieces of work a replica runs at once, logged at each change ("<name>: running=N"), with
    the most it ever ran (`peak`): the tests read these lines to check a replica's concurrency.

    With a `limit`, work waits for a slot before its thread starts. Serve's max_ongoing_requests alone
    does not hold: the replica counts a cancelled request as done as soon as it is cancelled, while its
    thread is still on its way to the next check, and admits the next request beside it."""

    def __init__(self, name: str, logger: logging.Logger, limit: int | None = None) -> None:
        self.name = name
        self.limit = limit
        self.running = 0
        self.peak = 0
        self._logger = logger
        self._lock = threading.Lock()
        self._slots = asyncio.Semaphore(limit) if limit else None  # bound to the loop that first waits

    def __enter__(self) -> "WorkGauge":
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self._logger.info("%s: running=%d", self.name, self.running)
        return self

    def stopping(self) -> None:
        self._logger.info("%s: a cancelled request's work is stopping", self.name)

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.running -= 1
            self._logger.info("%s: running=%d", self.name, self.running)


async def run_stoppable(fn: Callable[..., T], *args, gauge: WorkGauge | None = None, **kwargs) -> T:
    """`fn(*args, stop=<threading.Event>, **kwargs)` in a thread. If this coroutine is cancelled, `stop` is
    set and the cancellation waits for the thread to return (fn checks `stop` between its steps), so the
    work never outlives its request and the caller's concurrency limit covers it to the end."""
    slots = gauge._slots if gauge is not None else None
    if slots is None:
        return await _run(fn, args, kwargs, gauge)
    async with slots:  # released only once the thread has ended, cancelled or not
        return await _run(fn, args, kwargs, gauge)


async def _run(fn: Callable[..., T], args, kwargs, gauge: WorkGauge | None) -> T:
    stop = threading.Event()

    def work() -> T:
        if gauge is None:
            return fn(*args, stop=stop, **kwargs)
        with gauge:
            return fn(*args, stop=stop, **kwargs)

    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(work))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        if gauge is not None:
            gauge.stopping()
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue  # cancelled again while waiting: the thread must still end first
            except Exception:  # noqa: BLE001 - Cancelled, or the work's own error: the request is gone
                break
        raise
