"""The pinned-version check shared by the per-library compatibility modules."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


class IncompatibleVersion(RuntimeError):
    """A library whose private API this service uses is not the version it was written against."""


def require_version(distribution: str, pinned: str) -> None:
    """Raise IncompatibleVersion unless `distribution` is installed at exactly `pinned` (pyproject.toml),
    so that an upgrade fails when a replica starts, not in the middle of a request."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:
        raise IncompatibleVersion(f"{distribution} is not installed (this service needs {pinned})") from None
    if installed != pinned:
        raise IncompatibleVersion(
            f"{distribution} {installed} is installed, but this service uses private parts of {distribution} "
            f"{pinned} (see serve_app/backends/compat_*.py); install {distribution}=={pinned} or port them"
        )
