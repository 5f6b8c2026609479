"""Diarizer: pyannote.audio speaker diarization on the decoded audio, beside ASR (not after it)."""

from __future__ import annotations

import logging
import time
from typing import Optional

from ray import serve
from ray.serve.metrics import Counter, Histogram

from serve_app.backends.diarization import PyannoteDiarizer, load_pipeline
from serve_app.config import DiarizationConfig
from serve_app.pipeline.cancel import WorkGauge, run_stoppable
from serve_app.pipeline.types import Audio, Diarization

logger = logging.getLogger("ray.serve")


@serve.deployment
class Diarizer:
    def __init__(self, config: DiarizationConfig) -> None:
        # NOTE: pyannote's Pipeline.__call__ sets torch's TF32 flags process-wide, one more reason
        # for this model to live in a deployment (a process) of its own.
        self.backend = PyannoteDiarizer(load_pipeline(config), config.known_speaker_threshold)
        self.backend.warmup()  # a replica that cannot run the pipeline fails to start
        self._seconds = Histogram(
            "diarization_seconds",
            description="Wall time of one diarization pipeline run.",
            boundaries=[0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900],
        )
        self._audio_seconds = Counter("diarization_audio_seconds", description="Seconds of audio diarized.")
        self._gauge = WorkGauge("diarizations", logger, limit=config.concurrent_runs)

    async def diarize(
        self, audio: Audio, min_speakers: Optional[int] = None, max_speakers: Optional[int] = None,
        references: Optional[list[tuple[str, Audio]]] = None,
    ) -> Diarization:
        """Both the exclusive turns (one speaker at a time: the words' speakers) and the overlapping ones
        (what speaker turns widen to). `references`: known speakers' decoded clips."""
        # Seconds of model work: off the event loop, at most `concurrent_runs` at once, cancelled ones
        # included until they stop (run_stoppable).
        started = time.perf_counter()
        clips = [(name, clip.samples) for name, clip in references or ()]
        result = await run_stoppable(self.backend, audio.samples, min_speakers, max_speakers, gauge=self._gauge,
                                     references=clips)
        if result.known:
            logger.info("known speakers: %s", {label: f"{name} ({d:.3f})" for label, (name, d) in result.known.items()})
        self._seconds.observe(time.perf_counter() - started)
        self._audio_seconds.inc(audio.duration)
        return result
