"""Plain data that crosses deployment boundaries: numpy arrays and dataclasses only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union

import numpy as np

SAMPLE_RATE = 16_000

Task = Literal["transcribe", "translate"]


@dataclass
class Audio:
    """Decoded audio, ready for the models."""

    samples: np.ndarray  # (T,) float32 in [-1, 1], 16 kHz mono

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass
class AudioSource:
    """What the client sent as `file`: uploaded bytes or a URL for the service to fetch."""

    # An upload travels as a read-only uint8 array over the bytes: Ray hands a large array to the decoder as
    # a view of its shared-memory object store, where `bytes` would be copied into the decoder's heap (one
    # more copy of the file per request in flight).
    data: Optional[Union[bytes, np.ndarray]] = None
    url: Optional[str] = None
    filename: Optional[str] = None


@dataclass(frozen=True)
class DecodeOptions:
    """Per-request decoding choices; every window of the request carries them into the batch."""

    task: Task = "transcribe"
    language: Optional[str] = "en"  # None = detect
    prompt: Optional[str] = None
    # Names and jargon to bias the decoder towards (faster-whisper's `hotwords`): they go before the prompt
    # in the text Whisper reads as what came before, and are kept whole when the prompt is cut.
    hotwords: Optional[str] = None
    # The hotwords' and prompt's tokens as Whisper uses them (at most 223 in all), filled in once per request
    # by the ASR backend's split(), so that no window tokenizes them again.
    prompt_tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    word_timestamps: bool = False
    # Whisper's segment timestamps. Off when the response shows no times (json, text): the decoder then runs
    # without CTranslate2's timestamp rules, which check every hypothesis at every step one by one (on a GPU
    # they dominate a beam step: benchmarks/README.md, GPU), and each window comes back as one segment.
    timestamps: bool = True
    # A preview of a live turn that is still growing (its partial deltas): greedy, without the temperature
    # fallback. It is thrown away once the turn's final decode (beam search, fallback) comes.
    preview: bool = False
    # Each text token's log probability (OpenAI's include[]=logprobs)
    logprobs: bool = False


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float
    speaker_id: Optional[str] = None


@dataclass
class TokenLogprob:
    token: str  # the token's text (its bytes decoded; a character split across tokens shows as U+FFFD)
    logprob: float
    bytes: list[int]  # the token's exact UTF-8 bytes


@dataclass
class Segment:
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)
    speaker_id: Optional[str] = None
    logprobs: Optional[list[TokenLogprob]] = None  # with DecodeOptions.logprobs: one per text token


@dataclass
class Window:
    """A stretch of one request's audio of at most 30 s, decoded as one item of a batch."""

    start: float  # seconds from the start of the request's audio
    samples: np.ndarray  # (T,) float32, 16 kHz
    options: DecodeOptions

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


@dataclass
class WindowResult:
    language: str
    segments: list[Segment]
    batch_size: int  # how many windows (from any request) were decoded together with this one


@dataclass
class SpeakerSegment:
    """A speaker turn of the response: consecutive words of one speaker (Together's `speaker_segments`)."""

    speaker_id: str
    start: float
    end: float
    words: list[Word]

    @property
    def text(self) -> str:
        return "".join(w.word for w in self.words).strip()


@dataclass
class Transcript:
    task: Task
    language: str
    duration: float
    segments: list[Segment]
    batch_sizes: list[int] = field(default_factory=list)
    speaker_segments: Optional[list[SpeakerSegment]] = None  # set when diarized

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


@dataclass(frozen=True)
class Turn:
    """One speaker talking from `start` to `end` (seconds)."""

    start: float
    end: float
    speaker: str
    known: bool = False  # `speaker` is a name the client gave (known speakers), kept as it is in every output


@dataclass
class Diarization:
    turns: list[Turn]  # the pipeline's output: turns of different speakers may overlap
    exclusive_turns: list[Turn]  # one speaker at a time: what words are matched against
    # label -> (known speaker's name, cosine distance) for the speakers that matched a reference
    known: dict[str, tuple[str, float]] = field(default_factory=dict)


@dataclass
class Rendered:
    """A response body in its final wire form, plus the headers that go with it."""

    body: str
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
