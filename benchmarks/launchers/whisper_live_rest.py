"""whisper-live 0.10.0's OpenAI-compatible REST server, on 127.0.0.1 only, with our model and thread count.

Run by the whisper-live venv's python (benchmarks/peers.py). The wheel has no launcher script, and its
`TranscriptionServer.run()` binds the REST app to 0.0.0.0 and starts a WebSocket server too; so this builds
the same REST app with `build_rest_app` (faster-whisper backend, custom model path) and serves only that,
on loopback. The model is loaded up front with the same device, compute type and CPU threads as ours (its
loader would pick int8 on CPU but faster-whisper's default thread count).
"""

import argparse

import uvicorn
from faster_whisper import WhisperModel
from whisper_live.server import ClientManager, TranscriptionServer

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--cpu-threads", type=int, default=2)
args = parser.parse_args()

server = TranscriptionServer()
server.client_manager = ClientManager()  # what /health reports
server.default_model = args.model  # what `run(faster_whisper_custom_model_path=...)` sets
server.rest_models[args.model] = WhisperModel(args.model, device="cpu", compute_type="int8", cpu_threads=args.cpu_threads)
app = server.build_rest_app("faster_whisper", faster_whisper_custom_model_path=args.model)
uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
