"""The live-audio segmenter and stable prefix (pipeline/live.py), with a VAD that reads loudness: a frame
whose mean absolute value is over 0.1 is speech. Times are audio times, so nothing here depends on a clock."""

import numpy as np
import pytest

from serve_app.pipeline.live import FRAME, SegmentClosed, SpeechSegmenter, SpeechStarted, SpeechStopped, StablePrefix, TurnDetection

RATE = 16_000
FRAME_S = FRAME / RATE


def loudness_vad(frame: np.ndarray) -> float:
    return 0.9 if float(np.abs(frame).mean()) > 0.1 else 0.0


def audio(*parts: tuple[str, float]) -> np.ndarray:
    """("speech"|"silence", seconds) parts, each rounded to whole frames."""
    out = []
    for kind, seconds in parts:
        frames = int(round(seconds / FRAME_S))
        out.append(np.full(frames * FRAME, 0.5 if kind == "speech" else 0.0, dtype=np.float32))
    return np.concatenate(out)


def run(samples: np.ndarray, params: TurnDetection = TurnDetection(), chunk: int = 0) -> list:
    seg = SpeechSegmenter(params, loudness_vad)
    events = []
    if chunk:
        for i in range(0, len(samples), chunk):
            events += seg.feed(samples[i : i + chunk])
    else:
        events += seg.feed(samples)
    return events + seg.flush()


def test_one_utterance_gives_start_stop_and_its_padded_audio():
    events = run(audio(("silence", 1.0), ("speech", 1.0), ("silence", 1.5)))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped, SegmentClosed]
    started, stopped, closed = events
    pad = TurnDetection().speech_pad_ms / 1000
    assert started.at_s == pytest.approx(1.0 - pad, abs=FRAME_S)
    assert stopped.at_s == pytest.approx(2.0 + pad, abs=FRAME_S)
    assert (closed.start_s, closed.end_s) == (started.at_s, stopped.at_s)
    assert len(closed.samples) == pytest.approx((closed.end_s - closed.start_s) * RATE, abs=1)
    assert not closed.split


def test_a_blip_shorter_than_min_speech_is_not_speech():
    assert run(audio(("silence", 0.5), ("speech", 0.15), ("silence", 1.0))) == []


def test_a_pause_shorter_than_min_silence_stays_inside_the_segment():
    events = run(audio(("speech", 1.0), ("silence", 0.3), ("speech", 1.0), ("silence", 1.0)))
    closed = [e for e in events if isinstance(e, SegmentClosed)]
    assert len(closed) == 1 and closed[0].end_s - closed[0].start_s > 2.3


def test_two_utterances_are_two_segments():
    events = run(audio(("speech", 1.0), ("silence", 1.0), ("speech", 0.8), ("silence", 1.0)))
    assert [type(e).__name__ for e in events] == ["SpeechStarted", "SpeechStopped", "SegmentClosed"] * 2
    first, second = [e for e in events if isinstance(e, SegmentClosed)]
    assert first.end_s <= second.start_s


def test_long_speech_is_split_at_max_speech_duration():
    params = TurnDetection(max_speech_duration_s=2.0)
    events = run(audio(("speech", 7.0), ("silence", 1.0)), params)
    closed = [e for e in events if isinstance(e, SegmentClosed)]
    assert [type(e) for e in events].count(SpeechStarted) == 1  # one utterance, cut in pieces
    assert len(closed) == 4 and [c.split for c in closed] == [True, True, True, False]
    for a, b in zip(closed, closed[1:]):
        assert a.end_s == pytest.approx(b.start_s)  # contiguous: no audio lost at a split
    assert all(c.end_s - c.start_s <= 2.0 + FRAME_S for c in closed)


def test_chunk_sizes_do_not_change_the_events():
    samples = audio(("silence", 0.7), ("speech", 1.3), ("silence", 0.9), ("speech", 0.6), ("silence", 0.8))
    whole = run(samples)
    for chunk in (100, 512, 1000, 4800):
        got = run(samples, chunk=chunk)
        assert [(type(e), getattr(e, "at_s", None), getattr(e, "start_s", None)) for e in got] == \
            [(type(e), getattr(e, "at_s", None), getattr(e, "start_s", None)) for e in whole]


def test_flush_closes_open_speech_and_current_shows_it():
    seg = SpeechSegmenter(TurnDetection(), loudness_vad)
    assert seg.feed(audio(("speech", 1.0)))[0] == SpeechStarted(0.0)
    assert seg.current() is not None and len(seg.current()) == pytest.approx(RATE, abs=FRAME)
    events = seg.flush()
    assert [type(e) for e in events] == [SpeechStopped, SegmentClosed]
    assert seg.current() is None and seg.flush() == []


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        TurnDetection(threshold=1.5)
    with pytest.raises(ValueError):
        TurnDetection(max_speech_duration_s=0.1, min_speech_duration_ms=250)


def test_stable_prefix_emits_words_two_decodes_agree_on():
    stable = StablePrefix()
    assert stable.update([" Hello", " there"]) == ""  # nothing to agree with yet
    assert stable.update([" Hello", " there,", " gen"]) == " Hello there,"  # punctuation may change
    assert stable.update([" Hello", " there,", " general", " Kenobi"]) == ""  # "gen" became "general"
    assert stable.update([" Hello", " there,", " general", " Kenobi."]) == " general Kenobi."
    assert stable.update([" Hello", " there,", " general"]) == ""  # never taken back, never sent twice
