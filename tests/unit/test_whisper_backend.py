"""The batch decoder (serve_app.backends.whisper.WhisperBackend) with the real Whisper base, in this process."""

import pytest

from serve_app.backends.whisper import WhisperBackend
from serve_app.config import ModelConfig
from serve_app.pipeline.types import DecodeOptions
from tests.support import sample_samples, stm_text, word_error_rate


@pytest.fixture(scope="module")
def backend() -> WhisperBackend:
    return WhisperBackend(ModelConfig(name="whisper-base", source="bundled:whisper-base", cpu_threads=2))


def test_windows_with_and_without_timestamps_share_a_batch(backend):
    """A json request's windows decode without Whisper's timestamp tokens (one segment per window), a
    verbose_json request's with them, in the same batch; both give nearly the same words."""
    samples = sample_samples()
    plain = backend.split(samples, DecodeOptions(timestamps=False))
    timed = backend.split(samples, DecodeOptions(timestamps=True))
    assert plain and len(plain) == len(timed)
    results = backend.decode(plain + timed)
    assert all(r.batch_size == 2 * len(plain) for r in results)
    plain_results, timed_results = results[: len(plain)], results[len(plain) :]

    timestamp_begin = backend._tokenizer("transcribe", "en").timestamp_begin
    for window, result in zip(plain, plain_results):
        assert len(result.segments) == 1
        segment = result.segments[0]
        assert (segment.start, segment.end) == pytest.approx((window.start, window.start + window.duration))
        assert segment.tokens and max(segment.tokens) < timestamp_begin
    timed_segments = [s for r in timed_results for s in r.segments]
    assert len(timed_segments) > len(plain)  # Whisper's own sentence-level segments
    assert all(max(s.tokens) >= timestamp_begin for s in timed_segments)

    plain_text = "".join(s.text for r in plain_results for s in r.segments)
    timed_text = "".join(s.text for s in timed_segments)
    print(plain_text, timed_text, sep="\n")
    # Two phrases differ on this sample (0.08 here): the modes condition the decoder differently.
    assert word_error_rate(timed_text, plain_text) <= 0.15
    assert word_error_rate(stm_text(), plain_text) <= 0.25


def test_the_prompt_is_tokenized_once_per_request_not_per_window(backend, monkeypatch):
    import numpy as np

    samples = np.concatenate([sample_samples()] * 3)  # 90 s: several windows
    calls = []
    real = backend._previous_tokens
    monkeypatch.setattr(backend, "_previous_tokens", lambda prompt, hotwords: calls.append(prompt) or real(prompt, hotwords))
    prompt = "Quarterly review. " * 400  # far more than Whisper's 223 prompt tokens
    windows = backend.split(samples, DecodeOptions(prompt=prompt))
    assert len(windows) >= 2 and calls == [prompt]
    tokens = windows[0].options.prompt_tokens
    assert 0 < len(tokens) == backend.model.max_length // 2 - 1
    assert all(w.options.prompt_tokens == tokens for w in windows)
    results = backend.decode(windows[:2])
    assert calls == [prompt] and len(results) == 2


def test_hotwords_go_before_the_prompt_and_are_kept_whole(backend):
    """Hotwords take at most half of Whisper's 223 tokens of previous text, first; the prompt's tail fills
    the rest; windows with them decode in the same batch as windows without."""
    room = backend.model.max_length // 2 - 1
    tok = backend._tokenizer("transcribe", "en")
    hot = tok.encode(" Siobhan Kowalczyk, Xylofonix")
    prompt = "Quarterly review. " * 400
    tokens = backend._previous_tokens(prompt, "Siobhan Kowalczyk, Xylofonix")
    assert tokens[: len(hot)] == hot and len(tokens) == room
    assert tokens[len(hot):] == tok.encode(" " + prompt.strip())[-(room - len(hot)):]
    assert backend._previous_tokens(None, "Xylofonix") == tok.encode(" Xylofonix")
    assert len(backend._previous_tokens(None, "Xylofonix " * 200)) == room // 2
    turn = sample_samples()[16_000 * 6 : 16_000 * 11]
    windows = [backend.live_window(turn, DecodeOptions(hotwords="Diane")), backend.live_window(turn, DecodeOptions())]
    assert [len(r.segments) > 0 for r in backend.decode(windows)] == [True, True]


def test_a_live_preview_is_greedy_and_shares_the_batch_with_finals(backend, monkeypatch):
    """Partial decodes of a growing live turn (preview) run greedily, without the temperature fallback, in
    their own generate call of the same batch; the final decode keeps beam search."""
    turn = sample_samples()[16_000 * 6 : 16_000 * 11]
    beams = []
    generate = backend._generate

    def spy(source, prompts, tokenizers, temperature, beam_size=None):
        beams.append((len(prompts), beam_size or backend.decoding.beam_size))
        return generate(source, prompts, tokenizers, temperature, beam_size=beam_size)

    monkeypatch.setattr(backend, "_generate", spy)
    final = backend.live_window(turn, DecodeOptions(timestamps=False))
    preview = backend.live_window(turn, DecodeOptions(timestamps=False, preview=True))
    results = backend.decode([final, preview, preview])
    assert sorted(beams) == [(1, backend.decoding.beam_size), (2, 1)]
    assert all(r.batch_size == 3 for r in results)
    texts = [" ".join(s.text for s in r.segments) for r in results]
    assert "hello" in texts[0].lower() and word_error_rate(texts[0], texts[1]) <= 0.3
