"""What one Whisper model does with a request's task and language: the one owner of those rules.

English-only models (`*.en`) neither translate nor take another language: such requests are refused
(400) before any work, and each window decodes as English transcription. A multilingual model decodes each
window in the request's language, or detects it per window; the request's language is then the one most
of its windows were detected as.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from serve_app.errors import InvalidRequest
from serve_app.pipeline.types import DecodeOptions


@dataclass(frozen=True)
class ModelPolicy:
    name: str
    multilingual: bool

    def check(self, options: DecodeOptions) -> None:
        """InvalidRequest for what this model cannot do."""
        if self.multilingual:
            return
        if options.task == "translate":
            raise InvalidRequest(f"Model {self.name!r} is English-only and cannot translate.", param="model")
        if options.language not in ("en", None):
            raise InvalidRequest(f"Model {self.name!r} is English-only.", param="language")

    def window_language(self, options: DecodeOptions) -> Optional[str]:
        """The language a window decodes in; None: detect it."""
        return options.language if self.multilingual else "en"

    def window_task(self, options: DecodeOptions) -> str:
        return options.task if self.multilingual else "transcribe"

    def request_language(self, options: DecodeOptions, detected: Sequence[str]) -> str:
        """The request's language: the one asked for, else the one most of its windows were detected as
        (ties: the first window's), else English."""
        fixed = self.window_language(options)
        if fixed is not None:
            return fixed
        if not detected:
            return "en"
        return max(dict.fromkeys(detected), key=list(detected).count)
