"""The ASR admission loop (pipeline/admission.py) with a fake model: which items form each batch, and when.

The fake model records every batch and can be held (a threading.Event) to let items queue up while it
"runs", which is how windows meet in a real replica. No test here measures time: waits are bounded only
so that a broken loop fails instead of hanging the suite.
"""

import asyncio
import threading

import pytest

from serve_app.pipeline.admission import BatchAdmission, due_at

HANG_GUARD_S = 30


class FakeModel:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail_on: set[str] = set()

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        self.gate.wait(HANG_GUARD_S)
        if self.fail_on & set(items):
            raise RuntimeError("model failed")
        return [item.upper() for item in items]

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    async def until_running(self) -> None:
        await asyncio.to_thread(self.entered.wait, HANG_GUARD_S)
        assert self.entered.is_set()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD_S))


async def _busy(admission: BatchAdmission, model: FakeModel, first: str = "first") -> asyncio.Future:
    """Put the model to work on one item and keep it there until model.gate is set."""
    model.hold()
    future = admission.submit(first, due=0.0)
    await model.until_running()
    return future


def test_batches_take_the_items_due_first():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=2, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        futures = [admission.submit(name, due) for name, due in [("c", 3.0), ("a", 1.0), ("d", 4.0), ("b", 2.0)]]
        model.gate.set()
        assert await asyncio.gather(busy, *futures) == ["FIRST", "C", "A", "D", "B"]
        assert model.batches == [["first"], ["a", "b"], ["c", "d"]]

    run(main())


def test_equal_due_times_keep_arrival_order():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=8, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        futures = [admission.submit(name, 1.0) for name in "abc"] + [admission.submit("early", 0.5)]
        model.gate.set()
        await asyncio.gather(busy, *futures)
        assert model.batches[1] == ["early", "a", "b", "c"]

    run(main())


def test_a_long_file_does_not_starve_a_short_request():
    """A 5 s clip sent 2 s after a 5-minute file goes before the file's later windows (pace 1); pace 0 is
    first come, first served; a small pace lets it pass only the windows due after it."""
    def order(pace: float) -> list[str]:
        async def main():
            model = FakeModel()
            admission = BatchAdmission(model, max_batch_size=1, batch_wait_s=0.0)
            busy = await _busy(admission, model)
            long_file = admission.run([(due_at(0.0, 30.0 * (i + 1), pace), f"long{i}") for i in range(10)])
            long_task = asyncio.ensure_future(long_file)
            await asyncio.sleep(0)
            short = admission.run([(due_at(2.0, 5.0, pace), "short")])
            model.gate.set()
            await asyncio.gather(busy, long_task, short)
            return [b[0] for b in model.batches[1:]]
        return run(main())

    assert order(1.0) == ["short"] + [f"long{i}" for i in range(10)]
    assert order(0.05) == ["long0", "short"] + [f"long{i}" for i in range(1, 10)]  # due 1.5, 2.25, 3
    assert order(0.0) == [f"long{i}" for i in range(10)] + ["short"]


def test_live_audio_with_a_near_deadline_goes_first():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=4, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        file_windows = asyncio.ensure_future(admission.run([(due_at(0.0, 30.0 * (i + 1), 1.0), f"w{i}") for i in range(8)]))
        await asyncio.sleep(0)
        live = admission.submit("live", due=0.0)
        model.gate.set()
        await asyncio.gather(busy, file_windows, live)
        assert model.batches[1] == ["live", "w0", "w1", "w2"]

    run(main())


def test_a_cancelled_request_never_reaches_the_model():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=8, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        gone = asyncio.ensure_future(admission.run([(1.0, "gone1"), (2.0, "gone2")]))
        stays = admission.submit("stays", 3.0)
        await asyncio.sleep(0)
        assert admission.waiting == 3
        gone.cancel()
        await asyncio.sleep(0)
        assert admission.waiting == 1
        model.gate.set()
        assert await stays == "STAYS"
        await busy
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert model.batches == [["first"], ["stays"]]

    run(main())


