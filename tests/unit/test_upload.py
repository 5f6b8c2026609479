"""The body limits alone (pipeline/upload.py), on a scripted ASGI receive; the API tests send real
chunked and slow bodies through Ray's proxy."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.errors import Overloaded, PayloadTooLarge, RequestTimeout
from serve_app.pipeline.budget import Budget, Reservation
from serve_app.pipeline.upload import UploadLimits, bounded_receive

LIMITS = UploadLimits(max_body_bytes=1000, max_upload_bytes=900, timeout_s=5, idle_timeout_s=0.2,
                      min_bytes_per_s=1000, grace_s=0.3)


def scripted(chunks: list[bytes], pause_s: float = 0.0):
    sent = []

    async def receive():
        await asyncio.sleep(pause_s)
        body = chunks[len(sent)]
        sent.append(body)
        return {"type": "http.request", "body": body, "more_body": len(sent) < len(chunks)}

    return receive, sent


async def drain(receive) -> int:
    total = 0
    while True:
        message = await receive()
        total += len(message["body"])
        if not message["more_body"]:
            return total


def test_a_body_within_the_limits_passes_and_is_reserved_while_held():
    budget = Budget(5000, what="test bytes")
    reservation = Reservation(budget)
    receive, _ = scripted([b"x" * 300] * 3)
    assert asyncio.run(drain(bounded_receive(receive, LIMITS, reservation))) == 900
    assert budget.held == reservation.held == 900
    reservation.release()
    assert budget.held == 0


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_cap():
    receive, sent = scripted([b"x" * 400] * 100)
    with pytest.raises(PayloadTooLarge) as info:
        asyncio.run(drain(bounded_receive(receive, LIMITS, Reservation(Budget(10**9, what="b")))))
    assert len(sent) == 3 and "900 bytes" in info.value.message  # 1200 > 1000: refused at the third chunk


def test_a_pause_longer_than_the_idle_timeout_is_a_408():
    receive, _ = scripted([b"x" * 10] * 5, pause_s=0.5)
    with pytest.raises(RequestTimeout) as info:
        asyncio.run(drain(bounded_receive(receive, LIMITS, Reservation(Budget(10**9, what="b")))))
    assert info.value.status == 408 and info.value.code == "upload_timeout"


def test_a_trickle_under_the_minimum_rate_is_a_408_after_the_grace_period():
    receive, sent = scripted([b"x" * 10] * 100, pause_s=0.05)  # 200 bytes/s, never idle for long
    with pytest.raises(RequestTimeout):
        asyncio.run(drain(bounded_receive(receive, LIMITS, Reservation(Budget(10**9, what="b")))))
    assert 5 <= len(sent) <= 10  # past the 0.3 s grace, not before


def test_bodies_in_flight_share_one_budget():
    budget = Budget(1500, what="upload bytes")
    first, second = Reservation(budget), Reservation(budget)
    asyncio.run(drain(bounded_receive(scripted([b"x" * 450] * 2)[0], LIMITS, first)))
    with pytest.raises(Overloaded):
        asyncio.run(drain(bounded_receive(scripted([b"x" * 450] * 2)[0], LIMITS, second)))
    assert budget.held == 900 + second.held <= 1500
    first.release()
    second.release()
    assert budget.held == 0


def test_a_declared_length_reserved_up_front_is_not_counted_twice():
    budget = Budget(1000, what="upload bytes")
    reservation = Reservation(budget)
    reservation.take(900)
    asyncio.run(drain(bounded_receive(scripted([b"x" * 300] * 3)[0], LIMITS, reservation)))
    assert budget.held == 900
