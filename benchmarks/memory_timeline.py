"""When each replica's memory rises and falls during one long upload: the dev app, one file, 0.1 s samples.

    python -m benchmarks.memory_timeline [--minutes 60] [--model whisper-tiny.en]

The long-file measurement in `benchmarks.run` reports peaks; this shows when they happen and how long they
are held (e.g. the Ingress keeps the upload for the whole request, the decoder the decoded audio for the
moment it takes to hand it on). Prints each replica's private memory (RSS without Ray's shared-memory
object store pages) every `--every` seconds and its peak, and writes benchmarks/results/memory_timeline.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.measure import RESULTS, clips, memory_samples, wav
from harness.runner import running_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory_timeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--model", default="whisper-tiny.en", help="the fastest model gives the shortest run")
    parser.add_argument("--every", type=float, default=1.0, help="print a sample every this many seconds")
    args = parser.parse_args()

    payload = wav(np.tile(clips()["30s"], args.minutes * 2))
    print(f"upload: {len(payload) / 1e6:.1f} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp)) as server:
        with memory_samples(0.1) as raw:
            start = time.perf_counter()
            r = server.post(files={"file": ("long.wav", payload)}, data={"model": args.model}, timeout=3 * 3600)
            wall = time.perf_counter() - start
        r.raise_for_status()
    # Private memory, by deployment ("speech:Ingress" -> "Ingress").
    samples = [(t, {k.split(":")[-1]: v["private"] for k, v in m.items()}) for t, m in raw]

    names = sorted({k for _, m in samples for k in m})
    peaks = {k: max(((m[k], t) for t, m in samples if k in m), default=(0.0, 0.0)) for k in names}
    next_print = 0.0
    print("t (s) " + " ".join(f"{k:>28}" for k in names))
    for t, m in samples:
        if t >= next_print:
            print(f"{t:5.1f} " + " ".join(f"{m.get(k, 0):28.1f}" for k in names))
            next_print = t + args.every
    print(f"wall {wall:.1f} s; private MB, first sample -> peak (at s):")
    for k in names:
        first = next(m[k] for _, m in samples if k in m)
        print(f"  {k}: {first:.1f} -> {peaks[k][0]:.1f} ({peaks[k][1]:.1f})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"minutes": args.minutes, "model": args.model, "upload_mb": round(len(payload) / 1e6, 1),
           "wall_s": round(wall, 1), "peaks_mb_at_s": peaks, "samples": samples}
    (RESULTS / "memory_timeline.json").write_text(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
