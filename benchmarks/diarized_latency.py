"""Latency of a diarized request against an undiarized one on sample.wav, through the running service.

    serve run configs/dev.yaml &             # or any running deployment
    python -m benchmarks.diarized_latency [--url http://127.0.0.1:8000] [--runs 5] [--out benchmarks/results/diarized_latency.json]

Requests go one at a time (no queueing), alternating kinds, after one warm-up of each. It also times the
diarization pipeline alone, in this process, on the same file: if ASR and diarization ran one after the
other, a diarized request would take about undiarized + diarization-alone; run side by side, about the
slower of the two (on a 2-core machine the two still share the same cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import httpx

from serve_app.eval.diarization import sample_dir, sample_item

SAMPLE = sample_dir() / "sample.wav"


def post(client: httpx.Client, url: str, diarize: bool) -> float:
    data = {"response_format": "verbose_json", **({"diarize": "true"} if diarize else {})}
    start = time.perf_counter()
    r = client.post(f"{url}/v1/audio/transcriptions", data=data, files={"file": ("sample.wav", SAMPLE.read_bytes())})
    elapsed = time.perf_counter() - start
    r.raise_for_status()
    return elapsed


def diarization_alone(runs: int) -> float:
    from serve_app.backends.diarization import PyannoteDiarizer, load_pipeline
    from serve_app.config import DiarizationConfig

    diarizer = PyannoteDiarizer(load_pipeline(DiarizationConfig()))
    samples = sample_item().samples
    diarizer(samples)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        diarizer(samples)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/diarized_latency.json"))
    args = parser.parse_args()
    key = os.environ.get("SERVE_APP_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(timeout=600, headers=headers) as client:
        post(client, args.url, False)
        post(client, args.url, True)
        plain, diarized = [], []
        for _ in range(args.runs):
            plain.append(post(client, args.url, False))
            diarized.append(post(client, args.url, True))
    result = {
        "file": "sample.wav (30 s)",
        "runs": args.runs,
        "undiarized_median_s": round(statistics.median(plain), 3),
        "diarized_median_s": round(statistics.median(diarized), 3),
        "diarization_alone_median_s": round(diarization_alone(args.runs), 3),
    }
    result["sequential_estimate_s"] = round(result["undiarized_median_s"] + result["diarization_alone_median_s"], 3)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
