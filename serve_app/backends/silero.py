"""Silero VAD (the ONNX model faster-whisper ships) one 32 ms frame at a time, for a live session.

The file path (backends/whisper.py, PiecewiseVad) runs the same model over a whole file in batches; the
model reads its batch axis as time and carries `h`/`c` across calls, so frame by frame with the state
kept here gives the same probabilities (a test compares them).
"""

from __future__ import annotations

import numpy as np

from serve_app.backends import compat_faster_whisper
from serve_app.pipeline.live import FRAME

CONTEXT = 64  # samples of the previous frame the model sees in front of each frame


class SileroStream:
    """One session's VAD: `stream(frame)` -> speech probability of that FRAME of 16 kHz float32 audio."""

    def __init__(self, model=None) -> None:
        self.model = model if model is not None else compat_faster_whisper.library_vad_model()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        frame = np.asarray(frame, dtype=np.float32)
        assert frame.shape == (FRAME,)
        x = np.concatenate([self._context, frame])[None]
        out, self._h, self._c = self.model.session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = frame[-CONTEXT:].copy()
        return float(np.asarray(out).reshape(-1)[0])
