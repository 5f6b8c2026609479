"""The benchmark's own accounting: where the CPU went during a load level, and the diarization profile's
split of a run at pyannote's hooks."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.measure import busy_cores, cpu_seconds
from benchmarks.profile_diarization import HookClock
from benchmarks.report import derive, markdown


def test_cpu_seconds_are_summed_by_what_each_process_is():
    before = cpu_seconds()
    # A child that burns about half a second of CPU, and this process burning some too.
    child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                              "while time.process_time() - t < 0.5: pass\ntime.sleep(5)"])
    try:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        time.sleep(0.8)  # the child's burn ends; it sleeps, still listed
        after = cpu_seconds()
    finally:
        child.kill()
        child.wait()
    key = f"{Path(sys.executable).name} -c"  # python, python3, ...: the program, then what it runs
    assert after.get(key, 0) - before.get(key, 0) >= 0.4
    assert after["benchmark (HTTP clients)"] - before["benchmark (HTTP clients)"] >= 0.25


def test_busy_cores_takes_the_median_over_runs_and_drops_the_idle():
    runs = [{"ASR": 1.4, "Ingress": 0.02, "raylet": 0.004}, {"ASR": 1.6, "Ingress": 0.04}, {"ASR": 1.5}]
    assert busy_cores(runs) == {"total": 1.52, "ASR": 1.5, "Ingress": 0.02}


def test_the_hook_clock_splits_a_run_at_each_stage_s_last_hook():
    clock = HookClock()
    clock.start()
    t0 = clock.start_at
    clock("segmentation", None)
    clock("speaker_counting", None)
    clock("embeddings", None, total=2, completed=0)
    clock("embeddings", "batch", total=2, completed=1)
    clock("embeddings", "batch", total=2, completed=2)
    clock("embeddings", "all")
    clock("discrete_diarization", None)
    # Fixed times instead of the clock's, so the split can be checked exactly.
    clock.last = {"segmentation": t0 + 1, "speaker_counting": t0 + 1.5, "embeddings": t0 + 4,
                  "discrete_diarization": t0 + 4.25}
    assert clock.embedding_batches == 2
    assert clock.stages(t0 + 5) == {"segmentation": 1, "speaker counting": 0.5, "embeddings": 2.5,
                                    "clustering + reconstruction": 0.25, "output (annotations)": 0.75}


@pytest.mark.parametrize("name", ["dev-cpu-runs2", "gpu-h100"])
def test_the_report_rebuilds_a_stored_result_exactly(name):
    """Targets are data (benchmarks/targets.json): deriving them again from a stored run's measurements gives
    the stored verdicts, and the markdown is the stored one."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    r = json.loads((results / f"{name}.json").read_text())
    stored = dict(r.pop("targets"))
    derive(r)
    assert r["targets"] == stored
    assert markdown(r) == (results / f"{name}.md").read_text()
