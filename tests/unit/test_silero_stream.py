"""The live VAD gives the file VAD's probabilities, frame by frame."""

import numpy as np

from serve_app.backends import compat_faster_whisper
from serve_app.backends.silero import SileroStream
from serve_app.backends.whisper import PiecewiseVad
from serve_app.pipeline.live import FRAME, SpeechSegmenter, TurnDetection
from tests.support import sample_samples


def test_frame_by_frame_matches_the_file_vad():
    samples = sample_samples()[: 16000 * 12]
    samples = samples[: len(samples) // FRAME * FRAME]
    model = compat_faster_whisper.library_vad_model()
    batch = np.asarray(PiecewiseVad(model)(samples.copy())).reshape(-1)
    stream = SileroStream(model)
    live = np.array([stream(samples[i : i + FRAME]) for i in range(0, len(samples), FRAME)])
    # The file VAD zeroes the last frame's tail (the library's quirk, kept on purpose): compare the rest.
    assert np.allclose(live[:-1], batch[:-1], atol=1e-4)
    assert (live > 0.5).sum() > 50 and (live < 0.1).sum() > 50  # speech and silence: the model really ran


def test_the_segmenter_finds_speech_in_a_recording():
    samples = np.concatenate([np.zeros(16000, dtype=np.float32), sample_samples()[: 16000 * 8],
                              np.zeros(16000, dtype=np.float32)])
    segmenter = SpeechSegmenter(TurnDetection(), SileroStream())
    events = segmenter.feed(samples) + segmenter.flush()
    closed = [e for e in events if type(e).__name__ == "SegmentClosed"]
    assert closed and closed[0].start_s >= 0.5  # not in the leading second of silence
    assert all(c.end_s - c.start_s <= TurnDetection().max_speech_duration_s + 0.04 for c in closed)
