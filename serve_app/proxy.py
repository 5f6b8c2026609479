"""Middleware for Ray Serve's HTTP proxy, loaded by Ray from the environment:

    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=serve_app.proxy:middlewares

Two things only the proxy can do, because they happen before a request reaches the Ingress:

- Ray's proxy reads two control headers from every request: `x-request-timeout-seconds` (0 turns its
  request timeout off) and `x-request-disconnect-disabled: ?1` (it stops cancelling the request when the
  client leaves). They exist for a trusted load balancer in front; from a client they would let anyone
  keep work running for nobody. They are dropped before the proxy reads them. (The Ingress does not rely
  on it: it keeps its own time limit and watches for the client leaving itself.)
- Ray's proxy reads a request body from the socket as fast as the client sends it, into a queue that the
  Ingress drains, with no bound: a fast client could park gigabytes in the proxy. Here every body counts
  against a per-request cap (413 as soon as it is passed) and against one ceiling for all the bodies in
  flight through this proxy (503 + Retry-After), both from the environment (ENV_MAX_BODY, ENV_IN_FLIGHT;
  the test harness and k8s/generate.py derive them from the Serve config's limits).
"""

from __future__ import annotations

import json

from starlette.middleware import Middleware

from serve_app.config import PROXY_IN_FLIGHT_ENV, PROXY_MAX_BODY_ENV, LimitsConfig, proxy_limits_from_env
from serve_app.errors import APIError, PayloadTooLarge, envelope
from serve_app.pipeline.budget import Budget, Reservation
from serve_app.pipeline.upload import hold_body

# Ray's names (ray.serve._private.constants), lower-case as ASGI delivers them.
RAY_CONTROL_HEADERS = frozenset({b"x-request-timeout-seconds", b"x-request-disconnect-disabled"})
ENV_VAR = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
IMPORT_PATH = "serve_app.proxy:middlewares"
ENV_MAX_BODY = PROXY_MAX_BODY_ENV
ENV_IN_FLIGHT = PROXY_IN_FLIGHT_ENV


class StripRayControlHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket") and any(k in RAY_CONTROL_HEADERS for k, _ in scope["headers"]):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in RAY_CONTROL_HEADERS]}
        await self.app(scope, receive, send)


class BodyLimits:
    """A body cap per request and a ceiling on the bodies in flight through this proxy process. Past
    either, this answers itself (413 or 503 in the envelope), tells the proxy the client has gone (so it
    stops reading and cancels the Ingress's work) and drops what the Ingress would still send."""

    def __init__(self, app, max_body_bytes: int, in_flight_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.budget = Budget(in_flight_bytes, what=f"request bodies ({in_flight_bytes} bytes in all)")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = Reservation(self.budget)
        state = {"started": False, "refused": False, "total": 0}

        def too_large() -> PayloadTooLarge:
            return PayloadTooLarge(
                f"The request body is larger than this server's limit of {self.max_body_bytes} bytes.", param="file"
            )

        async def refuse(error: APIError) -> None:
            state["refused"] = True
            if state["started"]:  # the Ingress answered first (a 401, say): its answer stands
                return
            body = json.dumps(envelope(error)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close"), *((k.lower().encode(), v.encode()) for k, v in error.headers.items())]
            await send({"type": "http.response.start", "status": error.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        async def guarded_send(message) -> None:
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        async def limited_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["total"] += len(message.get("body", b""))
                try:
                    hold_body(state["total"], self.max_body_bytes, held, too_large)
                except APIError as error:
                    await refuse(error)
                    return {"type": "http.disconnect"}
            return message

        try:
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit():
                try:
                    hold_body(int(declared), self.max_body_bytes, held, too_large)
                except APIError as error:
                    await refuse(error)
                    return
            await self.app(scope, limited_receive, guarded_send)
        finally:
            held.release()


def middlewares() -> list[Middleware]:
    """What Ray's proxy loads. The body limits wrap outermost, so that they see the body first."""
    max_body_bytes, in_flight_bytes = proxy_limits_from_env()
    return [
        Middleware(StripRayControlHeaders),
        Middleware(BodyLimits, max_body_bytes=max_body_bytes, in_flight_bytes=in_flight_bytes),
    ]


def environment(limits: LimitsConfig) -> dict[str, str]:
    """The environment that makes Ray's proxy load this, with a Serve config's limits."""
    return {ENV_VAR: IMPORT_PATH, ENV_MAX_BODY: str(limits.max_body_bytes),
            ENV_IN_FLIGHT: str(limits.max_uploads_in_flight_bytes)}
