"""Merger: joins the ASR transcript with the speaker turns, when asked for, and renders the response body."""

from __future__ import annotations

from typing import Optional

from ray import serve

from serve_app.protocol import render
from serve_app.pipeline.merge import DEFAULT_TURN_GAP_S, assign_speakers
from serve_app.pipeline.types import Audio, Diarization, Rendered, Transcript


@serve.deployment
class Merger:
    def __init__(self, turn_gap_s: float = DEFAULT_TURN_GAP_S) -> None:
        self.turn_gap_s = turn_gap_s  # DiarizationConfig.turn_gap_s

    async def render(
        self, transcript: Transcript, diarization: Optional[Diarization], response_format: str, words: bool
    ) -> Rendered:
        """`diarization`: the Diarizer's answer when the request asked for speakers."""
        if diarization is not None:
            transcript = self.merge_now(transcript, diarization)
        rendered = render(transcript, response_format, words=words)
        # Exposed so that clients and tests can see cross-request batching at work.
        rendered.headers["X-ASR-Batch-Sizes"] = ",".join(str(b) for b in transcript.batch_sizes)
        return rendered

    async def duration(self, audio: Audio) -> float:
        """The decoded length, for the Ingress's deadline. Asked here, not by awaiting the audio in the
        Ingress: this light replica reads the samples from Ray's object store (shared memory on its node)
        and only a float goes back."""
        return audio.duration

    async def merge(self, transcript: Transcript, diarization: Diarization) -> Transcript:
        """The transcript with its speakers, for a caller that renders it itself (a stream's segment events)."""
        return self.merge_now(transcript, diarization)

    def merge_now(self, transcript: Transcript, diarization: Diarization) -> Transcript:
        # Words go to the exclusive turns' speaker; speaker turns widen to the overlapping ones.
        return assign_speakers(transcript, diarization.exclusive_turns, self.turn_gap_s, speech=diarization.turns)
