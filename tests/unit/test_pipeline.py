import json
import pickle
import re
import tracemalloc

import numpy as np
import pytest

from serve_app.errors import APIError, InvalidRequest, PayloadTooLarge, UnsupportedMedia, envelope, find_api_error
from serve_app.pipeline.audio import _Pcm, decode_audio
from serve_app.protocol import render
from serve_app.pipeline.types import Segment, Transcript, Word
from serve_app.pipeline.windows import plan_windows
from tests.support import encode, sample_samples, wav_bytes


def seg(start, end, text, words=()):
    return Segment(seek=0, start=start, end=end, text=text, tokens=[1, 2], temperature=0.0, avg_logprob=-0.2,
                   compression_ratio=1.2, no_speech_prob=0.01, words=list(words))


TRANSCRIPT = Transcript(
    task="transcribe", language="en", duration=65.5,
    segments=[seg(0.0, 1.2345, " Hello there.", [Word(" Hello", 0.0, 0.5, 0.9), Word(" there.", 0.5, 1.2345, 0.8)]),
              seg(61.0, 65.5, " Bye.", [Word(" Bye.", 61.0, 65.5, 0.9)])],
)


def test_plan_windows_groups_spans_up_to_the_limit():
    assert plan_windows([], 100) == []
    assert plan_windows([(0, 30), (40, 90), (95, 150), (160, 170)], 100) == [(0, 90), (95, 170)]
    assert plan_windows([(0, 250)], 100) == [(0, 100), (100, 200), (200, 250)]
    for start, end in plan_windows([(i * 37, i * 37 + 20) for i in range(50)], 100):
        assert end - start <= 100


def test_srt_and_vtt_use_integer_milliseconds():
    srt = render(TRANSCRIPT, "srt", words=False).body
    assert "1\n00:00:00,000 --> 00:00:01,234\nHello there.\n" in srt or "00:00:01,235" in srt
    assert "2\n00:01:01,000 --> 00:01:05,500\nBye.\n" in srt
    vtt = render(TRANSCRIPT, "vtt", words=False).body
    assert vtt.startswith("WEBVTT\n\n") and "00:01:01.000 --> 00:01:05.500\nBye." in vtt


def test_verbose_json_shape():
    body = json.loads(render(TRANSCRIPT, "verbose_json", words=True).body)
    assert body["language"] == "english" and body["text"] == "Hello there. Bye."
    assert [w["id"] for w in body["words"]] == [0, 1, 2] and body["words"][0]["word"] == "Hello"
    assert "words" not in json.loads(render(TRANSCRIPT, "verbose_json", words=False).body)
    assert render(TRANSCRIPT, "text", words=False).body == "Hello there. Bye.\n"
    assert re.fullmatch(r"text/plain.*", render(TRANSCRIPT, "srt", words=False).media_type)


def test_errors_survive_pickling_and_wrapping():
    err = PayloadTooLarge("too long", param="file", code="audio_too_long")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.status, back.param, back.code) == (PayloadTooLarge, 413, "file", "audio_too_long")
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = err
    assert find_api_error(wrapped) is err
    assert envelope(InvalidRequest("bad", param="x")) == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "x", "code": None}}
    assert find_api_error(ValueError("plain")) is None
    assert issubclass(InvalidRequest, APIError)


def test_decode_limits_and_garbage():
    data = wav_bytes(sample_samples())
    assert decode_audio(data, max_duration_s=60).duration == pytest.approx(30.0)
    with pytest.raises(PayloadTooLarge):
        decode_audio(data, max_duration_s=10)
    for bad in (b"", data[:44]):
        with pytest.raises(InvalidRequest):
            decode_audio(bad, max_duration_s=60)
    with pytest.raises(UnsupportedMedia):  # no accepted container's signature
        decode_audio(b"not audio" * 100, max_duration_s=60)


def test_decoder_array_grows_past_the_stated_length():
    """The decoder writes into one array sized from the container's stated length, which may be missing or
    wrong: it grows, and every sample is the exact int16 / 32768."""
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    buf = _Pcm(expected_s=0)  # room for 1 s
    for i in range(0, len(pcm), 1000):
        buf.append(pcm[i : i + 1000])
    out = buf.finish()
    assert out.dtype == np.float32 and out.shape == pcm.shape
    assert np.array_equal(out, pcm.astype(np.float32) / 32768)


@pytest.mark.parametrize("container,codec", [("wav", "pcm_s16le"), ("mp3", "libmp3lame"), ("flac", "flac"),
                                             ("mp4", "aac"), ("ogg", "libopus")])
def test_decode_reads_an_array_view_like_bytes(container, codec):
    # Uploads reach the decoder as a read-only uint8 array (Ray's shared memory): the same samples as bytes,
    # for containers that need seeking too (mp4's index).
    data = encode(sample_samples()[: 10 * 16000], container, codec, 48000 if codec == "libopus" else 16000, "mono")
    view = np.frombuffer(data, dtype=np.uint8)
    view.flags.writeable = False
    assert np.array_equal(decode_audio(view, max_duration_s=60).samples, decode_audio(data, max_duration_s=60).samples)


def test_decode_does_not_copy_the_file():
    data = np.frombuffer(wav_bytes(np.tile(sample_samples(), 10)), dtype=np.uint8)  # 5 min: 9.6 MB
    tracemalloc.start()
    try:
        samples = decode_audio(data, max_duration_s=600).samples
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The decoded float32 array is twice the 16-bit file; a copy of the file would add another half of it.
    assert peak < samples.nbytes + data.nbytes / 4, (peak, samples.nbytes, data.nbytes)
