"""Merger: joins the ASR transcript with speaker turns (next issue) and renders the response body."""

from __future__ import annotations

from ray import serve

from serve_app.pipeline.formatting import render
from serve_app.pipeline.types import Rendered, Transcript


@serve.deployment
class Merger:
    async def render(self, transcript: Transcript, response_format: str, words: bool) -> Rendered:
        rendered = render(transcript, response_format, words=words)
        # Exposed so that clients and tests can see cross-request batching at work.
        rendered.headers["X-ASR-Batch-Sizes"] = ",".join(str(b) for b in transcript.batch_sizes)
        return rendered
