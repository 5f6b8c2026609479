"""What the API tests' copy of configs/dev.yaml changes (tests/api/conftest.py applies it; tests read it)."""

from tests.support import ALLOWED_HOST, API_KEYS  # noqa: F401 - the tests read them from here

FETCH_CAPS = {"max_redirects": 3, "connect_timeout_s": 2, "total_timeout_s": 5}
# Caps small enough for tests to cross them quickly.
LIMITS = {"max_download_bytes": 4_000_000, "max_duration_s": 600, "max_upload_bytes": 40_000_000,
          "max_uploads_in_flight_bytes": 100_000_000, "upload_timeout_s": 60, "upload_idle_timeout_s": 3,
          "upload_min_bytes_per_s": 50_000, "upload_grace_s": 3}
# Per Ingress replica: small enough for a test to reach; and an idle limit a test can wait for.
REALTIME = {"max_sessions": 4, "idle_timeout_s": 10}