def test_a_caller_that_leaves_while_its_batch_runs_does_not_break_the_others():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=8, batch_wait_s=0.0)
        model.hold()
        leaving = admission.submit("leaving", 0.0)
        staying = admission.submit("staying", 0.0)
        await model.until_running()
        leaving.cancel()
        model.gate.set()
        assert await staying == "STAYING"
        assert model.batches == [["leaving", "staying"]]
        assert await admission.run([(0.0, "next")]) == ["NEXT"]  # the loop goes on

    run(main())


def test_a_failed_batch_fails_its_callers_only():
    async def main():
        model = FakeModel()
        model.fail_on = {"bad"}
        admission = BatchAdmission(model, max_batch_size=2, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        batch1 = [admission.submit(n, d) for n, d in [("bad", 1.0), ("unlucky", 1.5)]]
        later = admission.submit("fine", 2.0)
        model.gate.set()
        await busy
        for future in batch1:
            with pytest.raises(RuntimeError, match="model failed"):
                await future
        assert await later == "FINE"

    run(main())


def test_batch_size_changed_live():
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=8, batch_wait_s=0.0)
        busy = await _busy(admission, model)
        futures = [admission.submit(f"x{i}", float(i)) for i in range(6)]
        admission.configure(max_batch_size=2, batch_wait_s=0.0)
        model.gate.set()
        await asyncio.gather(busy, *futures)
        assert [len(b) for b in model.batches] == [1, 2, 2, 2]
        admission.configure(max_batch_size=16, batch_wait_s=0.0)
        model.hold()
        busy = admission.submit("again", 0.0)
        await model.until_running()
        futures = [admission.submit(f"y{i}", float(i)) for i in range(10)]
        model.gate.set()
        await asyncio.gather(busy, *futures)
        assert [len(b) for b in model.batches[4:]] == [1, 10]

    run(main())


