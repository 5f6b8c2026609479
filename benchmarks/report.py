"""The benchmark's report: ratios and targets derived from the medians (the thresholds are data, in
benchmarks/targets.json), the markdown table and the plot."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = json.loads((Path(__file__).resolve().parent / "targets.json").read_text())


def derive(r: dict) -> None:
    """Ratios and the issue's targets, from the medians."""
    ours = r["service"]
    limit = r["in_process"]["limit_audio_s_per_s"]["median"]
    ours["overhead_ratio"] = round(ours["service_30s_s"]["median"] / r["in_process"]["floor_30s_s"]["median"], 3)
    inter = ours["interleaved"]
    inter["overhead_ratio"] = round(inter["service_30s_s"]["median"] / inter["floor_30s_s"]["median"], 3)
    plain = ours["variants"].get("plain", {})
    sequential = plain.get("1")  # a run without c=1 has no "vs c=1" (not the lowest level instead)
    for c, level in plain.items():
        level["fraction_of_limit"] = round(level["audio_s_per_s"]["median"] / limit, 3)
        if sequential:
            level["vs_concurrency_1"] = round(level["audio_s_per_s"]["median"] / sequential["audio_s_per_s"]["median"], 3)
        for name, peer in r["peers"].items():
            theirs = peer.get("concurrency", {}).get(c)
            if theirs:
                level.setdefault("vs_peers", {})[name] = {
                    "throughput_ratio": round(level["audio_s_per_s"]["median"] / theirs["audio_s_per_s"]["median"], 3),
                    "p95_ratio": round(level["p95_s"]["median"] / theirs["p95_s"]["median"], 3),
                }
    t = TARGETS
    targets = {
        f"overhead ratio <= {t['overhead_ratio_max']:.2f} (floor measured alone, before the cluster starts)":
            ours["overhead_ratio"] <= t["overhead_ratio_max"],
        f"overhead ratio <= {t['overhead_ratio_max']:.2f} (floor beside the idle cluster, alternating)":
            inter["overhead_ratio"] <= t["overhead_ratio_max"],
    }
    if "8" in plain:
        targets[f"c=8 >= {t['c8_fraction_of_limit_min']:g} of the limit"] = (
            plain["8"]["fraction_of_limit"] >= t["c8_fraction_of_limit_min"])
        if sequential:
            targets[f"c=8 >= {t['c8_vs_c1_min']:g} x c=1"] = plain["8"]["vs_concurrency_1"] >= t["c8_vs_c1_min"]
    for c, level in plain.items():
        if int(c) >= t["peer_levels_from_concurrency"]:
            for name, v in level.get("vs_peers", {}).items():
                targets[f"c={c} vs {name}: >= {t['vs_peer_throughput_min']:g} x throughput"] = (
                    v["throughput_ratio"] >= t["vs_peer_throughput_min"])
                targets[f"c={c} vs {name}: <= {t['vs_peer_p95_max']:g} x p95"] = v["p95_ratio"] <= t["vs_peer_p95_max"]
    long = ours.get("long_audio")
    if long:
        rtf_30s = ours["service_30s_s"]["median"] / 30
        long["rtf_30s_clip"] = round(rtf_30s, 4)
        targets["60-min RTF <= 30 s clip RTF"] = long["rtf"] <= rtf_30s * t["long_file_rtf_vs_30s_clip_max"]
        # The decoder must hold the upload (16-bit PCM here: half the decoded size) beside the decoded audio.
        allowed = t["long_file_growth_vs_decoded_audio_max"] * long["decoded_audio_mb_per_hour"]
        for kind, field in (("RSS", "mb_per_audio_hour"), ("private memory", "private_mb_per_audio_hour")):
            grown = [v[field] for v in long["replicas"].values() if v.get("reference_peak_mb") and v.get(field) is not None]
            targets[f"60-min: every replica's peak {kind} grows <= {allowed:.0f} MB per audio hour "
                    f"(decoded audio + upload)"] = max(grown, default=0) <= allowed
    r["targets"] = targets


