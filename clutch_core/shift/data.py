"""Motion clips for the tokenizers: read once from the shards (storage.reader, Arrow), kept as tensors.

All frames of a split live in one [F, 198] tensor with per-clip offsets (no padding,
no second copy of the dataset on disk). Training draws random fixed-length windows;
evaluation and token extraction take whole clips, grouped by padded length so
padding never changes a clip's result.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from clutch_core.hands.motion import MotionStats
from storage.schema import column_to_numpy


@dataclass
class MotionClips:
    clip_ids: list[str]
    motion: torch.Tensor  # [F, 198] float32, frames of all clips concatenated
    presence: torch.Tensor  # [F, 2] bool
    offsets: torch.Tensor  # [n + 1] int64: clip i is frames offsets[i]:offsets[i+1]

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def normalized(self, stats: MotionStats) -> "MotionClips":
        """Normalized copy; absent hands are set to 0 (the mean), so they carry no signal into the encoders."""
        x = stats.normalize(self.motion)
        x = x * self.presence.repeat_interleave(99, dim=-1)
        return MotionClips(self.clip_ids, x, self.presence, self.offsets)


def load_clips(dataset: str | os.PathLike, split: str | None = None,
               clip_ids: Sequence[str] | None = None) -> MotionClips:
    """Motion and presence of the clips of one split (or given ids) of a dataset folder."""
    from storage.reader import ClipReader

    reader = ClipReader(dataset, threads=1)  # one pass per call; see docs/shift.md
    ids = list(clip_ids) if clip_ids is not None else reader.clip_ids(split)
    table = reader.read_table(ids, columns=["clip_id", "motion", "presence"])
    motion = column_to_numpy(table.column("motion"), "motion")
    presence = column_to_numpy(table.column("presence"), "presence")
    lengths = [len(m) for m in motion]
    return MotionClips(
        clip_ids=table.column("clip_id").to_pylist(),
        motion=torch.from_numpy(np.concatenate(motion) if motion else np.zeros((0, 198), np.float32)),
        presence=torch.from_numpy(np.concatenate(presence) if presence else np.zeros((0, 2), np.bool_)),
        offsets=torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64),
    )


def fit_stats(clips: MotionClips) -> MotionStats:
    """Mean/std per dimension over present frames only."""
    if not bool(clips.presence.any()):
        raise ValueError("no frame with a present hand: cannot fit normalization statistics")
    return MotionStats.fit(clips.motion, clips.presence)


class WindowSampler:
    """Random windows of `window` frames; clips are drawn uniformly, start uniformly in the clip.

    A clip shorter than the window is padded with absent frames. Step k's global batch of
    batch * world windows depends only on (seed, k); rank r takes rows [r * batch, (r + 1) * batch).
    So a resumed run sees exactly the batches it would have seen, and N processes at batch B/N
    train on the same windows as one process at batch B.
    """

    def __init__(self, clips: MotionClips, window: int, batch: int, seed: int = 0, rank: int = 0, world: int = 1):
        if len(clips) == 0:
            raise ValueError("no training clips")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world} processes")
        self.clips, self.window, self.batch, self.seed = clips, window, batch, seed
        self.rank, self.world = rank, world
        # one zero frame appended: padding reads it, so a window is a single gather
        self._motion = torch.cat([clips.motion, clips.motion.new_zeros(1, clips.motion.shape[1])])
        self._presence = torch.cat([clips.presence, clips.presence.new_zeros(1, 2)])

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> motion [B, W, 198], presence [B, W, 2]: this rank's rows of training step `step`."""
        g = torch.Generator().manual_seed((self.seed * 1_000_003 * 1_000_000_007 + step) % 2**63)
        n, total = len(self.clips), self.batch * self.world
        ci = torch.randint(0, n, (total,), generator=g)
        room = (self.clips.lengths[ci] - self.window).clamp_min(0) + 1
        start = (torch.rand(total, generator=g) * room).long()
        mine = slice(self.rank * self.batch, (self.rank + 1) * self.batch)
        ci, start = ci[mine], start[mine] + self.clips.offsets[ci[mine]]
        lengths = self.clips.lengths[ci]
        frame = start[:, None] + torch.arange(self.window)[None]  # [B, W]
        inside = frame < (self.clips.offsets[ci] + lengths)[:, None]
        frame = torch.where(inside, frame, torch.full_like(frame, self._motion.shape[0] - 1))
        return self._motion[frame], self._presence[frame]


def clip_batches(clips: MotionClips, stride: int, max_batch: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Whole clips padded to a multiple of `stride`, batched among clips of the same padded length.

    Yields (clip indices, motion [b, T, 198], presence [b, T, 2]); padding frames are absent.
    """
    lengths = clips.lengths.tolist()
    padded = [-(-n // stride) * stride for n in lengths]
    by_len: dict[int, list[int]] = {}
    for i, t in enumerate(padded):
        by_len.setdefault(t, []).append(i)
    for t, members in sorted(by_len.items()):
        for k in range(0, len(members), max_batch):
            idx = members[k:k + max_batch]
            x = clips.motion.new_zeros(len(idx), t, clips.motion.shape[1])
            p = torch.zeros(len(idx), t, 2, dtype=torch.bool)
            for j, i in enumerate(idx):
                a, b = int(clips.offsets[i]), int(clips.offsets[i + 1])
                x[j, : b - a], p[j, : b - a] = clips.motion[a:b], clips.presence[a:b]
            yield idx, x, p
