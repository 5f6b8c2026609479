"""Which audio container a file is, from its first bytes, before FFmpeg sees it.

FFmpeg's format auto-detection tries every demuxer it was built with: playlists and concat files
(which open other files and URLs), SDP/RTP (which bind sockets), synthesisers (a few bytes of text that
decode to hours of tones), images, subtitles. An upload is data in one of a few audio containers, so the
container is recognised here by its signature and FFmpeg is then told which demuxer to use; everything
else is refused without any demuxer running.
"""

from __future__ import annotations

# Container name (as the API's error names it) -> the one FFmpeg demuxer allowed to read it.
DEMUXERS = {
    "wav": "wav",
    "mp3": "mp3",
    "mp4": "mov",  # mp4, m4a, mov, 3gp: one demuxer (external data references stay off: enable_drefs=0)
    "matroska": "matroska",  # matroska and webm
    "flac": "flac",
    "ogg": "ogg",  # ogg, opus, oga
    "aac": "aac",  # raw AAC in ADTS frames
}
ACCEPTED = "wav, mp3, mp4/m4a, webm/matroska, flac, ogg/opus, aac (ADTS)"

# ISO BMFF boxes that may open an mp4/m4a/QuickTime file (old QuickTime files start with moov or mdat).
_MP4_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}

# MPEG-1/2/2.5 audio layers I-III, kbit/s by [version is MPEG-1][layer][index]; sample rates by version.
_MPEG_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
# Frames that must follow one another for raw MPEG audio or ADTS to count: two headers that chain are
# unlikely by chance (random bytes or text), and a real stream has hundreds.
_FRAMES_TO_CHAIN = 3


def sniff_container(data: bytes | memoryview) -> str | None:
    """The container (a key of DEMUXERS) that the file `data` is, from its signature, or None when it is
    none of them. Reads a few bytes at the start (and past any ID3 tag), never the whole file."""
    head = bytes(data[:12])
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES:
        return "mp4"
    start = _after_id3(data)
    if start is None:
        return None
    if start:
        while start < len(data) and data[start] == 0:  # some taggers pad after the tag
            start += 1
    body = memoryview(data)[start:]
    if bytes(body[:4]) == b"fLaC":
        return "flac"
    if _chain(body, _adts_frame_length):
        return "aac"
    if _chain(body, _mpeg_frame_length):
        return "mp3"
    return None


def _after_id3(data) -> int | None:
    """Where `data` continues after any ID3v2 tags (mp3s start with one; flac and aac sometimes do);
    None if a tag is malformed."""
    pos = 0
    while bytes(data[pos : pos + 3]) == b"ID3":
        tag = bytes(data[pos : pos + 10])
        if len(tag) < 10:
            return None
        flags, size_bytes = tag[5], tag[6:10]
        if any(b & 0x80 for b in size_bytes):  # a synchsafe integer has the top bit of each byte clear
            return None
        pos += 10 + ((size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3])
        if flags & 0x10:  # a footer
            pos += 10
    return pos


def _chain(data: bytes, frame_length) -> bool:
    """Whether `data` opens with _FRAMES_TO_CHAIN frames, each header where the last frame ends (or the
    data ends exactly where a frame does, for a file shorter than that)."""
    pos = 0
    for _ in range(_FRAMES_TO_CHAIN):
        if pos == len(data) and pos > 0:
            return True
        length = frame_length(bytes(data[pos : pos + 8]))
        if length is None:
            return False
        pos += length
    return True


def _mpeg_frame_length(h: bytes) -> int | None:
    if len(h) < 4 or h[0] != 0xFF or (h[1] & 0xE0) != 0xE0:
        return None
    version, layer_bits = (h[1] >> 3) & 3, (h[1] >> 1) & 3
    bitrate_index, rate_index, padding = h[2] >> 4, (h[2] >> 2) & 3, (h[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values (and free-format bitrate, which no encoder of speech uses)
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4
    if layer == 3 and not mpeg1:
        return 72 * bitrate // rate + padding
    return 144 * bitrate // rate + padding


def _adts_frame_length(h: bytes) -> int | None:
    if len(h) < 7 or h[0] != 0xFF or (h[1] & 0xF6) != 0xF0:  # sync, layer 00
        return None
    if ((h[2] >> 2) & 0xF) >= len(_ADTS_RATES):
        return None
    length = ((h[3] & 0x3) << 11) | (h[4] << 3) | (h[5] >> 5)
    header = 7 if h[1] & 1 else 9  # without / with CRC
    return length if length > header else None
