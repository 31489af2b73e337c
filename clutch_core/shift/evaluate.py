"""Reconstruction metrics of a tokenizer, in joint space through FK on the 21-joint skeleton.

Reference joints are FK of the input motion (what the tokenizer was asked to
reproduce), not the stored tracker joints, so the numbers measure the tokenizer only.
Only present hand-frames count. Definitions (millimetres):
  mpjpe       mean over present hand-frames and 21 joints of |j_rec - j_ref| (camera frame,
              translation included)
  mpjpe_traj  wrist (joint 0) position error: the hand's trajectory
  mpjpe_pose  error of wrist-relative joints (j - j_wrist): articulation and orientation
Codebook statistics are over the latent steps where the hand (any hand, for the
VQ-VAE baseline) is present: perplexity = exp(entropy of code use), usage = share of
the codebook used at least once.
"""
from __future__ import annotations

import torch

from clutch_core.hands.motion import MotionStats, motion_to_joints
from clutch_core.shift.data import MotionClips, clip_batches
from clutch_core.shift.model import MotionTokenizer, SHIFT
from clutch_core.shift.quantizer import perplexity


@torch.no_grad()
def evaluate(model: MotionTokenizer, stats: MotionStats, clips: MotionClips, batch: int = 64,
             device: str | torch.device = "cpu") -> dict:
    """clips: raw (not normalized) motion. Returns the metrics dict written to metrics.json."""
    was_training = model.training
    model.eval()
    norm = clips.normalized(stats)
    sums = torch.zeros(3, dtype=torch.float64)  # mpjpe, traj, pose (summed over hand-frames)
    n = 0
    counts = {c: torch.zeros(model.cfg.codes, dtype=torch.float64) for c in model.codebooks}
    for idx, x, p in clip_batches(norm, model.cfg.stride, batch):
        out = model(x.to(device), p.to(device))
        rec = stats.denormalize(out.recon.float().cpu())
        ref = torch.zeros_like(rec)
        for j, i in enumerate(idx):  # reference: the raw input frames
            a, b = int(clips.offsets[i]), int(clips.offsets[i + 1])
            ref[j, : b - a] = clips.motion[a:b]
        jr, jg = motion_to_joints(rec), motion_to_joints(ref)  # [b, T, 2, 21, 3]
        err = (jr - jg).norm(dim=-1)  # [b, T, 2, 21]
        rel = ((jr - jr[..., :1, :]) - (jg - jg[..., :1, :])).norm(dim=-1)
        m = p.double()  # [b, T, 2]
        sums += torch.stack([(err.double().mean(-1) * m).sum(), (err[..., 0].double() * m).sum(),
                             (rel.double().mean(-1) * m).sum()])
        n += int(p.sum())
        _count_codes(model, out.tokens.cpu(), out.latent_presence.cpu(), counts)
    model.train(was_training)
    mm = (sums / max(n, 1) * 1000.0).tolist()
    return {
        "val_mpjpe_mm": mm[0], "val_mpjpe_traj_mm": mm[1], "val_mpjpe_pose_mm": mm[2],
        "val_clips": len(clips), "val_hand_frames": n,
        "perplexity": {c: float(perplexity(v)) for c, v in counts.items()},
        "codebook_usage": {c: float((v > 0).double().mean()) for c, v in counts.items()},
    }


def _count_codes(model: MotionTokenizer, tokens: torch.Tensor, lp: torch.Tensor, counts: dict) -> None:
    """Add the codes of present latents to per-codebook histograms."""
    if isinstance(model, SHIFT):  # streams: left_traj, left_pose, right_traj, right_pose
        for s, (book, hand) in enumerate([("traj", 0), ("pose", 0), ("traj", 1), ("pose", 1)]):
            counts[book] += torch.bincount(tokens[..., s][lp[..., hand]], minlength=model.cfg.codes).double()
    else:
        counts["frame"] += torch.bincount(tokens[..., 0][lp.any(-1)], minlength=model.cfg.codes).double()
