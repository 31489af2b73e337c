"""Tokenizer reconstruction row: encode -> quantize -> decode every evaluation clip.

The model runs through `clutch_core.shift.evaluate.reconstruct_batches`, the same code
that writes RUN/shift/metrics.json: input normalized, absent hands and padding zeroed,
clips batched only with clips of the same padded length. So on the same split the row's
MPJPE is the run's `val_mpjpe_mm`, and no clip's result depends on its batch mates.

Joint errors compare forward kinematics of the reconstructed motion with forward
kinematics of the input motion (same rest skeleton), so they measure the tokenizer alone,
not the tracker's IK. The tokenizer does not model presence: the clip's own presence
mask is kept and every metric is masked by it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from clutch_core.eval import metrics as M
from layout import FRAME_DIM
from layout.run import SHIFT_DIR, TOKENIZER_CONFIG

RECON_BATCH = 64


@dataclass
class Reconstruction:
    motions: list[np.ndarray]  # [T_i, 198] per clip
    metrics: dict[str, float]  # pooled mpjpe_mm, pa_mpjpe_mm, accel_error_mm
    artifacts: dict[str, Any] = field(default_factory=dict)  # per-clip errors, code counts


@dataclass
class RunTokenizer:
    model: Any  # clutch_core.shift.model.MotionTokenizer, eval mode
    stats: Any  # clutch_core.hands.motion.MotionStats


def load_run_tokenizer(run: Path) -> RunTokenizer | None:
    """The run's trained tokenizer (RUN/shift/), or None when the run has none yet."""
    from clutch_core.shift.checkpoint import load_tokenizer

    folder = Path(run) / SHIFT_DIR
    if not (folder / TOKENIZER_CONFIG).is_file():
        return None
    model, stats, _ = load_tokenizer(folder)
    return RunTokenizer(model, stats)


def as_motion_clips(motions: Sequence[np.ndarray], presences: Sequence[np.ndarray]):
    """Per-clip arrays -> clutch_core.shift.data.MotionClips (frames concatenated)."""
    from clutch_core.shift.data import MotionClips

    lengths = [len(m) for m in motions]
    for i, (m, p) in enumerate(zip(motions, presences)):
        if np.shape(m) != (len(m), FRAME_DIM) or len(p) != len(m):
            raise ValueError(f"clip {i}: motion {np.shape(m)} / presence {np.shape(p)}, expected [T, {FRAME_DIM}] / [T, 2]")
    return MotionClips(
        clip_ids=[str(i) for i in range(len(motions))],
        motion=torch.from_numpy(np.concatenate([np.asarray(m, np.float32) for m in motions])),
        presence=torch.from_numpy(np.concatenate([np.asarray(p, bool) for p in presences])),
        offsets=torch.tensor(np.concatenate([[0], np.cumsum(lengths)]), dtype=torch.int64),
    )


@torch.no_grad()
def reconstruct(tok: RunTokenizer, motions: Sequence[np.ndarray], presences: Sequence[np.ndarray],
                batch: int = RECON_BATCH) -> Reconstruction:
    """Reconstruct every clip as training evaluates it, pool joint errors, count codes."""
    from clutch_core.hands.motion import motion_to_joints
    from clutch_core.shift.evaluate import code_histograms, count_codes, reconstruct_batches

    model, stats = tok.model, tok.stats
    clips = as_motion_clips(motions, presences)
    recs: list[np.ndarray | None] = [None] * len(motions)
    counts = code_histograms(model)
    for idx, rec, _, _, out in reconstruct_batches(model, stats, clips, batch):
        for j, i in enumerate(idx):
            recs[i] = rec[j, : len(motions[i])].numpy().astype(np.float32)
        count_codes(model, out.tokens, out.latent_presence, counts)
    errors, per_clip = [], []
    for rec, m, pr in zip(recs, motions, presences):
        pj = motion_to_joints(torch.from_numpy(rec)).numpy()
        gj = motion_to_joints(torch.from_numpy(np.array(m, np.float32))).numpy()
        e = M.reconstruction_errors(pj, gj, pr)
        errors.append(e)
        per_clip.append((len(m), float(e["mpjpe_mm"].mean()) if e["mpjpe_mm"].size else float("nan")))
    code_counts = {c: v.numpy().astype(np.int64) for c, v in counts.items()}
    return Reconstruction(recs, M.pool_errors(errors), {"per_clip_mpjpe": per_clip, "code_counts": code_counts})