def markdown(r: dict) -> str:
    ours = r["service"]
    fl = r["in_process"]["floor_30s_s"]["median"]
    lines = [
        f"## {r['name']} ({r['config']}, {r['machine']})",
        "",
        f"Model {r['model']['name']} ({r['model']['compute_type']}, {r['model']['cpu_threads']} threads, batches of "
        f"up to {r['model']['max_batch_size']}); load mix {len(r['workload']['mix'])} requests, "
        f"{r['workload']['audio_s']:.0f} s of audio; medians of {r['workload']['runs']} runs.",
        "",
        f"- Overhead: one 30 s request {ours['service_30s_s']['median']:.2f} s through the graph vs {fl:.2f} s in "
        f"one process with nothing else running: ratio **{ours['overhead_ratio']:.2f}**. Alternating with the "
        f"same model in this process beside the idle cluster: {ours['interleaved']['service_30s_s']['median']:.2f} s "
        f"vs {ours['interleaved']['floor_30s_s']['median']:.2f} s, ratio **{ours['interleaved']['overhead_ratio']:.2f}**.",
        f"- Limit (all windows in batched calls, one process, best batch size: "
        f"{r['in_process']['limit_batch_size']}): {r['in_process']['limit_audio_s_per_s']['median']:.1f} audio s/s "
        f"(" + ", ".join(f"batches of {b}: {v['median']:.1f}" for b, v in r['in_process']['limit_by_batch_size'].items())
        + ").",
        f"- Cold start (`serve run` to the first 200): {ours['cold_start_s']:.0f} s.",
        f"- CPU in use while the service is up and idle (Ray's own processes): "
        f"{100 * ours['idle_cluster_cpu_fraction']:.0f}% of the machine.",
    ]
    long = ours.get("long_audio")
    if long:
        ref = long["reference"]
        mem = ", ".join(f"{k.split(':')[-1]} {v['before_mb']:.0f} -> {v['peak_mb']:.0f} MB "
                        f"({v['mb_per_audio_hour']:.0f} MB per audio hour; private "
                        f"{v['private_mb_per_audio_hour']:.0f})"
                        for k, v in long["replicas"].items() if v.get("before_mb") and v.get("reference_peak_mb")
                        and v.get("private_mb_per_audio_hour") is not None)
        lines.append(f"- {long['minutes']}-minute file: {long['wall_s']:.0f} s, RTF {long['rtf']:.3f} (30 s clip: "
                     f"{long['rtf_30s_clip']:.3f}; {ref['minutes']}-minute file: {ref['rtf']:.3f}). Each replica's "
                     f"memory before -> peak, and how much more the peak is than for the {ref['minutes']}-minute "
                     f"file, per extra audio hour (private: without the pages of Ray's shared-memory object store the "
                     f"replica touched): {mem}. The decoded audio itself is "
                     f"{long['decoded_audio_mb_per_hour']:.0f} MB per hour (float32, 16 kHz).")
    peers = [n for n, p in r["peers"].items() if "concurrency" in p]
    head = ("| concurrency | audio s / wall s (min-max) | of the limit | vs c=1 | p50 s | p95 s | p50 of 5 s clips "
            "| host: floor s |")
    sep = "|---|---|---|---|---|---|---|---|"
    for n in peers:
        head += f" {n}: audio s/s, p95 s, host: floor s | ours / {n}: throughput, p95 |"
        sep += "---|---|"
    lines += ["", "### Plain transcription (json), us against the limit and the peers", "", head, sep]
    plain = ours["variants"].get("plain", {})
    for c, level in plain.items():
        t = level["audio_s_per_s"]
        row = (f"| {c} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | {level['fraction_of_limit']:.2f} | "
               f"{_ratio(level.get('vs_concurrency_1'))} | {level['p50_s']['median']:.1f} | {level['p95_s']['median']:.1f} | "
               f"{level['p50_5s_clip_s']['median']:.1f} | {_probe(level)} |")
        for n in peers:
            theirs = r["peers"][n]["concurrency"][c]
            v = level["vs_peers"][n]
            row += (f" {theirs['audio_s_per_s']['median']:.1f}, {theirs['p95_s']['median']:.1f}, {_probe(theirs)} | "
                    f"{v['throughput_ratio']:.2f}x, {v['p95_ratio']:.2f}x |")
        lines.append(row)
    if any("cores_busy" in level for level in plain.values()):
        lines += ["", "### Where the CPU went (plain): cores kept busy during each level, by process", "",
                  "| concurrency | ours: total | ours: the 5 busiest | " + " | ".join(f"{n}: total, busiest" for n in peers)
                  + (" |" if peers else ""), "|---|---|---|" + "---|" * len(peers)]
        for c, level in plain.items():
            busy = dict(level.get("cores_busy", {}))
            total = busy.pop("total", 0.0)
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(busy.items())[:5])
            row = f"| {c} | {total:.2f} | {top} |"
            for n in peers:
                theirs = dict(r["peers"][n]["concurrency"][c].get("cores_busy", {}))
                if not theirs:
                    row += " - |"
                    continue
                their_total = theirs.pop("total")
                row += f" {their_total:.2f}, " + ", ".join(f"{k} {v:.2f}" for k, v in list(theirs.items())[:2]) + " |"
            lines.append(row)
    by_size = ours.get("plain_by_batch_size")
    if by_size:
        sizes = list(by_size)
        lines += ["", "### Plain, batch sizes alternated at each concurrency (`--batch-sizes`)", "",
                  "| concurrency | " + " | ".join(f"max_batch_size {b}: audio s/s, p95 s, p50 of 5 s clips, host: floor s, largest batch seen"
                                                  for b in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for c in by_size[sizes[0]]:
            cells = []
            for b in sizes:
                level = by_size[b][c]
                cells.append(f"{level['audio_s_per_s']['median']:.1f}, {level['p95_s']['median']:.1f}, "
                             f"{level['p50_5s_clip_s']['median']:.1f}, {_probe(level)}, {level['largest_batch']}")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "### Variants (ours)", "", "| variant | concurrency | audio s / wall s (min-max) | p50 s | p95 s | p50 of 5 s clips |",
              "|---|---|---|---|---|---|"]
    for variant, by_c in ours["variants"].items():
        for c, level in by_c.items():
            t = level["audio_s_per_s"]
            lines.append(f"| {variant} | {c} | {t['median']:.1f} ({t['min']:.1f}-{t['max']:.1f}) | "
                         f"{level['p50_s']['median']:.1f} | {level['p95_s']['median']:.1f} | "
                         f"{level['p50_5s_clip_s']['median']:.1f} |")
    lines += ["", "### Peers", ""]
    for n, p in r["peers"].items():
        if "error" in p:
            lines.append(f"- {n} ({p['version']}): **could not run**: {p['error'].splitlines()[0]}")
        else:
            lines.append(f"- {n} ({p['version']}): one 30 s request {p['service_30s_s']['median']:.2f} s; {p['differences']}.")
    lines += ["", "### Targets", ""]
    lines += [f"- {'met' if ok else '**missed**'}: {name}" for name, ok in r["targets"].items()]
    return "\n".join(lines) + "\n"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _probe(level: dict) -> str:
    p = level.get("probe_floor_30s_s")
    return f"{p['median']:.2f}" if p else "-"


def plot(r: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # optional: the JSON and the table carry the numbers
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for variant, by_c in r["service"]["variants"].items():
        xs = [int(c) for c in by_c]
        ax.plot(xs, [by_c[str(c)]["audio_s_per_s"]["median"] for c in xs], marker="o",
                linestyle="-" if variant == "plain" else ":", label=f"serve-app ({variant})")
    for name, peer in r["peers"].items():
        if "concurrency" in peer:
            xs = [int(c) for c in peer["concurrency"]]
            ax.plot(xs, [peer["concurrency"][str(c)]["audio_s_per_s"]["median"] for c in xs], marker="s",
                    linestyle="--", label=name)
    ax.axhline(r["in_process"]["limit_audio_s_per_s"]["median"], linestyle="--", color="gray", label="in-process limit")
    ax.set_xlabel("concurrent requests")
    ax.set_ylabel("audio seconds per wall second")
    ax.set_title(f"{r['name']}: {r['machine']}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
