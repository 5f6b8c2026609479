"""The one family of client-visible errors and the one envelope they are rendered in.

Pure on purpose (no fastapi/starlette): pipeline code raises these, deployments carry them across
Ray (they pickle with their fields), and the ingress renders them with `envelope()`.
"""

from __future__ import annotations

from typing import Any, Optional


class APIError(Exception):
    status: int = 500
    type: str = "server_error"

    def __init__(
        self,
        message: str,
        *,
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def __reduce__(self):
        # NOTE: Exception pickles only `args`; keep param/code/headers when Ray ships the error
        # from a replica back to the ingress.
        return (_rebuild, (type(self), self.message, self.param, self.code, self.headers))


def _rebuild(cls, message, param, code, headers):
    return cls(message, param=param, code=code, headers=headers)


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"

    def __init__(self, message: str = "Missing or invalid API key. Send `Authorization: Bearer <key>`.") -> None:
        super().__init__(message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"


class RequestTimeout(APIError):
    status = 408
    type = "invalid_request_error"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"


class UnsupportedMedia(APIError):
    status = 415
    type = "invalid_request_error"


class Overloaded(APIError):
    status = 503
    type = "server_overloaded"

    def __init__(self, message: str = "The server is at capacity; retry shortly.", retry_after_s: int = 1) -> None:
        super().__init__(message, code="overloaded", headers={"Retry-After": str(retry_after_s)})


class WorkerFailed(APIError):
    """A replica died while it held the request. Serve starts a new one; the request itself is lost."""

    status = 503
    type = "server_error"

    def __init__(self, retry_after_s: int = 5) -> None:
        super().__init__(
            "A worker failed while handling this request; it is being replaced. Retry shortly.",
            code="worker_failed",
            headers={"Retry-After": str(retry_after_s)},
        )


class GatewayTimeout(APIError):
    status = 504
    type = "timeout_error"


def envelope(exc: APIError) -> dict[str, Any]:
    """The OpenAI/Together error body."""
    return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}


def internal_error_envelope(request_id: str) -> dict[str, Any]:
    """A 500 body: never the exception text, only an id to find it in the logs."""
    return {
        "error": {
            "message": f"Internal server error. Quote request id {request_id} when reporting it.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


def find_cause(exc: BaseException, kind: type[BaseException]) -> Optional[BaseException]:
    """The first `kind` in `exc`'s chain, looking inside the wrappers Ray puts around exceptions
    raised in other replicas (`cause`) as well as Python's own chaining."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, kind):
            return cur
        stack.extend([cur.__dict__.get("cause"), cur.__cause__, cur.__context__])
    return None


def find_api_error(exc: BaseException) -> Optional[APIError]:
    found = find_cause(exc, APIError)
    if found is None:
        return None
    # A RayTaskError(APIError) is an APIError too; its `cause` is the original, plain one.
    cause = found.__dict__.get("cause")
    return cause if isinstance(cause, APIError) else found  # type: ignore[return-value]
