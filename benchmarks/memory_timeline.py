"""When each replica's memory rises and falls during one long upload: the dev app, one file, 0.1 s samples.

    python -m benchmarks.memory_timeline [--minutes 60] [--model whisper-tiny.en]
    python -m benchmarks.memory_timeline --minutes 120 --model whisper-base --diarize --meeting --out long-meeting

The long-file measurement in `benchmarks.run` reports peaks; this shows when they happen and how long they
are held (e.g. the Ingress keeps the upload for the whole request, the decoder the decoded audio for the
moment it takes to hand it on). Prints each replica's private memory (RSS without Ray's shared-memory
object store pages) every `--every` seconds and its peak, and writes benchmarks/results/memory_timeline.json.

`--meeting` sends real meeting speech (AMI excerpts and sample.wav drawn at random, many voices) instead of
sample.wav repeated, and `--diarize` asks for speaker turns: the long-meeting case of issue 20, where the
Diarizer's peak and the request's time limit (request_timeout_s_per_audio_s) are what is measured.
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
    parser.add_argument("--diarize", action="store_true", help="ask for speaker turns (verbose_json)")
    parser.add_argument("--meeting", action="store_true", help="AMI meeting speech instead of sample.wav repeated")
    parser.add_argument("--out", default="memory_timeline", help="results file name, under benchmarks/results/")
    args = parser.parse_args()

    if args.meeting:
        from serve_app.eval.diarization import ami_dir, meeting
        audio = meeting(ami_dir(None), args.minutes)
    else:
        audio = np.tile(clips()["30s"], args.minutes * 2)
    payload = wav(audio)
    data = {"model": args.model} | ({"diarize": "true", "response_format": "verbose_json"} if args.diarize else {})
    print(f"upload: {len(payload) / 1e6:.1f} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp)) as server:
        with memory_samples(0.1) as raw:
            start = time.perf_counter()
            r = server.post(files={"file": ("long.wav", payload)}, data=data, timeout=3 * 3600)
            wall = time.perf_counter() - start
        print(f"status {r.status_code} after {wall:.1f} s", flush=True)
        r.raise_for_status()
    body = r.json()
    # Private memory, by deployment ("speech:Ingress" -> "Ingress"), and resident memory (RSS, which also
    # counts the object store pages a replica touched).
    samples = [(t, {k.split(":")[-1]: v["private"] for k, v in m.items()}) for t, m in raw]
    rss = {k.split(":")[-1]: max(m[k]["rss"] for _, m in raw if k in m) for k in {k for _, m in raw for k in m}}

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
    print("peak RSS MB: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(rss.items())))
    out = {"minutes": args.minutes, "model": args.model, "diarize": args.diarize, "meeting": args.meeting,
           "upload_mb": round(len(payload) / 1e6, 1), "wall_s": round(wall, 1),
           "rtf": round(wall / (args.minutes * 60), 4), "peaks_mb_at_s": peaks, "peak_rss_mb": rss}
    if args.diarize:
        out["speakers"] = len({s["speaker_id"] for s in body.get("speaker_segments", [])})
        out["speaker_segments"] = len(body.get("speaker_segments", []))
        out["words"] = sum(len(s["words"]) for s in body.get("speaker_segments", []))
        print(f"{out['speakers']} speakers, {out['speaker_segments']} turns, {out['words']} words; RTF {out['rtf']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    # The file keeps one sample a second (a 2-hour run at 0.1 s would be megabytes); peaks are from all.
    kept, next_kept = [], 0.0
    for t, m in samples:
        if t >= next_kept:
            kept.append((t, m))
            next_kept = t + 1.0
    (RESULTS / f"{args.out}.json").write_text(json.dumps(out | {"samples": kept}) + "\n")


if __name__ == "__main__":
    main()
