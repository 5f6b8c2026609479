"""Live audio (the realtime sessions): where speech starts and stops in a stream, and which part of a growing
segment's transcript has become stable. Pure code: the VAD model is a callable, time is audio time.

The segmenter follows Silero's own streaming rules with Together's five turn-detection parameters:
speech starts when a 32 ms frame's probability reaches `threshold` and has lasted `min_speech_duration_ms`
(a shorter blip is dropped, so a client never sees a start without a stop); it stops after
`min_silence_duration_ms` below `threshold - 0.15` (98 ms once the turn is past half of
`max_speech_duration_s`); `speech_pad_ms` of audio is kept on both sides (as much of the pause as there is
after a 98 ms stop); a segment that reaches `max_speech_duration_s` is closed in the middle of its last pause
of at least 98 ms (at the limit itself when it has none) and the speech goes on in a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
import re
from fractions import Fraction
from typing import Callable, Literal, Optional, Union

import av
import numpy as np

from serve_app.pipeline.types import SAMPLE_RATE

FRAME = 512  # samples per VAD step: Silero's window at 16 kHz (32 ms)
PAUSE_MS = 98  # Silero's shortest silence to split a too-long segment in (min_silence_at_max_speech)


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
        # One segment is one Whisper window: a longer turn is closed there and goes on in the next segment.
        if self.max_speech_duration_s > MAX_SEGMENT_S:
            raise ValueError(f"max_speech_duration_s must be at most {MAX_SEGMENT_S:g}")


MAX_SEGMENT_S = 30.0


# -- client audio --

Encoding = Literal["pcm16", "pcmu", "pcma"]


@dataclass(frozen=True)
class AudioFormat:
    """What a session's client sends: little-endian 16-bit PCM at `rate`, or G.711 (8 kHz)."""

    encoding: Encoding = "pcm16"
    rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.encoding not in ("pcm16", "pcmu", "pcma"):
            raise ValueError(f"unknown encoding {self.encoding!r}")
        if not 8000 <= self.rate <= 48000:
            raise ValueError("the sample rate must be between 8000 and 48000")


