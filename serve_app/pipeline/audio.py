"""Decode an upload in one of the accepted audio containers into 16 kHz mono float32, within the limits.

Only the demuxer of the container recognised from the file's signature runs (pipeline/containers.py);
nothing inside a file may open another file, URL or socket; decoding has a time limit."""

from __future__ import annotations

import io
import logging
import struct
import threading
import time

import av
import numpy as np

from serve_app.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from serve_app.pipeline.budget import Budget, Reservation
from serve_app.pipeline.cancel import check
from serve_app.pipeline.containers import ACCEPTED, DEMUXERS, sniff_container
from serve_app.pipeline.types import SAMPLE_RATE, Audio

logger = logging.getLogger(__name__)

# A data-chunk size at or above this is a streaming writer's "unknown length", not a claim.
_STREAMING_PLACEHOLDER = 0x7FFF0000
# Beyond these, a "recording" is an attack or a broken header: 1 Hz audio would be upsampled 16000-fold.
MIN_RATE, MAX_RATE, MAX_CHANNELS = 1000, 384_000, 64
# A header may claim any length up to the limit: reserve at most this much up front, grow past it.
_MAX_PREALLOCATED_S = 3600
# Nested I/O off, for every demuxer: no protocol at all (the file is read through our own buffer, not a
# protocol), no mp4 external data references, no unsafe paths. io_open below refuses what is left.
_DEMUXER_OPTIONS = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0", "safe": "1"}
# FFmpeg's own wait for I/O (our buffer never blocks; this bounds a demuxer that loops on its reads).
_IO_TIMEOUT_S = 10.0


def decode_audio(
    data: bytes | memoryview | np.ndarray,
    *,
    max_duration_s: float,
    time_limit_s: float = 600,
    budget: Budget | None = None,
    stop: threading.Event | None = None,
) -> Audio:
    """Decode `data` (the file's bytes, or a uint8 array over them) to 16 kHz mono float32. The file is
    read where it lies, not copied. The samples being decoded are reserved in `budget` (shared by every
    decode in the process) while the array grows, and released when this returns. Once `stop` is set,
    the next frame raises Cancelled.

    Raises InvalidRequest (400) for empty or undecodable input, UnsupportedMedia (415) for a file that is
    not in an accepted container or has no audio stream, PayloadTooLarge (413) past `max_duration_s` or
    when decoding takes longer than `time_limit_s`, Overloaded (503) when `budget` is spent.
    """
    deadline = time.monotonic() + time_limit_s
    view = memoryview(data).cast("B")
    if not len(view):
        raise InvalidRequest("The audio file is empty.", param="file")
    kind = sniff_container(view)
    if kind is None:
        raise UnsupportedMedia(
            f"The file is not in an accepted audio container. Send one of: {ACCEPTED}.",
            param="file",
            code="unsupported_container",
        )
    _check_wav_header(view)
    max_samples = int(max_duration_s * SAMPLE_RATE)
    container = open_container(view, DEMUXERS[kind])
    with container:
        if not container.streams.audio:
            raise UnsupportedMedia("The file has no audio stream that can be decoded.", param="file")
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        if ctx is None:  # FFmpeg found no decoder for what the header describes
            raise InvalidRequest(_UNDECODABLE, param="file")
        rate, channels = ctx.sample_rate, ctx.channels
        if not MIN_RATE <= (rate or 0) <= MAX_RATE or not 1 <= (channels or 0) <= MAX_CHANNELS:
            raise InvalidRequest(
                f"Unsupported audio format: {rate} Hz, {channels} channels (this server takes {MIN_RATE} to "
                f"{MAX_RATE} Hz and 1 to {MAX_CHANNELS} channels).",
                param="file",
            )
        # Cheap early refusal when the container states its length (it may lie: the real
        # check is on the decoded samples below).
        declared = 0.0
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
            if declared > max_duration_s * 1.05 + 1:
                raise _too_long(max_duration_s)
        pcm = _Pcm(expected_s=min(declared, _MAX_PREALLOCATED_S), budget=budget)
        try:
            _decode_into(pcm, container, stream, max_samples, max_duration_s, deadline, time_limit_s, stop)
        finally:
            pcm.release()  # the array is the caller's now: what the budget bounds is decodes in progress
    if pcm.total > max_samples:
        raise _too_long(max_duration_s)
    if pcm.total == 0:
        raise InvalidRequest("The audio file contains no audio samples.", param="file")
    return Audio(samples=pcm.finish())


