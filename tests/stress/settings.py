"""What the stress tests' copy of configs/dev.yaml changes (tests/stress/conftest.py applies it)."""

REQUEST_TIMEOUT_S = 30
TINY_LIMITS = {"max_ongoing_requests": 2, "max_queued_requests": 4}
TINY_AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 1, "upscale_delay_s": 2,
                    "downscale_delay_s": 10, "look_back_period_s": 3, "metrics_interval_s": 1}
