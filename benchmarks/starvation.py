"""Does a long file starve short requests? Latency of 5 s clips sent while a 5-minute file is in flight.

    serve run configs/dev.yaml &
    python -m benchmarks.starvation --label after [--url http://127.0.0.1:8000] [--out benchmarks/results/starvation.json]

One 5 s clip alone first (3 times), then the 5-minute clip, and 2 s later 5 s clips one after another
until the long one is answered. Appends {label: {...}} to the output file, so two code versions can be
compared from the same file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx

from benchmarks.measure import RESULTS, clips, wav


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.starvation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", type=Path, default=RESULTS / "starvation.json")
    args = parser.parse_args()
    audio = clips()
    short, long = wav(audio["5s"]), wav(audio["5min"])

    def post(payload: bytes) -> float:
        start = time.perf_counter()
        r = httpx.post(f"{args.url}/v1/audio/transcriptions", files={"file": ("a.wav", payload)}, timeout=900)
        r.raise_for_status()
        return time.perf_counter() - start

    post(short)  # warm-up
    alone = [post(short) for _ in range(3)]
    long_latency: list[float] = []
    thread = threading.Thread(target=lambda: long_latency.append(post(long)))
    thread.start()
    time.sleep(2)
    during = []
    while thread.is_alive():
        during.append(post(short))
    thread.join()
    result = {
        "short_alone_s": round(statistics.median(alone), 2),
        "short_during_long": {"n": len(during), "median_s": round(statistics.median(during), 2),
                              "max_s": round(max(during), 2)},
        "long_5min_s": round(long_latency[0], 1),
    }
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    previous[args.label] = result
    args.out.write_text(json.dumps(previous, indent=2) + "\n")
    print(json.dumps({args.label: result}, indent=2))


if __name__ == "__main__":
    main()
