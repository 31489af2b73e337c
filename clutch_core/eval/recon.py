"""Tokenizer reconstruction: encode -> quantize -> decode every evaluation clip.

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
from storage.schema import FRAME_DIM


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
    from clutch_core.shift.checkpoint import CONFIG, load_tokenizer

    folder = Path(run) / "shift"
    if not (folder / CONFIG).is_file():
        return None
    model, stats, _ = load_tokenizer(folder)
    return RunTokenizer(model, stats)


@torch.no_grad()
def reconstruct(tok: RunTokenizer, motions: Sequence[np.ndarray], presences: Sequence[np.ndarray], batch: int = 32) -> Reconstruction:
    """Reconstruct every clip (padded to the tokenizer stride), pool joint errors, count codes."""
    from clutch_core.hands.motion import motion_to_joints
    from clutch_core.shift.evaluate import _count_codes  # the tokenizer's own code statistics

    model, stats = tok.model.eval(), tok.stats
    stride = model.cfg.stride
    recs: list[np.ndarray] = []
    counts = {c: torch.zeros(model.cfg.codes, dtype=torch.float64) for c in model.codebooks}
    for s in range(0, len(motions), batch):
        ms, ps = motions[s:s + batch], presences[s:s + batch]
        lengths = [len(m) for m in ms]
        tmax = -(-max(lengths) // stride) * stride
        x = torch.zeros(len(ms), tmax, FRAME_DIM)
        p = torch.zeros(len(ms), tmax, 2, dtype=torch.bool)  # padding counts as absent
        for i, (m, pr) in enumerate(zip(ms, ps)):
            x[i, : len(m)] = torch.from_numpy(np.array(m, np.float32))
            p[i, : len(pr)] = torch.from_numpy(np.array(pr, bool))
        out = model(stats.normalize(x), p)
        rec = stats.denormalize(out.recon.float()).numpy()
        recs += [rec[i, :n].astype(np.float32) for i, n in enumerate(lengths)]
        _count_codes(model, out.tokens, out.latent_presence, counts)
    errors, per_clip = [], []
    for rec, m, pr in zip(recs, motions, presences):
        pj = motion_to_joints(torch.from_numpy(rec)).numpy()
        gj = motion_to_joints(torch.from_numpy(np.array(m, np.float32))).numpy()
        e = M.reconstruction_errors(pj, gj, pr)
        errors.append(e)
        per_clip.append((len(m), float(e["mpjpe_mm"].mean()) if e["mpjpe_mm"].size else float("nan")))
    code_counts = {c: v.numpy().astype(np.int64) for c, v in counts.items()}
    return Reconstruction(recs, M.pool_errors(errors), {"per_clip_mpjpe": per_clip, "code_counts": code_counts})

