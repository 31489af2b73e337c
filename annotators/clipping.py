"""Cut a video's 15 fps timeline into clips: narration segments, else hand-present spans.

Reading the video (probe, readers, resampling) lives in clutch_core.video.
"""
from __future__ import annotations

import math
from typing import Protocol, Sequence

import numpy as np

from layout import FPS


class ClipPolicy(Protocol):
    """How clips are cut (the annotators' settings of that name; lengths in frames at layout.FPS)."""

    min_s: float  # shorter clips are dropped
    max_frames: int  # longer spans are split into near-equal windows
    merge_gap_frames: int  # hand-free gaps up to this long do not split a span


def min_frames(policy: ClipPolicy) -> int:
    return max(1, math.ceil(policy.min_s * FPS - 1e-9))


def presence_spans(present: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """[start, end) runs of True, joining runs separated by at most merge_gap False frames."""
    spans: list[list[int]] = []
    for k in np.flatnonzero(present):
        if spans and k - spans[-1][1] <= merge_gap:
            spans[-1][1] = int(k) + 1
        else:
            spans.append([int(k), int(k) + 1])
    return [(a, b) for a, b in spans]


def split_windows(start: int, end: int, max_frames: int) -> list[tuple[int, int]]:
    """Split [start, end) into the fewest near-equal windows of at most max_frames."""
    n = end - start
    if n <= 0:
        return []
    parts = math.ceil(n / max_frames)
    edges = [start + round(i * n / parts) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def plan_clips(
    num_frames: int,
    present: np.ndarray,
    policy: ClipPolicy,
    segments: Sequence[tuple[float, float, str]] | None = None,
) -> tuple[list[tuple[int, int, str | None]], list[tuple[str, int]]]:
    """Clips as (start, end, narration or None) in output frames, plus (reason, count) drops.

    With narration segments, clips follow the segments (long ones split into windows);
    otherwise they follow hand-present spans.
    """
    windows: list[tuple[int, int, str | None]] = []
    if segments:
        for a_s, b_s, text in segments:
            a = max(0, int(round(a_s * FPS)))
            b = min(num_frames, int(round(b_s * FPS)))
            windows += [(x, y, text) for x, y in split_windows(a, b, policy.max_frames)]
    else:
        for a, b in presence_spans(present, policy.merge_gap_frames):
            windows += [(x, y, None) for x, y in split_windows(a, b, policy.max_frames)]
    keep = [w for w in windows if w[1] - w[0] >= min_frames(policy)]
    dropped = [("too_short", len(windows) - len(keep))] if len(keep) < len(windows) else []
    if not segments and not windows:
        dropped.append(("no_hands", 1))
    return keep, dropped
