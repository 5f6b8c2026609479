"""The decoded-audio ceiling shared by every decode in a replica (pipeline/budget.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serve_app.config import LimitsConfig
from serve_app.errors import InvalidRequest, Overloaded, PayloadTooLarge, envelope
from serve_app.pipeline.audio import decode_audio
from serve_app.pipeline.budget import Budget
from serve_app.pipeline.types import SAMPLE_RATE
from tests.support import wav_bytes

MINUTE = wav_bytes((0.1 * np.sin(np.arange(SAMPLE_RATE * 60) / 30)).astype(np.float32))


class PeakBudget(Budget):
    """Records the most it ever held."""

    peak = 0

    def reserve(self, n: int) -> None:
        super().reserve(n)
        self.peak = max(self.peak, self.held)


def test_reserve_past_the_ceiling_is_a_503_with_retry_after():
    budget = Budget(100, what="decoded audio (test)")
    budget.reserve(60)
    with pytest.raises(Overloaded) as info:
        budget.reserve(41)
    assert info.value.status == 503 and info.value.headers["Retry-After"] == "5"
    assert envelope(info.value)["error"]["code"] == "overloaded"
    assert budget.held == 60  # a refused reservation takes nothing
    budget.release(60)
    budget.reserve(100)
    assert budget.held == 100


def test_a_decode_is_refused_while_others_hold_the_budget_and_runs_once_they_are_done():
    budget = Budget(90 * SAMPLE_RATE, what="decoded audio (test)")
    budget.reserve(60 * SAMPLE_RATE)  # another request's decode in progress
    with pytest.raises(Overloaded):
        decode_audio(MINUTE, max_duration_s=120, budget=budget)
    assert budget.held == 60 * SAMPLE_RATE  # the refused decode gave back what it had taken
    budget.release(60 * SAMPLE_RATE)
    assert decode_audio(MINUTE, max_duration_s=120, budget=budget).duration == pytest.approx(60)
    assert budget.held == 0


@pytest.mark.parametrize("bad", [b"RIFF\0\0\0\0WAVEjunk", MINUTE[: len(MINUTE) // 2]])
def test_failed_decodes_release_what_they_held(bad):
    budget = Budget(120 * SAMPLE_RATE, what="decoded audio (test)")
    with pytest.raises(InvalidRequest):
        decode_audio(bad, max_duration_s=120, budget=budget)
    with pytest.raises(PayloadTooLarge):
        decode_audio(MINUTE, max_duration_s=30, budget=budget)
    assert budget.held == 0


def test_concurrent_decodes_never_hold_more_than_the_ceiling():
    budget = PeakBudget(150 * SAMPLE_RATE, what="decoded audio (test)")

    def one(_):
        try:
            return decode_audio(MINUTE, max_duration_s=120, budget=budget).duration
        except Overloaded:
            return "503"

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert all(r == "503" or r == pytest.approx(60) for r in results)
    assert results.count("503") < len(results)
    assert 0 < budget.peak <= budget.limit
    assert budget.held == 0


def test_the_config_refuses_a_ceiling_below_one_file():
    with pytest.raises(ValueError, match="max_decoding_audio_s"):
        LimitsConfig(max_duration_s=3600, max_decoding_audio_s=1800)
    assert LimitsConfig().max_decoding_audio_s >= LimitsConfig().max_duration_s
