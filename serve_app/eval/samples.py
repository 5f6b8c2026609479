"""Where the real recordings that pyannote.audio's wheel ships lie (sample.wav, its RTTM and STM).

Found without importing pyannote.audio (which imports torch), so that light callers stay light."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def sample_dir() -> Path:
    spec = importlib.util.find_spec("pyannote.audio")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyannote.audio is not installed: its wheel ships the sample recordings")
    return Path(spec.origin).parent / "sample"