def test_a_batch_waits_to_fill_and_a_new_wait_applies_at_once():
    """With a long wait, a lone item waits for company; a full batch goes at once; shortening the wait
    releases what is waiting."""
    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=3, batch_wait_s=3600.0)
        first = admission.submit("a", 0.0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert model.batches == [] and admission.waiting == 1
        second = admission.submit("b", 0.0)
        third = admission.submit("c", 0.0)  # the batch is full: it goes without waiting out the hour
        assert await asyncio.gather(first, second, third) == ["A", "B", "C"]
        assert model.batches == [["a", "b", "c"]]
        lone = admission.submit("d", 0.0)
        for _ in range(20):
            await asyncio.sleep(0)
        assert model.batches == [["a", "b", "c"]]
        admission.configure(max_batch_size=3, batch_wait_s=0.0)
        assert await lone == "D"
        assert model.batches[-1] == ["d"]

    run(main())


def test_items_that_queued_while_the_model_was_busy_do_not_wait_again():
    """The wait counts from when the oldest item arrived: once the model is free, items that waited
    through a batch run at once, even under a long batch wait."""
    clock = [0.0]

    async def main():
        model = FakeModel()
        admission = BatchAdmission(model, max_batch_size=8, batch_wait_s=10.0, clock=lambda: clock[0])
        model.hold()
        busy = admission.submit("first", 0.0)
        clock[0] = 10.0  # the first item has waited its 10 s (on the fake clock): it runs
        admission.configure(8, 10.0)
        await model.until_running()
        queued = admission.submit("queued", 1.0)
        clock[0] = 25.0  # the model took 15 s: "queued" has waited longer than the batch wait
        model.gate.set()
        assert await asyncio.gather(busy, queued) == ["FIRST", "QUEUED"]
        assert model.batches == [["first"], ["queued"]]

    run(main())


def test_invalid_figures_are_refused():
    with pytest.raises(ValueError):
        BatchAdmission(FakeModel(), max_batch_size=0)
    with pytest.raises(ValueError):
        BatchAdmission(FakeModel(), batch_wait_s=-1)


class SteppedModel(FakeModel):
    """Runs one batch each time `step()` is called."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = threading.Semaphore(0)

    def __call__(self, items: list[str]) -> list[str]:
        self.steps.acquire(timeout=HANG_GUARD_S)
        return super().__call__(items)

    def step(self) -> None:
        self.steps.release()


def test_results_stream_in_order_each_as_soon_as_it_is_done():
    """in_order yields a request's first window while its later windows still wait for the model, and
    never out of order even when a later window is decoded first."""
    async def main():
        model = SteppedModel()
        admission = BatchAdmission(model, max_batch_size=1, batch_wait_s=0.0)
        # "b" is due before "a": decoded first, yet yielded second.
        stream = admission.in_order([(2.0, "a"), (1.0, "b"), (3.0, "c")])
        first = asyncio.ensure_future(stream.__anext__())
        model.step()  # b
        await asyncio.sleep(0.05)
        assert not first.done() and model.batches == [["b"]]
        model.step()  # a
        assert await first == "A"
        assert model.batches == [["b"], ["a"]]
        assert await stream.__anext__() == "B"
        model.step()  # c
        assert await stream.__anext__() == "C"
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()

    run(main())


def test_a_stream_closed_early_withdraws_its_waiting_items():
    async def main():
        model = SteppedModel()
        admission = BatchAdmission(model, max_batch_size=1, batch_wait_s=0.0)
        stream = admission.in_order([(1.0, "a"), (2.0, "b"), (3.0, "c")])
        model.step()
        assert await stream.__anext__() == "A"
        await stream.aclose()  # the client went away after the first delta
        assert admission.waiting == 0  # "c" withdrawn; "b" had already gone into the model after "a"
        model.step()
        model.step()
        assert await admission.run([(0.0, "next")]) == ["NEXT"]
        assert model.batches == [["a"], ["b"], ["next"]]

    run(main())


def _order_under_load(live_share: float) -> list[str]:
    """20 live and 20 file items queued at once, one per batch, each batch taking 1 s of a fake clock:
    the order the model saw them in."""
    now = [0.0]
    seen: list[str] = []

    def model(items: list[str]) -> list[str]:
        seen.extend(items)
        now[0] += 1.0
        return items

    async def main():
        admission = BatchAdmission(model, max_batch_size=1, batch_wait_s=0.0, live_share=live_share,
                                   clock=lambda: now[0])
        futures = [admission.submit(f"live{i}", due=0.0, live=True) for i in range(20)]
        futures += [admission.submit(f"file{i}", due=100.0) for i in range(20)]
        await asyncio.gather(*futures)
        return admission.live_time_share()

    share = run(main())
    assert 0 < share < 1
    return seen


def test_live_windows_take_at_most_their_share_while_file_windows_wait():
    """Live windows are due first, yet with live_share 0.5 the file windows get every other batch while
    both wait; with 1 (live always first) no file window runs before the last live one."""
    order = _order_under_load(0.5)
    assert order[0] == "live0"  # an idle model: live first
    files_early = sum(name.startswith("file") for name in order[:20])
    assert 9 <= files_early <= 11, order
    # each kind keeps its own due order
    assert [n for n in order if n.startswith("live")] == [f"live{i}" for i in range(20)]
    assert [n for n in order if n.startswith("file")] == [f"file{i}" for i in range(20)]
    assert _order_under_load(1.0)[:20] == [f"live{i}" for i in range(20)]


def test_live_share_is_validated_and_live_tunable():
    admission = BatchAdmission(lambda items: items, live_share=0.5)
    admission.configure(4, 0.01, 0.25)
    assert admission.live_share == 0.25
    with pytest.raises(ValueError):
        admission.configure(4, 0.01, 1.5)
