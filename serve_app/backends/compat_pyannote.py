"""Every use of pyannote.audio's private API, in one place, for the pinned version only.

- SpeakerDiarization.__init__ calls the module's `get_plda` even when its clustering needs no PLDA, and
  `get_plda(None)` raises: `plda_optional()` lets `plda=None` through while a pipeline is built.
- The pipeline's embedding model is reached through `_embedding.model_`.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

from pyannote.audio.pipelines import speaker_diarization as _sd_module

from serve_app.backends.compat import require_version

PINNED = "4.0.7"
_PATCH_LOCK = threading.RLock()  # the patch is module-wide: one pipeline built at a time (nesting is fine)


def check_version() -> None:
    require_version("pyannote.audio", PINNED)


@contextlib.contextmanager
def plda_optional() -> Iterator[None]:
    original = _sd_module.get_plda

    def get_plda(plda, **kwargs):
        return None if plda is None else original(plda, **kwargs)

    with _PATCH_LOCK:
        _sd_module.get_plda = get_plda
        try:
            yield
        finally:
            _sd_module.get_plda = original


def embedding_model(pipeline) -> Optional[object]:
    """The model behind a SpeakerDiarization pipeline's embedding, or None."""
    return getattr(getattr(pipeline, "_embedding", None), "model_", None)
