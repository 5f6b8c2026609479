"""Every use of faster-whisper's private API, in one place, for the pinned version only.

- `faster_whisper.vad.get_vad_model` is replaced process-wide (get_speech_timestamps asks it for the
  model and takes no model argument), so that our PiecewiseVad feeds Silero one batch at a time.
- `WhisperModel.add_word_timestamps` is called with its positional arguments, here named.
"""

from __future__ import annotations

import functools
from typing import Callable

import faster_whisper.vad

from serve_app.backends.compat import require_version

PINNED = "1.2.1"


def check_version() -> None:
    require_version("faster-whisper", PINNED)


# faster-whisper's own model factory, kept for the wrapper and the tests that compare against it.
library_vad_model = faster_whisper.vad.get_vad_model


def install_vad_model(wrap: Callable) -> None:
    """Make get_speech_timestamps use `wrap(library model)`: one per process, built on first use."""
    faster_whisper.vad.get_vad_model = functools.lru_cache(maxsize=None)(lambda: wrap(library_vad_model()))


def add_word_timestamps(model, segments, tokenizer, encoder_output, num_frames, prepend_punctuations: str,
                        append_punctuations: str, last_speech_timestamp: float) -> None:
    """WhisperModel.add_word_timestamps (1.2.1): fills each segment dict's "words" in place."""
    model.add_word_timestamps(segments, tokenizer, encoder_output, num_frames, prepend_punctuations,
                              append_punctuations, last_speech_timestamp)
