"""WhisperASR: one deployment per served model; windows of all concurrent requests meet in one batch."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, AsyncIterator

import numpy as np
from ray import serve
from ray.serve.metrics import Counter, Histogram

from serve_app.backends.whisper import WhisperBackend
from serve_app.config import BatchConfig, ModelConfig
from serve_app.pipeline.cancel import run_stoppable
from serve_app.pipeline.admission import BatchAdmission, due_at
from serve_app.pipeline.types import SAMPLE_RATE, Audio, DecodeOptions, Transcript, Window, WindowResult

logger = logging.getLogger("ray.serve")

# Live segments are due now: ahead of every file window that is not yet late. A partial decode (text that
# only previews a growing segment) gives way to finals and to file windows due within this.
PARTIAL_DELAY_S = 1.0
# A longer live segment (a manual commit) is cut at its pauses like a file: a window filled to 30 s with
# speech is often left unfinished by the model.
LIVE_WINDOW_S = 15


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
        self._pace = defaults.pace_s_per_audio_s
        # Every window of every request waits in this one queue; its loop forms the batches, due first.
        self._admission: BatchAdmission[Window, WindowResult] = BatchAdmission(
            self.backend.decode,
            max_batch_size=defaults.max_batch_size,
            batch_wait_s=defaults.batch_wait_timeout_s,
            live_share=defaults.live_share,
            on_batch=self._batch_size.observe,
        )

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        cfg = BatchConfig.model_validate(user_config or {})
        self._admission.configure(cfg.max_batch_size, cfg.batch_wait_timeout_s, cfg.live_share)
        self._pace = cfg.pace_s_per_audio_s
        logger.info("%s: batches of up to %d, wait %.3fs, pace %.2f, live share %.2f", self.model_name,
                    cfg.max_batch_size, cfg.batch_wait_timeout_s, cfg.pace_s_per_audio_s, cfg.live_share)

    async def transcribe(self, audio: Audio, options: DecodeOptions) -> Transcript:
        """The whole transcript in one answer."""
        items = [item async for item in self.transcribe_stream(audio, options)]
        return items[-1]

    async def transcribe_live(self, samples: np.ndarray, options: DecodeOptions, partial: bool) -> str:
        """A realtime session's speech segment -> its text, through the same batches as file windows."""
        self.backend.policy.check(options)
        # Only the text is sent: no timestamp rules in the decoder. A partial is a greedy preview.
        options = replace(options, timestamps=False, preview=partial)
        if len(samples) > LIVE_WINDOW_S * SAMPLE_RATE:
            windows = await run_stoppable(self.backend.split, samples, options)
        else:
            windows = [self.backend.live_window(samples, options)]
        due = time.monotonic() + (PARTIAL_DELAY_S if partial else 0.0)
        results = [r async for r in self._admission.in_order([(due, w) for w in windows], live=True)]
        if not partial:
            self._audio_seconds.inc(len(samples) / SAMPLE_RATE)
        return "".join(s.text for r in results for s in r.segments).strip()

    async def transcribe_stream(self, audio: Audio, options: DecodeOptions) -> AsyncIterator[WindowResult | Transcript]:
        """Each window's result in audio order, as soon as it and the windows before it are decoded, then the
        whole Transcript (through a streaming handle, for `stream=true`)."""
        self.backend.policy.check(options)
        started = time.perf_counter()
        windows = await run_stoppable(self.backend.split, audio.samples, options)
        arrival = time.monotonic()
        results: list[WindowResult] = []
        # Cancelled with the request (client gone, timeout): the windows not yet in a batch are withdrawn.
        async for result in self._admission.in_order(
            [(due_at(arrival, w.start + w.duration, self._pace), w) for w in windows]
        ):
            results.append(result)
            yield result
        language = self.backend.policy.request_language(options, [r.language for r in results])
        if audio.duration > 0:
            self._audio_seconds.inc(audio.duration)
            self._rtf.observe((time.perf_counter() - started) / audio.duration)
        yield Transcript(
            task=options.task,
            language=language,
            duration=audio.duration,
            segments=[s for r in results for s in r.segments],
            batch_sizes=[r.batch_size for r in results],
        )
