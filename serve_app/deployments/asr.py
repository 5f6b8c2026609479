"""WhisperASR: one deployment per served model; windows of all concurrent requests meet in one batch."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ray import serve
from ray.serve.metrics import Counter, Histogram

from serve_app.backends.whisper import WhisperBackend
from serve_app.config import BatchConfig, ModelConfig
from serve_app.errors import InvalidRequest
from serve_app.pipeline.types import Audio, DecodeOptions, Transcript, Window, WindowResult

logger = logging.getLogger("ray.serve")

BUSY_WAIT_CAP_S = 1.0  # the longest the next batch gathers while one is running


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
        self._idle_wait_s = defaults.batch_wait_timeout_s
        self._max_batch_size = defaults.max_batch_size
        self._last_batch_s = 0.0

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        cfg = BatchConfig.model_validate(user_config or {})
        self._decode_windows.set_max_batch_size(cfg.max_batch_size)
        self._decode_windows.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self._idle_wait_s = cfg.batch_wait_timeout_s
        self._max_batch_size = cfg.max_batch_size
        logger.info("%s: batches of up to %d, wait %.3fs", self.model_name, cfg.max_batch_size, cfg.batch_wait_timeout_s)

    async def transcribe(self, audio: Audio, options: DecodeOptions) -> Transcript:
        if not self.backend.multilingual:
            if options.task == "translate":
                raise InvalidRequest(f"Model {self.model_name!r} is English-only and cannot translate.", param="model")
            if options.language not in ("en", None):
                raise InvalidRequest(f"Model {self.model_name!r} is English-only.", param="language")
        started = time.perf_counter()
        windows = await asyncio.to_thread(self.backend.split, audio.samples, options)
        # Serve's batch queue is first come, first served: a long file that queued all its windows at once
        # would hold every short request that arrives after it until the whole file is done (measured:
        # a 5 s clip sent 2 s after a 5-minute one took 22.4 s instead of 1.8 s). So a request keeps at
        # most one batch worth of windows queued; a window from a request that arrives later is queued
        # before the long file's next ones and goes into the next batch. Alone, a long file still fills
        # every batch.
        in_flight = asyncio.Semaphore(self._max_batch_size)

        async def decode(window: Window) -> WindowResult:
            async with in_flight:
                return await self._decode_windows(window)

        results: list[WindowResult] = list(await asyncio.gather(*(decode(w) for w in windows)))
        # The request's language: what the caller fixed, else what most of its windows were detected as.
        if options.language is not None or not self.backend.multilingual:
            language = options.language if self.backend.multilingual else "en"
        elif results:
            langs = [r.language for r in results]
            language = max(set(langs), key=langs.count)
        else:
            language = "en"
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

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def _decode_windows(self, windows: list[Window]) -> list[WindowResult]:
        self._batch_size.observe(len(windows))
        # NOTE: Serve forms the next batch while this one runs, waiting `batch_wait_timeout_s` after its first
        # window, and that batch cannot start before this one ends anyway. With the idle wait (50 ms) the
        # windows of a burst that arrive over a few hundred ms split into batches of 2-3; so while the model
        # is busy, let the next batch gather for up to half this batch's expected length. When the model is
        # idle, a lone request waits only the configured wait.
        busy_wait = min(BUSY_WAIT_CAP_S, max(self._idle_wait_s, 0.5 * self._last_batch_s))
        self._decode_windows.set_batch_wait_timeout_s(busy_wait)
        started = time.perf_counter()
        try:
            # The model call blocks for seconds: keep it off the replica's event loop.
            return await asyncio.to_thread(self.backend.decode, windows)
        finally:
            self._last_batch_s = time.perf_counter() - started
            self._decode_windows.set_batch_wait_timeout_s(self._idle_wait_s)
