import pytest

from tests.support import sample_samples, wav_bytes


@pytest.fixture(scope="session")
def clip() -> bytes:
    """3.7 s of sample.wav: the first "hello"s."""
    return wav_bytes(sample_samples()[int(6.3 * 16000) : int(10 * 16000)])
