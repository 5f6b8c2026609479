"""What the stress tests' copy of configs/dev.yaml changes (tests/stress/conftest.py applies it)."""

REQUEST_TIMEOUT_S = 30
# An hour of speech (the time-limit tests' file) gets 45 s instead of 30: the limit grows with the length.
REQUEST_TIMEOUT_S_PER_AUDIO_S = 0.0125
TINY_LIMITS = {"max_ongoing_requests": 2, "max_queued_requests": 4}
TINY_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 2,
                    "downscale_delay_s": 10, "look_back_period_s": 3, "metrics_interval_s": 1}
