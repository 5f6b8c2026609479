"""AudioDecoder: uploaded bytes or a URL in, 16 kHz mono float32 out."""

from __future__ import annotations

import logging
import threading

from ray import serve

from serve_app.config import FetchConfig, LimitsConfig
from serve_app.pipeline.audio import decode_audio
from serve_app.pipeline.budget import Budget
from serve_app.pipeline.cancel import WorkGauge, run_stoppable
from serve_app.pipeline.fetch import fetch_url
from serve_app.pipeline.types import SAMPLE_RATE, Audio, AudioSource

logger = logging.getLogger("ray.serve")


@serve.deployment
class AudioDecoder:
    def __init__(self, limits: LimitsConfig, fetch: FetchConfig) -> None:
        self.limits = limits
        self.fetch = fetch
        # One ceiling for every decode running in this replica, whatever the request.
        self.budget = Budget(
            int(limits.max_decoding_audio_s * SAMPLE_RATE),
            what=f"decoded audio ({limits.max_decoding_audio_s:g} s in all)",
        )
        self._gauge = WorkGauge("decodes", logger)

    async def decode(self, source: AudioSource) -> Audio:
        # Downloads and FFmpeg block: run them in a thread so the replica keeps serving; a cancelled
        # request stops its thread at the next chunk or frame.
        return await run_stoppable(self._decode, source, gauge=self._gauge)

    def _decode(self, source: AudioSource, *, stop: threading.Event) -> Audio:
        data = source.data
        if source.url is not None:
            data = fetch_url(
                source.url,
                max_bytes=self.limits.max_download_bytes,
                allowed_networks=self.fetch.allowed_private_networks,
                max_redirects=self.fetch.max_redirects,
                connect_timeout_s=self.fetch.connect_timeout_s,
                total_timeout_s=self.fetch.total_timeout_s,
                stop=stop,
            )
        return decode_audio(
            b"" if data is None else data,
            max_duration_s=self.limits.max_duration_s,
            time_limit_s=self.limits.decode_time_limit_s,
            budget=self.budget,
            stop=stop,
        )
