"""Reconstruction metrics of a tokenizer, in joint space through FK on the 21-joint skeleton.

Reference joints are FK of the input motion (what the tokenizer was asked to
reproduce), not the stored tracker joints, so the numbers measure the tokenizer only.
Only present hand-frames count. Definitions (millimetres):
  mpjpe       mean over present hand-frames and 21 joints of |j_rec - j_ref| (camera frame,
              translation included)
  mpjpe_traj  wrist (joint 0) position error: the hand's trajectory
  mpjpe_pose  error of wrist-relative joints (j - j_wrist): articulation and orientation
  accel_error mean over joints of |a_rec - a_ref|, a = second difference over frames
              (mm / frame^2), on hand-frames whose two neighbours are present too
Codebook statistics are over the latent steps where the hand (any hand, for the
whole-frame tokenizers) is present: perplexity = exp(entropy of code use), usage =
share of the codebook used at least once.

`reconstruct_batches` is the one way to run a tokenizer on whole clips: normalize, zero
absent hands and padding (exactly as training feeds it), batch clips of equal padded
length (so a clip's result never depends on the other clips). `clutch eval` uses it too.
"""
from __future__ import annotations

from typing import Iterator

import torch

from clutch_core.hands.motion import MotionStats, motion_to_joints
from clutch_core.shift.data import MotionClips, clip_batches
from clutch_core.shift.model import MotionTokenizer, SHIFT, TokenizerOutput
from clutch_core.shift.quantizer import perplexity


@torch.no_grad()
def reconstruct_batches(model: MotionTokenizer, stats: MotionStats, clips: MotionClips, batch: int = 64,
                        device: str | torch.device = "cpu"
                        ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor, TokenizerOutput]]:
    """clips: raw motion. Yields (clip indices, reconstruction [b, T, 198] raw units, reference
    [b, T, 198] raw input, presence [b, T, 2] with padding absent, model output on CPU)."""
    was_training = model.training
    model.eval()
    try:
        norm = clips.normalized(stats)  # absent hands -> 0, as in training
        for idx, x, p in clip_batches(norm, model.cfg.stride, batch):
            out = model(x.to(device), p.to(device))
            out = TokenizerOutput(*(v.cpu() if torch.is_tensor(v) else v for v in out))
            rec = stats.denormalize(out.recon.float())
            ref = torch.zeros_like(rec)
            for j, i in enumerate(idx):  # reference: the raw input frames
                a, b = int(clips.offsets[i]), int(clips.offsets[i + 1])
                ref[j, : b - a] = clips.motion[a:b]
            yield idx, rec, ref, p, out
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(model: MotionTokenizer, stats: MotionStats, clips: MotionClips, batch: int = 64,
             device: str | torch.device = "cpu") -> dict:
    """clips: raw (not normalized) motion. Returns the metrics dict written to metrics.json."""
    sums = torch.zeros(4, dtype=torch.float64)  # mpjpe, traj, pose (over hand-frames), accel
    n, n_acc = 0, 0
    counts = code_histograms(model)
    for idx, rec, ref, p, out in reconstruct_batches(model, stats, clips, batch, device):
        jr, jg = motion_to_joints(rec), motion_to_joints(ref)  # [b, T, 2, 21, 3]
        err = (jr - jg).norm(dim=-1)  # [b, T, 2, 21]
        rel = ((jr - jr[..., :1, :]) - (jg - jg[..., :1, :])).norm(dim=-1)
        acc = lambda j: j[:, 2:] - 2 * j[:, 1:-1] + j[:, :-2]  # noqa: E731  [b, T-2, 2, 21, 3]
        m = p.double()  # [b, T, 2]
        ma = (p[:, 2:] & p[:, 1:-1] & p[:, :-2]).double()
        acc_err = (acc(jr) - acc(jg)).norm(dim=-1).double().mean(-1)  # [b, T-2, 2]
        sums += torch.stack([(err.double().mean(-1) * m).sum(), (err[..., 0].double() * m).sum(),
                             (rel.double().mean(-1) * m).sum(), (acc_err * ma).sum()])
        n += int(p.sum())
        n_acc += int(ma.sum())
        count_codes(model, out.tokens, out.latent_presence, counts)
    mm = (sums[:3] / max(n, 1) * 1000.0).tolist()
    return {
        "val_mpjpe_mm": mm[0], "val_mpjpe_traj_mm": mm[1], "val_mpjpe_pose_mm": mm[2],
        "val_accel_error_mm": float(sums[3] / max(n_acc, 1) * 1000.0),
        "val_clips": len(clips), "val_hand_frames": n,
        "perplexity": {c: float(perplexity(v)) for c, v in counts.items()},
        "codebook_usage": {c: float((v > 0).double().mean()) for c, v in counts.items()},
    }


def code_histograms(model: MotionTokenizer) -> dict[str, torch.Tensor]:
    """Empty per-codebook histograms [codes] for `count_codes`."""
    return {c: torch.zeros(model.cfg.codes, dtype=torch.float64) for c in model.codebooks}


def count_codes(model: MotionTokenizer, tokens: torch.Tensor, lp: torch.Tensor, counts: dict) -> None:
    """Add the codes of present latents to per-codebook histograms."""
    if isinstance(model, SHIFT):  # streams: left_traj, left_pose, right_traj, right_pose
        for s, (book, hand) in enumerate([("traj", 0), ("pose", 0), ("traj", 1), ("pose", 1)]):
            counts[book] += torch.bincount(tokens[..., s][lp[..., hand]], minlength=model.cfg.codes).double()
        return
    for s, book in enumerate(model.codebooks):  # whole-frame tokenizers: one stream per codebook
        counts[book] += torch.bincount(tokens[..., s][lp.any(-1)], minlength=model.cfg.codes).double()
