"""whisper-live 0.10.0's own realtime WebSocket server, on 127.0.0.1 only, with our model directory.

Run by the whisper-live venv's python (benchmarks/peers.py). One model shared by every client
(`single_model`), its own Silero VAD per client; `--batch` turns on its cross-client batching
(`batch_enabled`). `/health` is served on a second port for the benchmark's start-up check.
"""

import argparse
import threading

import uvicorn
from fastapi import FastAPI
from whisper_live.server import TranscriptionServer

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--health-port", type=int, required=True)
parser.add_argument("--batch", action="store_true")
args = parser.parse_args()

health = FastAPI()
health.get("/health")(lambda: {"status": "ok"})
threading.Thread(target=uvicorn.run, args=(health,), kwargs={"host": "127.0.0.1", "port": args.health_port,
                                                              "log_level": "warning"}, daemon=True).start()
TranscriptionServer().run("127.0.0.1", port=args.port, backend="faster_whisper",
                          faster_whisper_custom_model_path=args.model, single_model=True, max_clients=64,
                          max_connection_time=3600, batch_enabled=args.batch)
