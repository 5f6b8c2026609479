"""The test and benchmark harness: starts the real service (runner), reads its processes (procs), runs a
bounded soak against it (soak). Used by tests/ and benchmarks/; not part of the serve_app package."""
