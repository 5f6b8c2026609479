"""The live-audio segmenter and stable prefix (pipeline/live.py), with a VAD that reads loudness: a frame
whose mean absolute value is over 0.1 is speech. Times are audio times, so nothing here depends on a clock."""

import audioop  # the standard library's G.711 (Python 3.11, as pinned; gone in 3.13): a reference, not a skip

import numpy as np
import pytest

from serve_app.pipeline.live import (
    FRAME,
    AudioFormat,
    LiveAudio,
    SegmentClosed,
    SpeechSegmenter,
    SpeechStarted,
    SpeechStopped,
    StablePrefix,
    TurnDetection,
    words_of,
)

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


# -- the pause a too-long turn is split in --

def test_a_turn_past_max_speech_is_split_in_its_last_pause():
    params = TurnDetection(max_speech_duration_s=4.0)
    # The pause comes before half of the limit, so it does not end the turn; the limit splits the turn there.
    samples = audio(("silence", 0.5), ("speech", 1.0), ("silence", 0.2), ("speech", 3.0), ("silence", 1.0))
    closed = [e for e in run(samples, params) if isinstance(e, SegmentClosed)]
    assert [c.split for c in closed] == [True, False]
    pause_middle = 0.5 + 1.0 + 0.1
    assert closed[0].end_s == pytest.approx(pause_middle, abs=2 * FRAME_S)  # not at 4 s, inside the word
    assert closed[1].start_s == closed[0].end_s  # nothing lost between them


def test_a_turn_past_half_of_max_speech_ends_at_a_short_pause_without_waiting_for_the_limit():
    params = TurnDetection(max_speech_duration_s=5.0)  # min_silence_duration_ms 500
    seg = SpeechSegmenter(params, loudness_vad)
    samples = audio(("silence", 0.5), ("speech", 3.0), ("silence", 0.2), ("speech", 1.0), ("silence", 1.0))
    stopped_when = []
    for i in range(0, len(samples), FRAME):
        for e in seg.feed(samples[i : i + FRAME]):
            if isinstance(e, SpeechStopped):
                stopped_when.append((e.at_s, seg.now_s))
    assert len(stopped_when) == 2  # two turns, each with its own start and stop: no split
    (end, decided), _ = stopped_when
    assert end == pytest.approx(3.5 + 0.1, abs=2 * FRAME_S)  # the pause is its end padding
    assert decided - 3.5 == pytest.approx(0.1, abs=2 * FRAME_S)  # 98 ms of pause, not 500 ms nor the limit
    # A short turn keeps min_silence_duration_ms and its full padding:
    short = run(audio(("speech", 1.0), ("silence", 0.2), ("speech", 1.0), ("silence", 1.0)), params)
    assert [type(e) for e in short].count(SpeechStopped) == 1


def test_the_part_after_a_split_ends_at_its_first_pause():
    params = TurnDetection(max_speech_duration_s=2.0)
    # 3 s without a pause: split at the limit; the rest of the turn ends at the first pause after 0.5 s.
    events = run(audio(("speech", 3.0), ("silence", 0.2), ("speech", 0.6), ("silence", 1.0)), params)
    closed = [e for e in events if isinstance(e, SegmentClosed)]
    assert [c.split for c in closed] == [True, False, False]
    assert closed[1].end_s == pytest.approx(3.0 + 0.1, abs=2 * FRAME_S)


def test_a_turn_without_a_pause_is_split_at_max_speech():
    params = TurnDetection(max_speech_duration_s=2.0)
    closed = [e for e in run(audio(("speech", 5.0), ("silence", 1.0)), params) if isinstance(e, SegmentClosed)]
    assert [c.split for c in closed] == [True, True, False]
    assert closed[0].end_s - closed[0].start_s == pytest.approx(2.0, abs=FRAME_S)


# -- the final decode after partial deltas --

def test_finish_sends_the_rest_when_the_final_decode_agrees():
    p = StablePrefix()
    p.update(words_of("one two"))
    assert p.update(words_of("one two three")) == "one two"
    assert p.finish(words_of("one two three four")) == " three four"


def test_finish_goes_on_after_the_sent_words_when_the_final_decode_changed_one():
    p = StablePrefix()
    p.update(words_of("a beep"))
    p.update(words_of("a beep now"))
    assert p.emitted == 2
    # "beep" was sent and cannot be taken back; the words after it still arrive.
    assert p.finish(words_of("a beat now and then")) == " now and then"


def test_finish_aligns_the_sent_words_when_the_final_decode_added_or_dropped_some():
    p = StablePrefix()
    p.update(words_of("so we met on friday"))
    p.update(words_of("so we met on friday at"))
    assert p.emitted == 5
    assert p.finish(words_of("so we all met on friday at noon")) == " at noon"  # one word more
    p = StablePrefix()
    p.update(words_of("well so we met"))
    p.update(words_of("well so we met there"))
    assert p.finish(words_of("so we met there")) == " there"  # one word fewer
    p = StablePrefix()
    p.update(words_of("hmm"))
    p.update(words_of("hmm yes"))
    assert p.finish(words_of("okay")) == ""  # nothing in common: the sent word stands for the final one


# -- client audio --

def test_g711_tables_match_the_standard_library():
    codes = bytes(range(256))
    for encoding, reference in (("pcmu", audioop.ulaw2lin), ("pcma", audioop.alaw2lin)):
        expected = np.frombuffer(reference(codes, 2), "<i2") / 32768
        decoded = LiveAudio(AudioFormat(encoding, RATE)).decode(codes)  # (at 16 kHz: no resampling)
        assert np.array_equal(decoded, expected.astype(np.float32))


def test_pcm16_at_16_khz_is_exact_and_an_odd_byte_carries_over():
    x = (np.arange(-500, 500) * 31).astype("<i2")
    data = x.tobytes()
    live = LiveAudio(AudioFormat("pcm16", RATE))
    out = np.concatenate([live.decode(data[:7]), live.decode(data[7:1001]), live.decode(data[1001:])])
    assert np.array_equal(out, x.astype(np.float32) / 32768)


def test_24_khz_becomes_16_khz_the_same_for_any_chunking():
    t = np.arange(24000) / 24000
    data = (np.sin(2 * np.pi * 440 * t) * 20000).astype("<i2").tobytes()
    whole = LiveAudio(AudioFormat("pcm16", 24000)).decode(data)
    live = LiveAudio(AudioFormat("pcm16", 24000))
    chunked = np.concatenate([live.decode(data[i : i + 333]) for i in range(0, len(data), 333)])
    n = min(len(whole), len(chunked))
    assert n >= 15900 and np.array_equal(whole[:n], chunked[:n])
    expected = np.sin(2 * np.pi * 440 * np.arange(n) / RATE) * 20000 / 32768
    assert np.abs(whole[100:n] - expected[100:n]).max() < 1e-3  # a sine stays that sine


@pytest.mark.parametrize("fmt", [("opus", 16000), ("pcm16", 4000), ("pcm16", 96000)])
def test_unknown_formats_are_refused(fmt):
    with pytest.raises(ValueError):
        AudioFormat(*fmt)
