"""A short soak in CI (the long one is `python -m harness.soak`, 300 requests at 16-way)."""

import pytest

from harness.soak import run_soak

pytestmark = pytest.mark.slow


def test_short_soak_accounts_for_every_request_and_memory_settles(server):
    # Warm-up first, so that "before" is a replica that has served every format and length.
    result = run_soak(server.root_url, 40, 8, key=server.key, warmup=12)
    print(result)
    assert result["answered"] == 40 and result["statuses"] == {"200": 40}, result["failures"]
    memory = result["replica_rss_mb"]
    assert any(name.startswith("speech:WhisperASR") for name in memory), memory
    for name, mb in memory.items():
        if mb["before"] is not None:
            # Loose on purpose: this checks for leaks that grow with requests, not allocator noise.
            assert mb["after"] <= mb["before"] * 1.25 + 150, (name, mb)
