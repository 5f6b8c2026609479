"""A bounded soak: N requests at C-way concurrency against a running service, mixed formats, models and
lengths, with and without words. Every request is accounted for; each replica's memory is read from
/proc before and after (same machine only).

    serve run configs/dev.yaml &
    python -m harness.soak [--url http://127.0.0.1:8000] [--requests 300] [--concurrency 16]

Writes benchmarks/results/soak.json (or --out). SERVE_APP_API_KEY is sent as the bearer key when set.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import httpx
import soundfile as sf

from harness.procs import replica_memory_mb
from harness.runner import wav_bytes
from serve_app.eval.samples import sample_dir

FORMATS = ["json", "verbose_json", "text", "srt", "vtt"]
MODELS = ["whisper-base", "whisper-tiny.en"]
LENGTHS_S = [3, 10, 30]


def _clips() -> dict[int, bytes]:
    samples, rate = sf.read(sample_dir() / "sample.wav", dtype="int16")
    return {seconds: wav_bytes(samples[: seconds * rate], rate) for seconds in LENGTHS_S}


def run_soak(
    url: str, requests: int, concurrency: int, key: Optional[str] = None, settle_s: float = 5, warmup: int = 0
) -> dict:
    """`warmup` requests first (not counted), so that "before" is a replica that has served every kind of
    request: first-use allocations (CTranslate2 buffers for each batch shape) are not a leak."""
    clips = _clips()
    kinds = list(itertools.product(FORMATS, MODELS, LENGTHS_S, (False, True)))
    headers = {"Authorization": f"Bearer {key}"} if key else {}

    def one(job) -> tuple[int, float, str]:
        fmt, model, seconds, words = job
        data = {"model": model, "response_format": fmt, **({"timestamp_granularities[]": "word"} if words else {})}
        start = time.perf_counter()
        try:
            r = httpx.post(f"{url}/v1/audio/transcriptions", data=data, headers=headers, timeout=900,
                           files={"file": (f"{seconds}s.wav", clips[seconds])})
        except httpx.HTTPError as exc:
            return -1, time.perf_counter() - start, type(exc).__name__
        ok = r.status_code == 200 and (fmt != "verbose_json" or not words or "words" in r.json())
        return r.status_code if ok or r.status_code != 200 else -2, time.perf_counter() - start, r.text[:200]

    if warmup:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, list(itertools.islice(itertools.cycle(kinds), warmup))))
        time.sleep(settle_s)
    before = replica_memory_mb()
    plan = list(itertools.islice(itertools.cycle(kinds), requests))
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, plan))
    wall = time.perf_counter() - start
    time.sleep(settle_s)
    after = replica_memory_mb()
    latencies = sorted(t for _, t, _ in results)
    statuses = Counter(s for s, _, _ in results)
    return {
        "requests": requests,
        "concurrency": concurrency,
        "warmup_requests": warmup,
        "answered": len(results),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": [detail for s, _, detail in results if s != 200][:10],
        "wall_s": round(wall, 1),
        "requests_per_s": round(requests / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
        "replica_rss_mb": {name: {"before": before.get(name), "after": mb} for name, mb in sorted(after.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=60, help="requests before the memory baseline")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    result = run_soak(args.url, args.requests, args.concurrency, os.environ.get("SERVE_APP_API_KEY"),
                      warmup=args.warmup)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
