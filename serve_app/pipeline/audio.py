"""Decode any container PyAV/FFmpeg reads into 16 kHz mono float32, within the configured limits."""

from __future__ import annotations

import io
import logging
import struct

import av
import numpy as np

from serve_app.errors import InvalidRequest, PayloadTooLarge, UnsupportedMedia
from serve_app.pipeline.types import SAMPLE_RATE, Audio

logger = logging.getLogger(__name__)

# Frames are resampled as they are read, so memory stays at the decoded 16 kHz output plus one frame.
_RESAMPLER_FRAME_SIZE = 8192
# A data-chunk size at or above this is a streaming writer's "unknown length", not a claim.
_STREAMING_PLACEHOLDER = 0x7FFF0000
# Beyond these, a "recording" is an attack or a broken header: 1 Hz audio would be upsampled 16000-fold.
MIN_RATE, MAX_RATE, MAX_CHANNELS = 1000, 384_000, 64


def decode_audio(data: bytes, *, max_duration_s: float) -> Audio:
    """Decode `data` (any container/codec FFmpeg knows) to 16 kHz mono float32.

    Raises InvalidRequest (400) for empty or undecodable input, UnsupportedMedia (415) for a
    container without an audio stream, PayloadTooLarge (413) past `max_duration_s`.
    """
    if not data:
        raise InvalidRequest("The audio file is empty.", param="file")
    _check_wav_header(data)
    max_samples = int(max_duration_s * SAMPLE_RATE)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, ValueError, EOFError):
        raise InvalidRequest(_UNDECODABLE, param="file") from None
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
        if stream.duration is not None and stream.time_base is not None:
            declared = float(stream.duration * stream.time_base)
            if declared > max_duration_s * 1.05 + 1:
                raise _too_long(max_duration_s)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        total = 0
        try:
            for frame in _frames(container, stream):
                frame.pts = None  # NOTE: resampler refuses frames with odd pts; timing is sample-exact anyway
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)  # (n,) int16
                    chunks.append(arr)
                    total += arr.shape[0]
                if total > max_samples:
                    raise _too_long(max_duration_s)
            for out in resampler.resample(None):
                arr = out.to_ndarray().reshape(-1)
                chunks.append(arr)
                total += arr.shape[0]
        except (av.FFmpegError, ValueError, EOFError) as exc:
            if total == 0:
                raise InvalidRequest(_UNDECODABLE, param="file") from None
            # A truncated tail: keep what decoded, as ffmpeg does.
            logger.info("audio stream ended early: %s", exc)
    if total > max_samples:
        raise _too_long(max_duration_s)
    if total == 0:
        raise InvalidRequest("The audio file contains no audio samples.", param="file")
    # One step at a time, so that no more than two copies are alive at once (an hour of audio is 115 MB
    # as int16 and 230 MB as float32; the one-line version held chunks, int16, float32 and the scaled
    # float32 together: 572 MB of growth for an hour instead of 345).
    pcm = np.concatenate(chunks)  # (T,) int16
    chunks.clear()
    samples = pcm.astype(np.float32)
    del pcm
    samples *= 1.0 / 32768.0  # in place; exact, a power of two
    return Audio(samples=samples)


def _check_wav_header(data: bytes) -> None:
    """Refuse a WAV whose data chunk claims more bytes than the file holds: a truncated upload or a
    lying header. (FFmpeg clamps the size silently.) Writers that stream to a pipe cannot know the size
    and put a placeholder there: 0, 0xFFFFFFFF (ffmpeg, sox), 0x7FFFF000 (espeak-ng) and the like; those
    are read as "unknown" and decoded as far as the data goes, under the duration cap."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
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


_UNDECODABLE = "The file could not be decoded as audio. Send wav, mp3, m4a, webm, flac, ogg/opus or aac."
