"""Merger: joins the ASR transcript with the speaker turns, when asked for, and renders the response body."""

from __future__ import annotations

from typing import Optional

from ray import serve

from serve_app.protocol import render
from serve_app.pipeline.merge import assign_speakers
from serve_app.pipeline.types import Rendered, Transcript, Turn


@serve.deployment
class Merger:
    async def render(
        self, transcript: Transcript, turns: Optional[list[Turn]], response_format: str, words: bool
    ) -> Rendered:
        """`turns`: the Diarizer's exclusive speaker turns when the request asked for speakers."""
        if turns is not None:
            transcript = assign_speakers(transcript, turns)
        rendered = render(transcript, response_format, words=words)
        # Exposed so that clients and tests can see cross-request batching at work.
        rendered.headers["X-ASR-Batch-Sizes"] = ",".join(str(b) for b in transcript.batch_sizes)
        return rendered

    async def merge(self, transcript: Transcript, turns: list[Turn]) -> Transcript:
        """The transcript with its speakers, for a caller that renders it itself (a stream's segment events)."""
        return assign_speakers(transcript, turns)