def _decode_into(pcm, container, stream, max_samples, max_duration_s, deadline, time_limit_s, stop) -> None:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    try:
        for frame in _frames(container, stream):
            frame.pts = None  # NOTE: resampler refuses frames with odd pts; timing is sample-exact anyway
            for out in resampler.resample(frame):
                pcm.append(out.to_ndarray().reshape(-1))
            if pcm.total > max_samples:
                raise _too_long(max_duration_s)
            if time.monotonic() > deadline:
                raise _too_slow(time_limit_s)
            check(stop)
        for out in resampler.resample(None):
            pcm.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, ValueError, EOFError) as exc:
        if pcm.total == 0:
            raise InvalidRequest(_UNDECODABLE, param="file") from None
        # A truncated tail: keep what decoded, as ffmpeg does.
        logger.info("audio stream ended early: %s", exc)


def open_container(view: memoryview, demuxer: str):
    """`view` opened by FFmpeg's `demuxer` and no other, with nested I/O refused (see _DEMUXER_OPTIONS)."""
    try:
        return av.open(
            _BufferFile(view),
            mode="r",
            format=demuxer,
            options=dict(_DEMUXER_OPTIONS),
            metadata_errors="ignore",
            timeout=_IO_TIMEOUT_S,
            io_open=_refuse_nested_open,
        )
    except (av.FFmpegError, ValueError, EOFError, PermissionError):
        raise InvalidRequest(_UNDECODABLE, param="file") from None


def _refuse_nested_open(url: str, flags: int, options: dict):
    # A demuxer that wants another file or URL (a playlist entry, an external reference) gets none.
    raise PermissionError(f"nested open refused: {url[:100]!r}")


class _Pcm:
    """16 kHz float32 samples, written frame by frame into one array: the decoded audio is never held twice
    (chunks, then their concatenation, then a float32 copy, would be; benchmarks/README.md, "Figures behind
    the code's comments")."""

    def __init__(self, expected_s: float, budget: Budget | None = None) -> None:
        # The container's stated length (+1 s) saves regrowing; it may be wrong, so the array still grows.
        size = int(max(expected_s, 0) * SAMPLE_RATE) + SAMPLE_RATE
        # The array's capacity is held in the budget before the memory is taken.
        self._held = Reservation(budget) if budget is not None else None
        self._hold(size)
        self._buf = np.empty(size, dtype=np.float32)
        self.total = 0

    def _hold(self, size: int) -> None:
        if self._held is not None:
            self._held.hold(size)

    def release(self) -> None:
        if self._held is not None:
            self._held.release()

    def append(self, frame: np.ndarray) -> None:  # (n,) int16
        end = self.total + frame.shape[0]
        if end > self._buf.shape[0]:
            size = max(end, int(self._buf.shape[0] * 1.5))
            self._hold(size)
            # realloc: for arrays this large the allocator remaps pages instead of copying them.
            self._buf.resize(size, refcheck=False)
        # int16 -> float32 / 32768: exact (a power of two), in place.
        np.multiply(frame, np.float32(1.0 / 32768.0), out=self._buf[self.total : end])
        self.total = end

    def finish(self) -> np.ndarray:
        self._buf.resize(self.total, refcheck=False)  # shrinking in place
        return self._buf


class _BufferFile(io.RawIOBase):
    """A read-only, seekable file over a buffer that it does not copy. (`io.BytesIO` copies anything
    but `bytes`, such as the upload's array, which lies in Ray's shared-memory object store.)"""

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # what PyAV calls: one copy of a small piece
        end = len(self._view) if size is None or size < 0 else self._pos + size
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self._view[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos


def _check_wav_header(data: memoryview) -> None:
    """Refuse a WAV whose data chunk claims more bytes than the file holds: a truncated upload or a
    lying header. (FFmpeg clamps the size silently.) Writers that stream to a pipe cannot know the size
    and put a placeholder there: 0, 0xFFFFFFFF (ffmpeg, sox), 0x7FFFF000 (espeak-ng) and the like; those
    are read as "unknown" and decoded as far as the data goes, under the duration cap."""
    if len(data) < 12 or bytes(data[:4]) != b"RIFF" or bytes(data[8:12]) != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = bytes(data[pos : pos + 4]), struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            available = len(data) - (pos + 8)
            if 0 < size < _STREAMING_PLACEHOLDER and size > available + 1:
                raise InvalidRequest(
                    f"The WAV file is truncated: its header declares {size} bytes of audio, the file holds "
                    f"{available}.",
                    param="file",
                )
            return
        pos += 8 + size + (size & 1)


def _frames(container, stream):
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            # One corrupt packet must not sink the whole file.
            continue


def _too_long(max_duration_s: float) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The audio is longer than this server's limit of {max_duration_s:g} seconds.",
        param="file",
        code="audio_too_long",
    )


def _too_slow(time_limit_s: float) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The audio took longer than this server's limit of {time_limit_s:g} s to decode.",
        param="file",
        code="decode_time_exceeded",
    )


_UNDECODABLE = f"The file could not be decoded as audio. Send one of: {ACCEPTED}."
