"""From LM logits at motion positions to 198-number motion: the geometric refinement and its measure.

Teacher-forced logits at the motion positions of a text-to-motion target
  -> per code stream, restricted to that stream's codebook range
  -> Gumbel-softmax (temperature tau; straight-through optional) -> weights over codes
  -> expected code vector (weights @ frozen SHIFT codebook)
  -> frozen SHIFT decoders (absent steps: SHIFT's absent latent, from the clip's real
     presence) -> motion [B, T, 198] (normalized space).
The loss compares it with the clip's real motion on present hand-frames (smooth-L1,
normalized space) and its FK joints (mean joint distance, metres). Gradients reach the
LM through the soft weights; SHIFT stays frozen.

`teacher_forced_mpjpe` is the hard version (argmax code per position, ordinary decode):
what the model would produce given the true prefix, in millimetres.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from clutch_core.hands.motion import MotionStats, motion_to_joints
from clutch_core.lm.vocab import STREAM_INFO, MotionVocab
from clutch_core.shift.model import HAND_DIM, MotionTokenizer


@dataclass
class MotionTargets:
    """Where the motion is in a batch's targets, and the real motion it stands for."""

    rows: torch.Tensor  # [R] batch rows holding a text-to-motion target
    positions: torch.Tensor  # [R, S, n] label positions of each stream's code (clamped; see valid)
    valid: torch.Tensor  # [R, S] bool: the step exists in this clip
    motion: torch.Tensor  # [R, S * stride, 198] real motion, normalized (absent hands 0)
    presence: torch.Tensor  # [R, S * stride, 2] bool, False on padding


def gather_motion_logits(logits: torch.Tensor, t: MotionTargets) -> torch.Tensor:
    """logits [B, L, V] -> [R, S, n, V] at the code positions."""
    r, s, n = t.positions.shape
    lg = logits[t.rows]  # [R, L, V]
    return torch.gather(lg, 1, t.positions.view(r, s * n, 1).expand(-1, -1, lg.shape[-1])).view(r, s, n, -1)


def codebooks(shift: MotionTokenizer, vocab: MotionVocab) -> list[torch.Tensor]:
    """Per code stream (vocab.code_streams), the frozen codebook [K, D] it indexes."""
    from clutch_core.shift.model import quantizers

    qs = quantizers(shift)
    return [qs[STREAM_INFO[vocab.streams[k]][0]].codebook.detach() for k in vocab.code_streams]


def step_presence(t: MotionTargets) -> torch.Tensor:
    """The targets' latent presence [R, S, 2]: a hand is present in a step when it is in any of its frames."""
    r, s = t.valid.shape
    return t.presence.view(r, s, -1, 2).any(2)


def soft_decode(logits: torch.Tensor, shift: MotionTokenizer, vocab: MotionVocab, tau: float,
                presence: torch.Tensor, hard: bool = False) -> torch.Tensor:
    """logits [R, S, n, V], latent presence [R, S, 2] -> motion [R, S * stride, 198] (normalized),
    differentiable in logits; absent steps get SHIFT's absent latent, as in its training."""
    vecs = []
    for k, cb in zip(vocab.code_streams, codebooks(shift, vocab)):
        a, b = vocab.stream_range(k)
        w = F.gumbel_softmax(logits[:, :, k, a:b].float(), tau=tau, hard=hard)  # [R, S, K]
        vecs.append(w @ cb)  # [R, S, D]
    return shift.decode_vectors(torch.stack(vecs, 2), presence)


def hard_decode(logits: torch.Tensor, shift: MotionTokenizer, vocab: MotionVocab, presence: torch.Tensor) -> torch.Tensor:
    """Argmax code of each code stream's range, latent presence [R, S, 2] -> motion [R, S * stride, 198]."""
    codes = torch.stack([logits[:, :, k, slice(*vocab.stream_range(k))].argmax(-1)
                         for k in vocab.code_streams], -1)  # [R, S, tokenizer streams]
    return shift.decode(codes, presence)


def geometric_loss(pred: torch.Tensor, t: MotionTargets, stats: MotionStats) -> tuple[torch.Tensor, torch.Tensor]:
    """(smooth-L1 in normalized space, mean joint distance in metres), over present hand-frames."""
    w = t.presence.float().repeat_interleave(HAND_DIM, -1)  # [R, T, 198]
    l1 = (F.smooth_l1_loss(pred, t.motion, reduction="none") * w).sum() / w.sum().clamp_min(1.0)
    return l1, joint_error(pred, t, stats)


def joint_error(pred: torch.Tensor, t: MotionTargets, stats: MotionStats) -> torch.Tensor:
    """Mean 21-joint distance (metres) between FK of pred and of the real motion, present hand-frames."""
    jp = motion_to_joints(stats.denormalize(pred))  # [R, T, 2, 21, 3]
    jt = motion_to_joints(stats.denormalize(t.motion))
    d = (jp - jt).norm(dim=-1).mean(-1)  # [R, T, 2]
    m = t.presence.float()
    return (d * m).sum() / m.sum().clamp_min(1.0)
