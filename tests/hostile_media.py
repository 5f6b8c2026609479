"""Files that are not audio in an accepted container, made from bytes: one or more per family of FFmpeg
demuxer that an upload must never reach. Shared by the decoder's unit tests and the API's attack tests."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

UDP_PORT = 47_004  # the port the SDP files name; nothing may bind it


def udp_sockets() -> dict[int, int]:
    """{socket inode: local port} of every UDP socket on this host (IPv4 and IPv6), from /proc."""
    out = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            out[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = zlib.compress(b"\0\0\0\0" * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def hostile_files(target: str) -> dict[str, bytes]:
    """{family: payload}. `target` is the name of a real WAV file that the playlists point at."""
    return {
        # playlists and concat files: they open other files and URLs
        "ffconcat": f"ffconcat version 1.0\nfile {target}\n".encode(),
        "concat with a URL": b"ffconcat version 1.0\nfile http://127.0.0.1:9/a.wav\n",
        "hls playlist": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{target}\n#EXT-X-ENDLIST\n".encode(),
        "m3u playlist": f"#EXTM3U\n#EXTINF:7,a\n{target}\n".encode(),
        "dash manifest": b'<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static">'
                         b'<Period><AdaptationSet><Representation id="a" bandwidth="1"><BaseURL>'
                         + target.encode() + b"</BaseURL></Representation></AdaptationSet></Period></MPD>",
        # network descriptions: they bind sockets or join multicast groups
        "sdp, unicast": f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 0.0.0.0\nt=0 0\n"
                        f"m=audio {UDP_PORT} RTP/AVP 0\n".encode(),
        "sdp, multicast": f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 239.1.1.1/32\nt=0 0\n"
                          f"m=audio {UDP_PORT} RTP/AVP 0\n".encode(),
        "rtsp-style sdp with a control url": f"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nt=0 0\n"
                                             f"a=control:rtsp://127.0.0.1:{UDP_PORT}/a\nm=audio 0 RTP/AVP 0\n".encode(),
        # synthesisers: a few bytes of text that decode to hours of sound
        "sbagen tones": b"-SE\na: 300/10\nNOW a\n+4:00:00 a\n",
        "lavfi-like graph": b"sine=frequency=440:duration=14400\n",
        # images
        "png": _png(),
        "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9",
        "gif": b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
               b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
        # subtitles
        "srt": b"1\n00:00:00,000 --> 00:00:02,000\nhello\n\n2\n00:00:02,000 --> 00:00:04,000\nworld\n",
        "webvtt": b"WEBVTT\n\n00:00.000 --> 00:02.000\nhello\n",
        "ass": b"[Script Info]\nScriptType: v4.00+\n\n[Events]\nFormat: Layer, Start, End, Text\n"
               b"Dialogue: 0,0:00:00.00,0:00:02.00,hello\n",
        # other things people upload by mistake
        "text": b"this is plain text, not audio at all\n" * 20,
        "html": b"<!DOCTYPE html><html><body>not audio</body></html>",
    }
