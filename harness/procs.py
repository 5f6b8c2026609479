"""The service's processes on this machine, read from /proc: which Serve replica (or Ray's HTTP proxy) a
process is, and how much memory each holds."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional


def serve_replica(title: str) -> Optional[str]:
    """The Serve replica a process's command line names ("speech:Ingress"), or None for any other process.
    Ray retitles a replica's process with the method it runs ("speech:Ingress.handle_request_with_rejection"):
    one replica, one name."""
    if "ServeReplica:" not in title:
        return None
    return title.split("ServeReplica:", 1)[1].split()[0].split(".", 1)[0]


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, argv) of every process that can be read."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        yield int(proc.name), argv


def replica_pids(deployment: str) -> list[int]:
    """The pids of every replica of `deployment` ("AudioDecoder"), whatever the app."""
    return [pid for pid, argv in processes() if (serve_replica(" ".join(argv)) or "").endswith(f":{deployment}")]


def replica_memory() -> dict[str, dict[str, float]]:
    """Memory of every Ray Serve replica process (and Serve's HTTP proxy, "proxy") on this machine, in MB, by
    replica: `rss` (resident) and `private` (without the shared-memory pages it has touched, RssShmem: those
    are Ray's object store, and a replica that writes a 100 MB result there shows it in its RSS until the
    store reuses the pages)."""
    out: dict[str, dict[str, float]] = {}
    for pid, argv in processes():
        title = " ".join(argv)
        name = serve_replica(title) or ("proxy" if "ray::ProxyActor" in title else None)
        if name is None:
            continue
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
            status = dict(line.split(":", 1) for line in lines if ":" in line)
            rss_kb = int(status["VmRSS"].split()[0])
            shared_kb = int(status["RssShmem"].split()[0])
        except (OSError, KeyError, IndexError, ValueError):
            continue
        key = name if name not in out else f"{name}#{pid}"
        out[key] = {"rss": round(rss_kb / 1024, 1), "private": round((rss_kb - shared_kb) / 1024, 1)}
    return out


def replica_memory_mb() -> dict[str, float]:
    """Resident memory (RSS) of every Ray Serve replica process on this machine, by replica."""
    return {k: v["rss"] for k, v in replica_memory().items()}
