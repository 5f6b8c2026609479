"""run_stoppable: a cancelled caller stops its thread and waits for it (pipeline/cancel.py)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from serve_app.pipeline.cancel import Cancelled, WorkGauge, check, run_stoppable


def slow_work(steps: int, *, stop: threading.Event, log: list) -> int:
    for i in range(steps):
        check(stop)
        log.append(i)
        time.sleep(0.01)
    return steps


def test_the_result_comes_back_when_nobody_cancels():
    log: list = []
    assert asyncio.run(run_stoppable(slow_work, 5, log=log)) == 5 and log == [0, 1, 2, 3, 4]


def test_cancelling_stops_the_thread_and_waits_for_it():
    log: list = []
    gauge = WorkGauge("test", logging.getLogger("test"))

    async def main():
        task = asyncio.ensure_future(run_stoppable(slow_work, 10_000, log=log, gauge=gauge))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The thread has ended by the time the cancellation arrives: nothing runs on for nobody.
        assert gauge.running == 0
        done = len(log)
        await asyncio.sleep(0.1)
        assert len(log) == done < 10_000

    asyncio.run(main())


def test_one_at_a_time_stays_one_at_a_time_across_cancellations():
    """As in a replica: every call is admitted at once (Serve counts a cancelled request as done as soon
    as it is cancelled), so the gauge's limit is what keeps cancelled threads from running beside new ones."""
    gauge = WorkGauge("one", logging.getLogger("test"), limit=1)

    async def main():
        tasks = [asyncio.ensure_future(run_stoppable(slow_work, 30, log=[], gauge=gauge)) for _ in range(6)]
        for task in tasks[:4]:
            await asyncio.sleep(0.05)
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 4
        assert results[-2:] == [30, 30]

    asyncio.run(main())
    assert gauge.peak == 1 and gauge.running == 0


def test_without_a_limit_work_runs_side_by_side():
    gauge = WorkGauge("many", logging.getLogger("test"))

    async def main():
        return await asyncio.gather(*(run_stoppable(slow_work, 20, log=[], gauge=gauge) for _ in range(4)))

    assert asyncio.run(main()) == [20] * 4
    assert gauge.peak > 1


def test_check_raises_only_once_stopped():
    stop = threading.Event()
    check(stop)
    check(None)
    stop.set()
    with pytest.raises(Cancelled):
        check(stop)
