"""WhisperASR: one deployment per served model; windows of all concurrent requests meet in one batch."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from ray import serve
from ray.serve.metrics import Counter, Histogram

from serve_app.backends.whisper import WhisperBackend
from serve_app.config import BatchConfig, ModelConfig
from serve_app.pipeline.cancel import run_stoppable
from serve_app.pipeline.scheduling import DueQueue, due_at
from serve_app.pipeline.types import Audio, DecodeOptions, Transcript, Window, WindowResult

logger = logging.getLogger("ray.serve")


@serve.deployment
class WhisperASR:
    def __init__(self, model: ModelConfig) -> None:
        self.model_name = model.name
        self.backend = WhisperBackend(model)
        self.backend.warmup()  # a replica that cannot run the model fails to start
        self._batch_size = Histogram(
            "asr_batch_size",
            description="Windows decoded together in one batched model call.",
            boundaries=[1, 2, 4, 8, 16, 32, 64],
            tag_keys=("model",),
        )
        self._batch_size.set_default_tags({"model": model.name})
        self._audio_seconds = Counter(
            "asr_audio_seconds", description="Seconds of audio transcribed.", tag_keys=("model",)
        )
        self._audio_seconds.set_default_tags({"model": model.name})
        self._rtf = Histogram(
            "asr_real_time_factor",
            description="Per request: seconds spent in this replica per second of audio (queueing included).",
            boundaries=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
            tag_keys=("model",),
        )
        self._rtf.set_default_tags({"model": model.name})
        defaults = BatchConfig()  # until reconfigure() brings the deployment's user_config
        self._max_batch_size = defaults.max_batch_size
        self._pace = defaults.pace_s_per_audio_s
        self._waiting: DueQueue[tuple[Window, asyncio.Future]] = DueQueue()
        self._handed: set[int] = set()  # windows in Serve's batch queue whose batch has not started
        self._running = False  # a batch is in the model

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        cfg = BatchConfig.model_validate(user_config or {})
        self._decode_windows.set_max_batch_size(cfg.max_batch_size)
        self._decode_windows.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self._max_batch_size = cfg.max_batch_size
        self._pace = cfg.pace_s_per_audio_s
        logger.info("%s: batches of up to %d, wait %.3fs, pace %.2f", self.model_name, cfg.max_batch_size,
                    cfg.batch_wait_timeout_s, cfg.pace_s_per_audio_s)

    async def transcribe(self, audio: Audio, options: DecodeOptions) -> Transcript:
        self.backend.policy.check(options)
        started = time.perf_counter()
        windows = await run_stoppable(self.backend.split, audio.samples, options)
        # Windows wait here, not in Serve's batch queue: that queue is first come, first served, so a long
        # file's windows held every short request sent after it (benchmarks/starvation.py). Each batch takes
        # the windows due first (pipeline/scheduling.py).
        arrival = time.monotonic()
        loop = asyncio.get_running_loop()
        futures = []
        for window in windows:
            future = loop.create_future()
            self._waiting.push(due_at(arrival, window.start + window.duration, self._pace), (window, future))
            futures.append(future)
        self._admit()
        # Cancelled with the request (client gone, timeout): gather cancels the futures, and with them the
        # windows already handed to the batch queue; the ones still waiting here are skipped by _admit.
        results: list[WindowResult] = list(await asyncio.gather(*futures))
        language = self.backend.policy.request_language(options, [r.language for r in results])
        if audio.duration > 0:
            self._audio_seconds.inc(audio.duration)
            self._rtf.observe((time.perf_counter() - started) / audio.duration)
        return Transcript(
            task=options.task,
            language=language,
            duration=audio.duration,
            segments=[s for r in results for s in r.segments],
            batch_sizes=[r.batch_size for r in results],
        )

    def _admit(self) -> None:
        """Hand the windows due first to Serve's batch queue, one batch worth, and only while the model is
        idle: whatever arrives while a batch runs is still here to be chosen when it ends."""
        while self._waiting and not self._running and len(self._handed) < self._max_batch_size:
            window, future = self._waiting.pop()
            if future.done():  # its request went away
                continue
            key = id(window)
            self._handed.add(key)
            task = asyncio.ensure_future(self._decode_windows(window))
            task.add_done_callback(functools.partial(self._settle, key, future))
            future.add_done_callback(lambda f, task=task: task.cancel() if f.cancelled() else None)

    def _settle(self, key: int, future: asyncio.Future, task: asyncio.Task) -> None:
        # Serve drops a cancelled window from its batch without telling the batch function: forget it here
        # too, or it would hold a place in the next batch forever.
        if key in self._handed:
            self._handed.discard(key)
            self._admit()
        if future.done():
            return
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def _decode_windows(self, windows: list[Window]) -> list[WindowResult]:
        self._running = True
        for window in windows:
            self._handed.discard(id(window))
        self._batch_size.observe(len(windows))
        try:
            # The model call blocks for seconds: keep it off the replica's event loop.
            return await asyncio.to_thread(self.backend.decode, windows)
        finally:
            self._running = False
            self._admit()
