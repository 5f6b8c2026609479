#!/usr/bin/env bash
# The GPU measurement, run on the lent GPU machine (Python 3.12, PyTorch with CUDA 13, no network) from the
# repository root, once the pieces made by benchmarks/gpu_bundle.sh lie in STASH (default /tmp/bundle):
#   bash benchmarks/gpu_session.sh [STASH] [SECONDS]
# PROFILE_ARGS / PROFILE_S and BENCH_ARGS override what the profile and the benchmark run (below).
# Unpacks them, makes CUDA 12's libcublas.so.12 resolve to the image's libcublas.so.13 (see gpu_bundle.sh),
# profiles the ASR in one process, then runs the benchmark on configs/gpu-embedded.yaml, each under its own
# time limit so that what was measured is written out even when the time runs out. Logs and results go to
# $OUT (the device tool's folder) if set, else to benchmarks/results.
set -uo pipefail
stash=${1:-/tmp/bundle}
budget=${2:-480}
out=${OUT:-benchmarks/results}
start=$SECONDS
mkdir -p /tmp/site "$out"
cat "$stash"/site.tar.xz.* | xz -d -T0 | tar x -C /tmp/site || exit 1
cat "$stash"/models.tar.xz.* | xz -d -T0 | tar x -C /tmp/site || exit 1
cuda12=/tmp/cuda12
mkdir -p $cuda12
cublas=$(find /usr/local/cuda*/ /opt -name 'libcublas.so.13*' 2>/dev/null | head -1)
ln -sf "$cublas" $cuda12/libcublas.so.12
libs=$cuda12
for d in $(find /usr/local/cuda*/ /opt -name 'libcublas*.so.13' -o -name 'libcudnn.so.9*' 2>/dev/null | xargs -r -n1 dirname | sort -u); do
  libs=$libs:$d
done
export LD_LIBRARY_PATH=$libs:${LD_LIBRARY_PATH:-} PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 PYTHONUNBUFFERED=1
echo "unpacked in $((SECONDS - start)) s; LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 2 >"$out/nvidia-smi.csv" &
smi=$!

timeout -k 10 -s INT "${PROFILE_S:-100}" python3 -m benchmarks.profile_asr --config configs/gpu-embedded.yaml \
  --name gpu-h100 ${PROFILE_ARGS:---batch-sizes 8 16 --compute-types float16 int8_float16} 2>&1 | tee "$out/profile.log"
cp benchmarks/results/gpu-h100-profile.json "$out/" 2>/dev/null

left=$((budget - (SECONDS - start) - 20))
echo "benchmark: $left s left"
timeout -k 20 -s INT $left python3 -m benchmarks.run --config configs/gpu-embedded.yaml --name gpu-h100 \
  ${BENCH_ARGS:---runs 1 --peers} 2>&1 | tee "$out/benchmark.log"
kill $smi
for f in benchmarks/results/gpu-h100.json benchmarks/results/gpu-h100.md benchmarks/results/gpu-h100.png \
         benchmarks/results/gpu-h100.partial.json; do
  [ -f "$f" ] && cp "$f" "$out/"
done
ls -l "$out"
