"""The decoder's container allow-list: accepted containers are recognised by signature, everything else
is refused (415) before FFmpeg opens it, and no demuxer may open a file, URL or socket of its own."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from serve_app.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from serve_app.pipeline import audio as audio_module
from serve_app.pipeline.audio import decode_audio, open_container
from serve_app.pipeline.containers import DEMUXERS, sniff_container
from tests.hostile_media import UDP_PORT, hostile_files, udp_sockets
from tests.support import CONTAINERS, encode, wav_bytes

TONE = (0.3 * np.sin(np.arange(16000 * 2) / 16000 * 2 * np.pi * 440)).astype(np.float32)
EXPECTED = {"wav": "wav", "wav-44k-stereo": "wav", "mp3": "mp3", "m4a": "mp4", "webm": "matroska", "flac": "flac",
            "ogg": "ogg", "opus": "ogg", "aac": "aac"}


@pytest.mark.parametrize("name", list(CONTAINERS))
def test_every_accepted_container_is_recognised_and_decoded(name):
    data = encode(TONE, *CONTAINERS[name])
    assert sniff_container(data) == EXPECTED[name]
    assert decode_audio(data, max_duration_s=60).duration == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("container,codec,kind", [("mp4", "aac", "mp4"), ("mov", "aac", "mp4"),
                                                  ("matroska", "libopus", "matroska"), ("matroska", "aac", "matroska"),
                                                  ("mp3", "libmp3lame", "mp3")])
def test_other_spellings_of_the_same_containers(container, codec, kind):
    data = encode(TONE, container, codec, 48000 if "opus" in codec else 44100, "mono")
    assert sniff_container(data) == kind
    assert decode_audio(data, max_duration_s=60).duration == pytest.approx(2.0, abs=0.1)


def test_mp3_and_aac_without_a_tag_are_recognised_by_chained_frames():
    mp3 = encode(TONE, "mp3", "libmp3lame", 44100, "mono")
    size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(mp3[6:10]))
    assert mp3[:3] == b"ID3"
    assert sniff_container(mp3[size:]) == "mp3"
    aac = encode(TONE, "adts", "aac", 16000, "mono")
    assert sniff_container(aac) == "aac"
    # One plausible frame header followed by anything else is not a stream.
    assert sniff_container(mp3[size : size + 4] + b"\0" * 5000) is None
    assert sniff_container(aac[:7] + b"x" * 5000) is None


def test_random_bytes_are_almost_never_taken_for_a_container():
    rng = np.random.default_rng(0)
    assert sum(sniff_container(rng.bytes(4000)) is not None for _ in range(20_000)) == 0


@pytest.fixture
def target(tmp_path, monkeypatch) -> str:
    """A real WAV in the working directory, which the playlists name (relative, as an attacker would)."""
    monkeypatch.chdir(tmp_path)
    Path("target.wav").write_bytes(wav_bytes(np.zeros(16000 * 7, dtype=np.float32)))
    return "target.wav"


@pytest.mark.parametrize("family", list(hostile_files("target.wav")))
def test_hostile_files_are_refused_before_ffmpeg_opens_them(family, target, monkeypatch):
    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("FFmpeg was asked to open a refused file")

    monkeypatch.setattr(audio_module.av, "open", no_ffmpeg)
    with pytest.raises(UnsupportedMedia) as info:
        decode_audio(hostile_files(target)[family], max_duration_s=60)
    assert info.value.code == "unsupported_container" and info.value.param == "file"
    assert "wav, mp3" in info.value.message


@pytest.mark.parametrize("family,demuxer", [("ffconcat", "concat"), ("hls playlist", "hls"),
                                            ("sdp, unicast", "sdp"), ("sdp, multicast", "sdp"),
                                            ("dash manifest", "dash")])
def test_even_a_forced_nesting_demuxer_opens_nothing(family, demuxer, target):
    """Defence in depth, under the allow-list: were a nesting demuxer ever chosen, it could open no file,
    URL or socket (no protocol is whitelisted and nested opens are refused)."""
    # Present in the pinned PyAV's FFmpeg; were one missing, the open below would fail for that reason alone.
    assert demuxer in av.formats_available, f"this FFmpeg has no {demuxer} demuxer"
    start = time.monotonic()
    with pytest.raises(InvalidRequest):
        with open_container(memoryview(hostile_files(target)[family]), demuxer) as container:
            for _ in container.demux():
                pass
    assert time.monotonic() - start < 5  # the SDP demuxer waits 20 s on a socket it was allowed to open
    assert UDP_PORT not in udp_sockets().values()


def test_only_the_recognised_containers_demuxer_runs(monkeypatch):
    seen = []
    real_open = av.open

    def spy(*args, **kwargs):
        seen.append(kwargs.get("format"))
        return real_open(*args, **kwargs)

    data = encode(TONE, *CONTAINERS["flac"])
    monkeypatch.setattr(audio_module.av, "open", spy)
    decode_audio(data, max_duration_s=60)
    assert seen == [DEMUXERS["flac"]] == ["flac"]


def test_decoding_has_a_time_limit():
    with pytest.raises(PayloadTooLarge) as info:
        decode_audio(wav_bytes(np.zeros(16000 * 60, dtype=np.float32)), max_duration_s=120, time_limit_s=0)
    assert info.value.code == "decode_time_exceeded"
