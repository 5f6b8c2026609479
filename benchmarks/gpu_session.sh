#!/usr/bin/env bash
# The GPU measurement, run on the lent GPU machine (Python 3.12, PyTorch with CUDA 13, no network) from the
# repository root, once the pieces made by benchmarks/gpu_bundle.sh lie in STASH (default /tmp/bundle):
#   bash benchmarks/gpu_session.sh [STASH] [SECONDS]
# PROFILE_ARGS / PROFILE_S, DIAR_ARGS / DIAR_S and BENCH_ARGS override what the profiles and the benchmark
# run (below); a time of 0 skips that profile.
# Unpacks them, makes CUDA 12's libcublas.so.12 resolve to the image's libcublas.so.13 (see gpu_bundle.sh),
# profiles the ASR and the diarization in one process each, then runs the benchmark on
# configs/gpu-embedded.yaml, each under its own time limit so that what was measured is written out even when
# the time runs out. The log (session.log) and results go to $OUT (the device tool's folder, which takes 8
# files) if set, else to benchmarks/results.
set -uo pipefail
stash=${1:-/tmp/bundle}
budget=${2:-480}
out=${OUT:-benchmarks/results}
start=$SECONDS
mkdir -p /tmp/site "$out"
# This copy of the tree holds the last committed GPU results: a run stopped early must not send them back.
rm -f benchmarks/results/gpu-h100*
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

log=$out/session.log
if [ "${PROFILE_S:-100}" != 0 ]; then
  echo "### python -m benchmarks.profile_asr ${PROFILE_ARGS:-}" | tee -a "$log"
  timeout -k 10 -s INT "${PROFILE_S:-100}" python3 -m benchmarks.profile_asr --config configs/gpu-embedded.yaml \
    --name gpu-h100 ${PROFILE_ARGS:---batch-sizes 8 16 --compute-types float16 int8_float16} 2>&1 | tee -a "$log"
fi
if [ "${DIAR_S:-90}" != 0 ]; then
  echo "### python -m benchmarks.profile_diarization ${DIAR_ARGS:-}" | tee -a "$log"
  timeout -k 10 -s INT "${DIAR_S:-90}" python3 -m benchmarks.profile_diarization --config configs/gpu-embedded.yaml \
    --name gpu-h100 ${DIAR_ARGS:---batch-sizes 32 128} 2>&1 | grep -v -i warn | tee -a "$log"
fi

left=$((budget - (SECONDS - start) - 20))
echo "### benchmark: $left s left; ${BENCH_ARGS:-}" | tee -a "$log"
if [ $left -ge 60 ]; then  # (timeout 0 would mean no limit)
  timeout -k 20 -s INT $left python3 -m benchmarks.run --config configs/gpu-embedded.yaml --name gpu-h100 \
    ${BENCH_ARGS:---runs 1 --peers} 2>&1 | tee -a "$log"
fi
kill $smi
for f in benchmarks/results/gpu-h100-profile.json benchmarks/results/gpu-h100-diarization-profile.json \
         benchmarks/results/gpu-h100.json benchmarks/results/gpu-h100.md benchmarks/results/gpu-h100.png \
         benchmarks/results/gpu-h100.partial.json; do
  [ -f "$f" ] && cp "$f" "$out/"
done
ls -l "$out"