def _ulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.uint8)
    exponent = (u >> 4) & 0x07
    magnitude = (((u & 0x0F).astype(np.int32) << 3) + 0x84) << exponent
    return np.where(u & 0x80, 0x84 - magnitude, magnitude - 0x84).astype(np.float32) / 32768


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    t = ((a & 0x0F) << 4) + np.where(exponent == 0, 8, 0x108)
    t = np.where(exponent > 1, t << np.maximum(exponent - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.float32) / 32768


_G711 = {"pcmu": _ulaw_table(), "pcma": _alaw_table()}


class LiveAudio:
    """A session's audio bytes -> 16 kHz float32, chunk by chunk: an odd byte of a 16-bit sample and the
    resampler's state carry over to the next chunk, so any chunking gives the same samples."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._odd = b""
        # FFmpeg's resampler (libswresample, as the file decoder uses) keeps its filter state between
        # chunks; it holds back a few ms of audio, which the next chunk pushes out.
        self._resampler = (None if fmt.rate == SAMPLE_RATE
                           else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE))
        self._pts = 0

    def decode(self, data: bytes) -> np.ndarray:
        if self.format.encoding == "pcm16":
            data = self._odd + data
            whole = len(data) // 2 * 2
            self._odd = data[whole:]
            x = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768
        else:
            x = _G711[self.format.encoding][np.frombuffer(data, dtype=np.uint8)]
        if self._resampler is None or not len(x):
            return x
        frame = av.AudioFrame.from_ndarray(x[None], format="flt", layout="mono")
        frame.sample_rate = self.format.rate
        frame.time_base = Fraction(1, self.format.rate)
        frame.pts, self._pts = self._pts, self._pts + len(x)
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, dtype=np.float32)


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
        self._min_pause = _frames(PAUSE_MS)
        self._short_silence = min(self._min_pause, self._min_silence)
        self._pending = np.zeros(0, dtype=np.float32)  # the part of a frame not yet complete
        self._frame_index = 0  # frames seen
        self._preroll: list[np.ndarray] = []  # the last `pad` frames before any speech
        self._in_segment = False  # a candidate or open segment is collecting frames
        self._segment: list[np.ndarray] = []  # its frames
        self._segment_start = 0  # frame index of self._segment[0]
        self._voiced = 0  # speech frames in a candidate segment
        self._started = False  # SpeechStarted sent for the open segment
        self._silence = 0  # trailing frames of silence in the open segment
        self._cut = 0  # where a split at max_speech_duration_s goes: the middle of the segment's last pause
        self._carried = 0  # frames of the turn in the segments split off before this one

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
                if self._started and self._silence >= self._min_pause:
                    self._cut = len(self._segment) - self._silence // 2
        events: list[Event] = []
        if not self._started:
            if self._silence >= self._min_silence:  # a blip shorter than min_speech: never speech
                self._preroll = self._segment[-self._pad :] if self._pad else []
                self._reset_segment()
                return []
            if self._voiced >= self._min_speech:
                self._started = True
                events.append(SpeechStarted(self._segment_start * FRAME / SAMPLE_RATE))
        # A turn past half of max_speech_duration_s (split parts included) ends at a pause of PAUSE_MS: the
        # limit would split it in that pause anyway (or a later one), seconds after it was spoken, and hold
        # its transcript back that long. Its end padding is then the pause itself (Whisper pads every window
        # with zeros anyway). A quarter of the limit at least, so that a split leaves no scraps.
        voiced = len(self._segment) - self._silence
        long = voiced >= self._max_frames // 4 and self._carried + voiced >= self._max_frames // 2
        if self._started and self._silence >= (self._short_silence if long else self._min_silence):
            keep = len(self._segment) - self._silence + self._pad
            events.extend(self._close(min(keep, len(self._segment)), split=False))
        elif self._started and len(self._segment) >= self._max_frames:
            # As Silero's own rule: split in the last pause rather than inside a word when there is one.
            cut = self._cut if self._cut > self._min_speech else len(self._segment)
            events.extend(self._close(cut, split=True))
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
        if split:  # the speech goes on: a new segment from here (what followed the cut), already started
            self._segment = rest
            self._segment_start = self._segment_start + frames
            self._voiced, self._silence, self._cut = self._min_speech, 0, 0
            self._carried += frames
        else:
            self._preroll = rest[-self._pad :] if self._pad else []
            self._reset_segment()
        return events

    def _reset_segment(self) -> None:
        self._cut = self._carried = 0
        self._in_segment = False
        self._segment = []
        self._voiced = self._silence = 0
        self._started = False


def words_of(text: str) -> list[str]:
    """A transcript's words with the spaces in front of them, so that "".join(words) is the text."""
    return re.findall(r"\s*\S+", text.strip())


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

    def finish(self, words: list[str]) -> str:
        """The final decode's words after those already sent. A delta cannot be taken back, so where the final
        decode changed a sent word the `completed` transcript is the one to keep; the deltas still go on from
        where the sent words end in the final text (aligned word by word), so that a client joining deltas
        gets the turn's later words instead of losing all of them to one changed word early on."""
        sent = [_norm(w) for w in self._last[: self.emitted]]
        final = [_norm(w) for w in words]
        if final[: len(sent)] == sent:
            at = len(sent)
        else:
            blocks = [b for b in SequenceMatcher(None, sent, final, autojunk=False).get_matching_blocks() if b.size]
            if blocks:  # words sent after the last agreement stand for as many words of the final text
                last = blocks[-1]
                at = last.b + last.size + (len(sent) - last.a - last.size)
            else:
                at = len(sent)
        rest = "".join(words[at:])
        self.emitted = max(self.emitted, len(words))
        return rest
