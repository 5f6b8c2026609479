"""Cut one request's audio into windows of at most 30 s along the speech that VAD found."""

from __future__ import annotations

from typing import Sequence

Span = tuple[int, int]  # [start, end) in samples


def plan_windows(speech: Sequence[Span], max_samples: int) -> list[Span]:
    """Group consecutive speech spans into windows no longer than `max_samples`.

    A window runs from its first span's start to its last span's end, keeping the pauses inside
    it (Whisper reads them as pauses, and timestamps stay simple offsets). Silence between windows
    is never decoded, which is also what keeps Whisper from hallucinating on it. A span longer
    than `max_samples` is split into pieces (the VAD is asked not to produce them).
    """
    windows: list[Span] = []
    cur_start: int | None = None
    cur_end = 0
    for start, end in speech:
        if end <= start:
            continue
        while end - start > max_samples:  # defensive: never feed Whisper more than 30 s
            if cur_start is not None:
                windows.append((cur_start, cur_end))
                cur_start = None
            windows.append((start, start + max_samples))
            start += max_samples
        if cur_start is None:
            cur_start, cur_end = start, end
        elif end - cur_start <= max_samples:
            cur_end = end
        else:
            windows.append((cur_start, cur_end))
            cur_start, cur_end = start, end
    if cur_start is not None:
        windows.append((cur_start, cur_end))
    return windows
