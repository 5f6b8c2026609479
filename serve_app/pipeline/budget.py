"""A ceiling on what all the requests in one replica hold together (not only each on its own)."""

from __future__ import annotations

import threading

from serve_app.errors import Overloaded


class Budget:
    """Units (samples of decoded audio, bytes) held by the work running in one process, all requests
    together. `reserve` refuses with Overloaded (503 + Retry-After) when the ceiling would be passed, so
    the replica answers "retry shortly" instead of running the machine out of memory."""

    def __init__(self, limit: int, *, what: str, retry_after_s: int = 5) -> None:
        self.limit = limit
        self._what = what  # finishes "...the most {what} this server holds at once"
        self._retry_after_s = retry_after_s
        self._held = 0
        self._lock = threading.Lock()  # decodes reserve from their worker threads

    @property
    def held(self) -> int:
        return self._held

    def reserve(self, n: int) -> None:
        with self._lock:
            if self._held + n > self.limit:
                raise Overloaded(
                    f"The server holds the most {self._what} it takes at once; retry shortly.",
                    retry_after_s=self._retry_after_s,
                )
            self._held += n

    def release(self, n: int) -> None:
        with self._lock:
            self._held -= n
            assert self._held >= 0, "released more than was reserved"


class Reservation:
    """What one request holds in a Budget, taken piece by piece and given back at once."""

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self.held = 0

    def take(self, n: int) -> None:
        self._budget.reserve(n)
        self.held += n

    def hold(self, total: int) -> None:
        """Hold `total` in all: take what is missing (a request's bytes so far, an array's capacity)."""
        if total > self.held:
            self.take(total - self.held)

    def release(self) -> None:
        if self.held:
            self._budget.release(self.held)
            self.held = 0
