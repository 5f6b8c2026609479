"""Live audio (the realtime sessions): where speech starts and stops in a stream, and which part of a growing
segment's transcript has become stable. Pure code: the VAD model is a callable, time is audio time.

The segmenter follows Silero's own streaming rules with Together's five turn-detection parameters:
speech starts when a 32 ms frame's probability reaches `threshold` and has lasted `min_speech_duration_ms`
(a shorter blip is dropped, so a client never sees a start without a stop); it stops after
`min_silence_duration_ms` below `threshold - 0.15`; `speech_pad_ms` of audio is kept on both sides; a
segment that reaches `max_speech_duration_s` is closed there and the speech goes on in a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from serve_app.pipeline.types import SAMPLE_RATE

FRAME = 512  # samples per VAD step: Silero's window at 16 kHz (32 ms)


@dataclass(frozen=True)
class TurnDetection:
    """Server VAD parameters (Together's names and defaults)."""

    threshold: float = 0.3
    min_silence_duration_ms: int = 500
    min_speech_duration_ms: int = 250
    max_speech_duration_s: float = 5.0
    speech_pad_ms: int = 250

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError("threshold must be between 0 and 1")
        if self.min_silence_duration_ms < 0 or self.min_speech_duration_ms < 0 or self.speech_pad_ms < 0:
            raise ValueError("durations must not be negative")
        if self.max_speech_duration_s * 1000 <= self.min_speech_duration_ms:
            raise ValueError("max_speech_duration_s must be longer than min_speech_duration_ms")


@dataclass(frozen=True)
class SpeechStarted:
    at_s: float  # audio time since the session's first sample, padding included


@dataclass(frozen=True)
class SpeechStopped:
    at_s: float


@dataclass(frozen=True)
class SegmentClosed:
    start_s: float
    end_s: float
    samples: np.ndarray
    split: bool = False  # closed at max_speech_duration_s while the speech goes on


Event = Union[SpeechStarted, SpeechStopped, SegmentClosed]


def _frames(ms: float) -> int:
    return int(round(ms * SAMPLE_RATE / 1000 / FRAME))


class SpeechSegmenter:
    """Feed 16 kHz float32 samples in chunks of any size; get speech events in audio order."""

    def __init__(self, params: TurnDetection, speech_prob: Callable[[np.ndarray], float]) -> None:
        self.params = params
        self._prob = speech_prob  # one FRAME -> probability; stateful across calls (one per session)
        self._neg = max(params.threshold - 0.15, 0.01)
        self._pad = _frames(params.speech_pad_ms)
        self._min_speech = max(1, _frames(params.min_speech_duration_ms))
        self._min_silence = max(1, _frames(params.min_silence_duration_ms))
        self._max_frames = max(self._min_speech + 1, _frames(params.max_speech_duration_s * 1000))
        self._pending = np.zeros(0, dtype=np.float32)  # the part of a frame not yet complete
        self._frame_index = 0  # frames seen
        self._preroll: list[np.ndarray] = []  # the last `pad` frames before any speech
        self._in_segment = False  # a candidate or open segment is collecting frames
        self._segment: list[np.ndarray] = []  # its frames
        self._segment_start = 0  # frame index of self._segment[0]
        self._voiced = 0  # speech frames in a candidate segment
        self._started = False  # SpeechStarted sent for the open segment
        self._silence = 0  # trailing frames of silence in the open segment

    # -- feeding --

    def feed(self, samples: np.ndarray) -> list[Event]:
        data = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        whole = len(data) // FRAME * FRAME
        self._pending = data[whole:].copy()
        events: list[Event] = []
        for i in range(0, whole, FRAME):
            events.extend(self._step(data[i : i + FRAME]))
        return events

    def flush(self) -> list[Event]:
        """Close the open segment now (the stream ended or the client committed)."""
        if not self._started:
            self._reset_segment()
            return []
        return self._close(len(self._segment), split=False)

    def current(self) -> Optional[np.ndarray]:
        """The open segment's audio so far (for partial transcripts), or None between segments."""
        return np.concatenate(self._segment) if self._started and self._segment else None

    @property
    def now_s(self) -> float:
        return self._frame_index * FRAME / SAMPLE_RATE

    # -- one frame --

    def _step(self, frame: np.ndarray) -> list[Event]:
        prob = self._prob(frame)
        index = self._frame_index
        self._frame_index += 1
        speech = prob >= self.params.threshold
        if not self._in_segment:
            if not speech:
                self._preroll = (self._preroll + [frame])[-self._pad :] if self._pad else []
                return []
            self._in_segment = True
            self._segment = self._preroll + [frame]
            self._segment_start = index - len(self._preroll)
            self._preroll = []
            self._voiced, self._silence = 1, 0
        else:
            self._segment.append(frame)
            if speech:
                self._voiced += 1
                self._silence = 0
            elif prob < self._neg or self._silence:
                self._silence += 1
        events: list[Event] = []
        if not self._started:
            if self._silence >= self._min_silence:  # a blip shorter than min_speech: never speech
                self._preroll = self._segment[-self._pad :] if self._pad else []
                self._reset_segment()
                return []
            if self._voiced >= self._min_speech:
                self._started = True
                events.append(SpeechStarted(self._segment_start * FRAME / SAMPLE_RATE))
        if self._started and self._silence >= self._min_silence:
            keep = len(self._segment) - self._silence + self._pad
            events.extend(self._close(min(keep, len(self._segment)), split=False))
        elif self._started and len(self._segment) >= self._max_frames:
            events.extend(self._close(len(self._segment), split=True))
        return events

    def _close(self, frames: int, split: bool) -> list[Event]:
        start_s = self._segment_start * FRAME / SAMPLE_RATE
        end_s = (self._segment_start + frames) * FRAME / SAMPLE_RATE
        rest = self._segment[frames:]
        events: list[Event] = []
        if not split:
            events.append(SpeechStopped(end_s))
        if frames:  # (nothing left to close when a split fell on the last frame before a flush)
            events.append(SegmentClosed(start_s, end_s, np.concatenate(self._segment[:frames]), split=split))
        if split:  # the speech goes on: a new segment from here, already started
            self._segment = []
            self._segment_start = self._segment_start + frames
            self._voiced, self._silence = self._min_speech, 0
        else:
            self._preroll = rest[-self._pad :] if self._pad else []
            self._reset_segment()
        return events

    def _reset_segment(self) -> None:
        self._in_segment = False
        self._segment = []
        self._voiced = self._silence = 0
        self._started = False


def _norm(word: str) -> str:
    return word.strip().strip(".,!?;:\"'").lower()


class StablePrefix:
    """Partial transcripts of a growing segment: a word is stable once two decodes in a row agree on it and
    on every word before it (LocalAgreement-2). `update` returns the newly stable text, as a delta."""

    def __init__(self) -> None:
        self._last: list[str] = []
        self.emitted = 0  # words already sent

    def update(self, words: list[str]) -> str:
        common = 0
        for a, b in zip(self._last, words):
            if _norm(a) != _norm(b):
                break
            common += 1
        self._last = list(words)
        if common <= self.emitted:
            return ""
        delta = "".join(words[self.emitted : common])
        self.emitted = common
        return delta
