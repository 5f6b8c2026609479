"""The ASR's VAD model wrapper (serve_app.backends.whisper.PiecewiseVad) against faster-whisper's own."""

import tracemalloc

import faster_whisper.vad
import numpy as np
import pytest
from faster_whisper.vad import VadOptions, get_speech_timestamps

from serve_app.backends.compat_faster_whisper import library_vad_model as _library_vad_model
from serve_app.backends.whisper import PiecewiseVad
from tests.support import sample_samples


def noisy_speech(minutes: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    samples = np.tile(sample_samples(), int(minutes * 2) + 1)[: int(minutes * 60 * 16000) + 1234]
    return (samples + rng.normal(0, 0.01, samples.shape)).astype(np.float32)


def padded(audio: np.ndarray) -> np.ndarray:
    return np.pad(audio, (0, 512 - audio.shape[0] % 512))  # as get_speech_timestamps pads


def test_same_probabilities_and_speech_as_the_library(monkeypatch):
    audio = noisy_speech(11)  # 20628 pieces of 512: three of the model's batches, h/c carried across
    library = _library_vad_model()
    assert np.array_equal(PiecewiseVad(library)(padded(audio)), library(padded(audio)))

    options = VadOptions(max_speech_duration_s=30)
    ours = get_speech_timestamps(audio, options)  # through the patched get_vad_model
    monkeypatch.setattr(faster_whisper.vad, "get_vad_model", lambda: library)
    assert ours and ours == get_speech_timestamps(audio, options)


@pytest.mark.parametrize("model", ["piecewise", "library"])
def test_memory_beyond_the_audio(model):
    audio = padded(noisy_speech(30))  # 115 MB
    vad = PiecewiseVad(_library_vad_model()) if model == "piecewise" else _library_vad_model()
    tracemalloc.start()
    try:
        vad(audio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The library builds the whole input again (1.125 x the audio); one batch of ours is 23 MB.
    if model == "piecewise":
        assert peak < audio.nbytes / 4, peak
    else:
        assert peak > audio.nbytes, peak
