"""The compatibility modules: each checks that its library is the pinned version before a replica uses
its private parts, and the pins agree with pyproject.toml."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from serve_app.backends import compat, compat_faster_whisper, compat_pyannote

PYPROJECT = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()


@pytest.mark.parametrize("module, distribution", [(compat_faster_whisper, "faster-whisper"),
                                                  (compat_pyannote, "pyannote.audio")])
def test_the_pin_is_pyprojects_and_the_installed_version_passes(module, distribution):
    assert re.search(rf'"{re.escape(distribution)}=={re.escape(module.PINNED)}"', PYPROJECT)
    assert version(distribution) == module.PINNED
    module.check_version()


@pytest.mark.parametrize("module", [compat_faster_whisper, compat_pyannote])
def test_another_version_fails_at_start_and_says_what_to_do(module, monkeypatch):
    monkeypatch.setattr(compat, "version", lambda name: "99.0.0")
    with pytest.raises(compat.IncompatibleVersion, match=rf"99\.0\.0 is installed.*=={re.escape(module.PINNED)}"):
        module.check_version()


def test_a_missing_library_fails_too(monkeypatch):
    def missing(name):
        raise compat.PackageNotFoundError(name)

    monkeypatch.setattr(compat, "version", missing)
    with pytest.raises(compat.IncompatibleVersion, match="not installed"):
        compat.require_version("faster-whisper", "1.2.1")


def test_plda_optional_restores_the_library_function():
    from pyannote.audio.pipelines import speaker_diarization as module

    original = module.get_plda
    with compat_pyannote.plda_optional():
        assert module.get_plda is not original and module.get_plda(None) is None
        with compat_pyannote.plda_optional():  # nesting is allowed
            assert module.get_plda(None) is None
    assert module.get_plda is original
