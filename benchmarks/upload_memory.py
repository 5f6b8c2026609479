"""Memory of the proxy, the Ingress and the decoder while N clients upload a file at the size cap at once.

    python -m benchmarks.upload_memory [--config configs/dev.yaml] [--clients 16] [--modes declared chunked]

Each client sends its body over a raw socket, as fast as loopback takes it: `declared` with a
Content-Length, `chunked` without one (what an attacker would use to get past an up-front check). The file
is a WAV of silence at 44.1 kHz stereo, exactly the config's `max_upload_bytes` long (47 minutes at the
500 MB default, under the duration cap), so an upload that is taken decodes and transcribes quickly.
Samples every replica's and the proxy's memory every 0.1 s and reports each one's baseline and peak:
private (RSS without Ray's shared-memory object store pages) and RSS. Writes
benchmarks/results/upload_memory.json.
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from benchmarks.measure import RESULTS, memory_samples
from serve_app.config import LimitsConfig
from harness.runner import ROOT_DIR, running_app
from tests.support import RawUpload

BLOCK = 1 << 20
KINDS = {"proxy": "proxy", "speech:Ingress": "Ingress", "speech:AudioDecoder": "AudioDecoder"}


def silent_wav_header(size: int, rate: int = 44100, channels: int = 2) -> bytes:
    data = size - 44
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return b"RIFF" + struct.pack("<I", size - 8) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", data)


def one_upload(server, size: int, chunked: bool, model: str) -> dict:
    preamble, epilogue = RawUpload.preamble(model), RawUpload.epilogue()
    upload = RawUpload(server, length=None if chunked else len(preamble) + size + len(epilogue))
    start = time.perf_counter()
    upload.send(preamble + silent_wav_header(size))
    zeros = bytes(BLOCK)
    left = size - 44
    while left > 0 and not upload.answered():
        if not upload.send(zeros[: min(BLOCK, left)]):
            break
        left -= min(BLOCK, left)
    if left <= 0:
        upload.send(epilogue)
        upload.finish()
    try:
        status, headers, body = upload.response(timeout=1800)
    except (OSError, ValueError) as exc:
        status, headers, body = 0, {}, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
    return {"status": status, "sent_mb": round(upload.sent / 1e6, 1), "s": round(time.perf_counter() - start, 2),
            "retry_after": headers.get("retry-after"), "error": (body.get("error") or {}).get("code")}


def run_mode(server, clients: int, size: int, chunked: bool, model: str) -> dict:
    with memory_samples(0.1) as samples:
        time.sleep(1)
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(lambda _: one_upload(server, size, chunked, model), range(clients)))
        time.sleep(2)
    memory = {}
    for key, name in KINDS.items():
        series = [(t, m[key]) for t, m in samples if key in m]
        if not series:
            continue
        memory[name] = {
            "private_baseline_mb": series[0][1]["private"], "private_peak_mb": max(v["private"] for _, v in series),
            "rss_baseline_mb": series[0][1]["rss"], "rss_peak_mb": max(v["rss"] for _, v in series),
        }
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    return {"statuses": statuses, "memory": memory, "uploads": results,
            "sent_gb": round(sum(r["sent_mb"] for r in results) / 1e3, 2),
            "wall_s": max(r["s"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.upload_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT_DIR / "configs" / "dev.yaml")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--modes", nargs="+", choices=["declared", "chunked"], default=["declared", "chunked"])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--out", type=Path, default=RESULTS / "upload_memory.json")
    args = parser.parse_args()

    limits = LimitsConfig.of_serve_config(yaml.safe_load(args.config.read_text()))
    size = limits.max_upload_bytes
    out = {"config": str(args.config.relative_to(ROOT_DIR)), "clients": args.clients, "upload_bytes": size,
           "max_uploads_in_flight_bytes": limits.max_uploads_in_flight_bytes, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp), config_file=args.config) as server:
        for mode in args.modes:
            result = run_mode(server, args.clients, size, mode == "chunked", args.model)
            out["modes"][mode] = result
            print(f"{mode}: {args.clients} x {size / 1e6:.0f} MB, statuses {result['statuses']}, "
                  f"{result['sent_gb']} GB sent, {result['wall_s']} s", flush=True)
            for name, m in result["memory"].items():
                print(f"  {name:13s} private {m['private_baseline_mb']:7.1f} -> {m['private_peak_mb']:7.1f} MB, "
                      f"RSS {m['rss_baseline_mb']:7.1f} -> {m['rss_peak_mb']:7.1f} MB", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
