"""The request body as it streams in, under the upload limits: size, total time and minimum rate.

A chunked upload has no Content-Length to check up front, and the multipart parser spools file parts to
disk as they come: without these checks, a client could fill the disk or hold a connection open forever.
Each body chunk is counted (and reserved in the replica's budget for bytes in flight) as it arrives.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from serve_app.errors import APIError, PayloadTooLarge, RequestTimeout
from serve_app.pipeline.budget import Reservation

Receive = Callable[[], Awaitable[dict]]


@dataclass(frozen=True)
class UploadLimits:
    max_body_bytes: int  # the upload cap plus room for the form's other fields and boundaries
    max_upload_bytes: int  # what the error names
    timeout_s: float  # the whole body
    idle_timeout_s: float  # between two chunks
    min_bytes_per_s: float  # on average, after the grace period
    grace_s: float


def bounded_receive(receive: Receive, limits: UploadLimits, reservation: Reservation) -> Receive:
    """`receive`, raising PayloadTooLarge (413) once the body passes the cap, RequestTimeout (408) when
    it comes too slowly, and Overloaded (503) when the replica's bytes in flight are spent."""
    started = time.monotonic()
    total = 0

    async def bounded() -> dict:
        nonlocal total
        elapsed = time.monotonic() - started
        wait_s = min(limits.idle_timeout_s, limits.timeout_s - elapsed)
        if wait_s <= 0:
            raise _too_slow(limits)
        try:
            message = await asyncio.wait_for(receive(), timeout=wait_s)
        except asyncio.TimeoutError:
            raise _too_slow(limits) from None
        if message["type"] == "http.request":
            chunk = len(message.get("body", b""))
            total += chunk
            hold_body(total, limits.max_body_bytes, reservation, lambda: upload_too_large(limits.max_upload_bytes))
            elapsed = time.monotonic() - started
            if message.get("more_body") and elapsed > limits.grace_s and total < limits.min_bytes_per_s * elapsed:
                raise _too_slow(limits)
        return message

    return bounded


def hold_body(total: int, max_body_bytes: int, reservation: Reservation, too_large: Callable[[], APIError]) -> None:
    """A body of `total` bytes so far (or declared): `too_large()` past the cap, else held in `reservation`
    (Overloaded when the replica's ceiling is spent; what a declared length reserved is not taken twice)."""
    if total > max_body_bytes:
        raise too_large()
    reservation.hold(total)


def upload_too_large(max_upload_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload is larger than this server's limit of {max_upload_bytes} bytes.", param="file")


def _too_slow(limits: UploadLimits) -> RequestTimeout:
    return RequestTimeout(
        f"The upload came too slowly: this server takes the whole body within {limits.timeout_s:g} s, at "
        f"least {limits.min_bytes_per_s:g} bytes/s on average after the first {limits.grace_s:g} s, with "
        f"no pause longer than {limits.idle_timeout_s:g} s.",
        param="file",
        code="upload_timeout",
    )
