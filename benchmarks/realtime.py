"""Realtime sessions under load: N sessions play recorded speech (sample.wav, 30 s) at real-time pace over
/v1/realtime (Together's dialect, 100 ms chunks, the sessions' starts spread over the first second), for
each model and each N.

    python -m benchmarks.realtime --config configs/dev.yaml --name dev-cpu-realtime \
        [--models whisper-tiny.en whisper-base] [--sessions 1 2 4 8 16]

Per model and N it reports, over every turn of every session:
- finalisation latency: from the moment the turn's last audio (`speech_stopped`'s `audio_end_ms`, padding
  included) was sent to its `completed` (p50 / p95). It includes the silence the VAD waits for before it
  closes a turn (min_silence_duration_ms - speech_pad_ms = 250 ms by default);
- first delta: from the turn's first audio (`speech_started`'s `audio_start_ms`) to its first delta (p50);
- closed to completed: from the moment `speech_stopped` reached the client to `completed` (p95): the ASR's
  share alone. A turn that VAD splits at max_speech_duration_s (5 s by default) ends at its last pause, which
  may be seconds before the split is decided; the first figure counts that wait, this one does not;
- the lag at the end: from the last chunk (and the commit) to the session's last `completed` (p95);
- the cores each kind of process kept busy (`measure.cpu_seconds`).
- with `--files C`: file requests (the 30 s clip, our HTTP API, C at a time) alone for a minute, then running
  all along levels of `--files-with` sessions: their audio seconds per second beside and without sessions.
It prints the largest N whose p95 finalisation latency stays under 2 s, and writes
benchmarks/results/<name>.json, .md and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import websockets
import yaml

from benchmarks.measure import RATE, clips, cpu_seconds, machine, model_dir, p95
from benchmarks.peers import start_peer, whisper_live_realtime
from harness.runner import free_port, running_app, wav_bytes as wav
from serve_app.config import AppConfig

RESULTS = Path(__file__).resolve().parent / "results"
CHUNK_S = 0.1
TARGET_P95_S = 2.0


async def one_session(url: str, headers: dict, pcm: bytes, start_after_s: float) -> dict:
    await asyncio.sleep(start_after_s)
    events: list[tuple[float, dict]] = []
    chunk = int(CHUNK_S * RATE) * 2
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.recv()  # session.created

        async def read() -> None:
            async for message in ws:
                events.append((time.monotonic(), json.loads(message)))

        reader = asyncio.ensure_future(read())
        t0 = time.monotonic()  # audio position p is sent by t0 + p (each chunk at its own time)
        for i, offset in enumerate(range(0, len(pcm), chunk)):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[offset : offset + chunk]).decode()}))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_S - time.monotonic()))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        sent = time.monotonic()
        deadline = sent + 300
        while time.monotonic() < deadline and not _answered([e for _, e in events]):
            await asyncio.sleep(0.05)
        reader.cancel()
    return {"t0": t0, "sent": sent, "events": events}


def _answered(events: list[dict]) -> bool:
    started = {e["item_id"] for e in events if e["type"] == "input_audio_buffer.speech_started"}
    done = {e["item_id"] for e in events if e["type"].startswith("conversation.item.input_audio_transcription.")
            and not e["type"].endswith(".delta")}
    # (the last commit closes the open turn, or answers an error when none is open)
    return started <= done and (bool(started) or any(e["type"] == "error" for e in events))


async def whisper_live_session(url: str, model: str, pcm: bytes, start_after_s: float) -> dict:
    """The same audio over whisper-live's own protocol: JSON options, int16 frames, END_OF_AUDIO; it sends
    the last segments again with every update, each `completed` once final."""
    await asyncio.sleep(start_after_s)
    events: list[tuple[float, dict]] = []
    chunk = int(CHUNK_S * RATE) * 2
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"uid": uuid.uuid4().hex, "language": "en", "task": "transcribe", "model": model,
                                  "use_vad": True, "send_last_n_segments": 10, "audio_format": "int16"}))
        while True:
            message = json.loads(await ws.recv())
            if message.get("message") == "SERVER_READY":
                break
            if message.get("status") in ("WAIT", "ERROR"):
                raise RuntimeError(f"whisper-live refused a session: {message}")

        async def read() -> None:
            async for m in ws:
                events.append((time.monotonic(), json.loads(m)))

        reader = asyncio.ensure_future(read())
        t0 = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), chunk)):
            await ws.send(pcm[offset : offset + chunk])
            await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK_S - time.monotonic()))
        await ws.send(b"END_OF_AUDIO")
        sent = time.monotonic()
        # It has no end-of-stream answer: wait until it has been quiet for 5 s (at most 120 s).
        while time.monotonic() < sent + 120 and time.monotonic() - max([sent] + [t for t, _ in events]) < 5:
            await asyncio.sleep(0.1)
        reader.cancel()
    return {"t0": t0, "sent": sent, "events": events}


def whisper_live_turns(session: dict) -> tuple[list[float], list[float], list[float], float, int]:
    t0, first_seen, done = session["t0"], {}, {}
    for t, message in session["events"]:
        for seg in message.get("segments", []):
            key = seg["start"]
            first_seen.setdefault(key, t - (t0 + float(seg["start"])))
            if seg.get("completed") and key not in done:
                done[key] = t - (t0 + float(seg["end"]))
    last = max([t for t, m in session["events"] if m.get("segments")], default=session["sent"])
    # (its segments have no separate close event: the ASR's share is not told apart)
    return list(done.values()), list(first_seen.values()), [], last - session["sent"], 0


def turns(session: dict) -> tuple[list[float], list[float], list[float], float, int]:
    """(finalisation latencies, first-delta latencies, closed-to-completed latencies, lag at the end, failed
    items) of one session."""
    t0, events = session["t0"], session["events"]
    end_at, start_at, first_delta, done_at, stopped_seen, failed = {}, {}, {}, {}, {}, 0
    for t, e in events:
        kind, item = e["type"], e.get("item_id")
        if kind == "input_audio_buffer.speech_started":
            start_at[item] = t0 + e["audio_start_ms"] / 1000
        elif kind == "input_audio_buffer.speech_stopped":
            end_at[item] = t0 + e["audio_end_ms"] / 1000
            stopped_seen[item] = t
        elif kind.endswith("transcription.delta"):
            first_delta.setdefault(item, t)
        elif kind.endswith("transcription.completed"):
            done_at[item] = t
        elif kind.endswith("transcription.failed"):
            failed += 1
    final = [done_at[i] - end_at[i] for i in done_at if i in end_at]
    first = [first_delta[i] - start_at[i] for i in first_delta if i in start_at]
    asr = [done_at[i] - stopped_seen[i] for i in done_at if i in stopped_seen]
    lag = max(done_at.values(), default=session["sent"]) - session["sent"]
    return final, first, asr, lag, failed


class FileLoad:
    """File requests, `concurrency` at a time, from start() until stop(): audio seconds per wall second."""

    def __init__(self, post, payload: bytes, seconds: float, concurrency: int):
        self.post, self.payload, self.seconds, self.concurrency = post, payload, seconds, concurrency
        self._stop, self._done, self._threads = threading.Event(), [], []

    def _worker(self) -> None:
        while not self._stop.is_set():
            r = self.post(self.payload)
            if r.status_code != 200:
                raise RuntimeError(f"file request: {r.status_code}: {r.text[:300]}")
            self._done.append(time.perf_counter())

    def start(self) -> None:
        self._start = time.perf_counter()
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.concurrency)]
        for t in self._threads:
            t.start()

    def stop(self) -> float:
        """Only the requests that ended before stop() was called count (those in flight are waited for)."""
        end = time.perf_counter()
        self._stop.set()
        for t in self._threads:
            t.join()
        return round(sum(self.seconds for t in self._done if t <= end) / (end - self._start), 2)


def level(url: str, headers: dict, pcm: bytes, n: int, peer_model: str | None = None,
          files: FileLoad | None = None) -> dict:
    """`peer_model`: the sessions go to whisper-live (its protocol, that model directory) instead.
    `files`: file requests run alongside the sessions."""
    async def run() -> list[dict]:
        if peer_model is not None:
            return await asyncio.gather(*(whisper_live_session(url, peer_model, pcm, i / n) for i in range(n)))
        return await asyncio.gather(*(one_session(url, headers, pcm, i / n) for i in range(n)))

    cpu_before, start = cpu_seconds(), time.perf_counter()
    if files is not None:
        files.start()
    sessions = asyncio.run(run())
    files_rate = files.stop() if files is not None else None
    wall = time.perf_counter() - start
    cpu_after = cpu_seconds()
    cores = {k: round((v - cpu_before.get(k, 0.0)) / wall, 2) for k, v in cpu_after.items()}
    cores = {k: v for k, v in sorted(cores.items(), key=lambda kv: -kv[1]) if v >= 0.02}
    final, first, asr, lags, failed = [], [], [], [], 0
    for s in sessions:
        f, d, a, lag, bad = (turns if peer_model is None else whisper_live_turns)(s)
        final += f
        first += d
        asr += a
        lags.append(lag)
        failed += bad
    return {
        "sessions": n, "turns": len(final), "failed": failed,
        "final_p50_s": round(statistics.median(final), 3) if final else None,
        "final_p95_s": round(p95(final), 3) if final else None,
        "closed_to_completed_p95_s": round(p95(asr), 3) if asr else None,
        "first_delta_p50_s": round(statistics.median(first), 3) if first else None,
        "end_lag_p95_s": round(p95(lags), 3),
        "files_audio_s_per_s": files_rate,
        "cores_busy": {"total": round(sum(cores.values()), 2), **cores},
    }


def largest_under_target(levels: list[dict]) -> int:
    """The largest number of sessions whose p95 finalisation stayed under TARGET_P95_S (0: none)."""
    return max((lv["sessions"] for lv in levels if lv["final_p95_s"] is not None and lv["final_p95_s"] < TARGET_P95_S),
               default=0)


def alongside(srv, model: str, url: str, pcm: bytes, samples: np.ndarray, args) -> dict:
    """File requests at c=`args.files` alone for a minute, then beside each of `args.files_with` sessions."""
    payload = wav(samples)

    def post(body: bytes) -> httpx.Response:
        return srv.post(data={"model": model}, files={"file": ("30s.wav", body)}, timeout=900)

    post(payload).raise_for_status()  # warm
    files = FileLoad(post, payload, len(samples) / RATE, args.files)
    files.start()
    time.sleep(60)
    alone = files.stop()
    print(f"{model} files alone at c={args.files}: {alone} audio s/s", flush=True)
    levels = []
    for n in args.files_with:
        lv = level(url, srv.headers(), pcm, n, files=FileLoad(post, payload, len(samples) / RATE, args.files))
        print(f"{model} N={n} with files at c={args.files}: {json.dumps(lv)}", flush=True)
        levels.append(lv)
    return {"concurrency": args.files, "files_alone_audio_s_per_s": alone, "levels": levels}


def report(r: dict, path: Path) -> None:
    header = ["| model | sessions | turns | final p50 | final p95 | closed->completed p95 | first delta p50 | "
              "end lag p95 | files alongside (audio s/s) | cores busy |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines = [f"# {r['name']}", "", f"{r['machine']}; {r['config']}; sample.wav (30 s) per session at 1x, "
             f"{CHUNK_S * 1000:.0f} ms chunks, Together's default turn detection", "",
             *header]
    for model, by_n in r["models"].items():
        for lv in by_n["levels"]:
            lines.append(_row(model, lv))
    lines.append("")
    for model, by_n in r["models"].items():
        if "alongside" not in by_n:
            continue
        a = by_n["alongside"]
        lines += [f"With file requests (the 30 s clip, c={a['concurrency']}) running all along; alone they do "
                  f"{a['files_alone_audio_s_per_s']} audio s/s ({model}):", "", *header]
        for lv in a["levels"]:
            files = lv["files_audio_s_per_s"]
            lines.append(_row(model, lv, f"{files} ({files / a['files_alone_audio_s_per_s']:.0%} of alone)"))
        lines.append("")
    for model, by_n in r["models"].items():
        lines.append(f"- {model}: the largest N with p95 finalisation under {TARGET_P95_S:g} s: "
                     f"{by_n['max_sessions_under_target']}")
    path.write_text("\n".join(lines) + "\n")


def _row(model: str, lv: dict, files: str = "-") -> str:
    return (f"| {model} | {lv['sessions']} | {lv['turns']} | {lv['final_p50_s']} s | {lv['final_p95_s']} s | "
            f"{_s(lv.get('closed_to_completed_p95_s'))} | {lv['first_delta_p50_s']} s | {lv['end_lag_p95_s']} s | "
            f"{files} | {lv['cores_busy']['total']} |")


def _s(value) -> str:
    return "-" if value is None else f"{value} s"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model, by_n in r["models"].items():
        xs = [lv["sessions"] for lv in by_n["levels"]]
        ax.plot(xs, [lv["final_p95_s"] for lv in by_n["levels"]], marker="o", label=f"{model} p95")
        ax.plot(xs, [lv["final_p50_s"] for lv in by_n["levels"]], marker=".", linestyle=":", label=f"{model} p50")
    ax.axhline(TARGET_P95_S, linestyle="--", color="gray", label=f"{TARGET_P95_S:g} s")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent realtime sessions (1x real time)")
    ax.set_ylabel("end of turn -> completed (s)")
    ax.set_title(f"{r['name']}: {r['machine']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/dev.yaml"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--models", nargs="+", default=["whisper-tiny.en", "whisper-base"])
    parser.add_argument("--sessions", nargs="+", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--whisper-live", nargs="*", default=[], choices=["plain", "batch"],
                        help="also measure whisper-live 0.10.0's realtime server: one model per client process "
                             "call (plain) and/or its cross-client batching (batch)")
    parser.add_argument("--files", type=int, default=0, metavar="C",
                        help="then run file requests (the 30 s clip, C at a time) alone, and alongside sessions")
    parser.add_argument("--files-with", nargs="+", type=int, default=[1, 2, 4], metavar="N",
                        help="the numbers of sessions that file requests run beside (with --files)")
    parser.add_argument("--live-share", type=float, default=None,
                        help="the ASR deployments' live_share (default: the config's)")
    args = parser.parse_args()
    samples = clips()["30s"]
    pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
    result = {"name": args.name, "machine": machine(), "config": str(args.config), "models": {}}

    def config(c: dict) -> None:
        # room for the largest level on one Ingress replica
        c["applications"][0]["args"].setdefault("realtime", {})["max_sessions"] = max(64, max(args.sessions))
        for d in c["applications"][0]["deployments"]:
            d["autoscaling_config"].update(min_replicas=1, max_replicas=1)  # the machine, not the autoscaler
            if args.live_share is not None and d["name"].startswith("WhisperASR"):
                d["user_config"]["live_share"] = args.live_share

    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp), config, config_file=args.config) as srv:
        for model in args.models:
            url = srv.base_url.replace("http", "ws", 1) + f"/realtime?model={model}&input_audio_format=pcm_s16le_16000"
            levels = []
            for n in args.sessions:
                lv = level(url, srv.headers(), pcm, n)
                print(f"{model} N={n}: {json.dumps(lv)}", flush=True)
                levels.append(lv)
            result["models"][model] = {"levels": levels, "max_sessions_under_target": largest_under_target(levels)}
            if args.files:
                result["models"][model]["alongside"] = alongside(srv, model, url, pcm, samples, args)
    app = AppConfig.model_validate(yaml.safe_load(args.config.read_text())["applications"][0]["args"])
    for variant in args.whisper_live:
        for model in args.models:
            directory = model_dir(app.resolve_model(model))
            ws_port = free_port()
            with tempfile.TemporaryDirectory() as tmp, start_peer(whisper_live_realtime(ws_port, variant == "batch"),
                                                                  directory, 2, 8, Path(tmp)):
                levels = []
                for n in args.sessions:
                    lv = level(f"ws://127.0.0.1:{ws_port}", {}, pcm, n, peer_model=str(directory))
                    print(f"whisper-live ({variant}) {model} N={n}: {json.dumps(lv)}", flush=True)
                    levels.append(lv)
                    if lv["final_p95_s"] is None or lv["final_p95_s"] > 10 * TARGET_P95_S:
                        break  # far past the target: the larger levels would only take long
            result["models"][f"whisper-live ({variant}) {model}"] = {
                "levels": levels, "max_sessions_under_target": largest_under_target(levels)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    report(result, RESULTS / f"{args.name}.md")
    plot(result, RESULTS / f"{args.name}.png")
    print((RESULTS / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
