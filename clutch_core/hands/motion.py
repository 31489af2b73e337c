"""The CLUTCH motion frame: 198 floats per frame = left hand (99) then right hand (99).

Per hand (99): global orientation as 6D (0:6), the 15 finger joints as 6D in MANO joint order
(6:96; joint j at 6+6j:12+6j), wrist translation in metres (96:99). 6D = first two columns of the
rotation matrix (see rotations.py).

Absent hands: the presence mask [T,2] (0 = left, 1 = right) is the truth. Frames where a hand is
absent still hold numbers so tensors stay dense: identity rotations and the hand's last valid
wrist translation (its first valid one before it appears; zeros for a hand never seen). Models
and metrics must mask with presence, never guess it from the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from layout import FINGERS, FRAME_DIM, HAND_DIM, NUM_FINGER_JOINTS, ORIENT, ROT6D, SIDES, TRANSL

from .rotations import IDENTITY_6D, matrix_to_rot6d, rot6d_to_matrix
from .skeleton import fk, ik, rest_skeleton

__all__ = [
    "HAND_DIM",
    "FRAME_DIM",
    "SIDES",
    "hand_to_vec",
    "vec_to_hand",
    "pack_frame",
    "split_frame",
    "motion_to_joints",
    "joints_to_motion",
    "identity_hand_vec",
    "MotionStats",
]



def hand_to_vec(global_orient: torch.Tensor, local_rots: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """global_orient [...,3,3], local_rots [...,15,3,3], transl [...,3] -> [...,99]."""
    lead = local_rots.shape[:-3]
    return torch.cat(
        [matrix_to_rot6d(global_orient), matrix_to_rot6d(local_rots).reshape(lead + (FINGERS.stop - FINGERS.start,)), transl], dim=-1
    )


def vec_to_hand(vec: torch.Tensor):
    """[...,99] -> (global_orient [...,3,3], local_rots [...,15,3,3], transl [...,3]).

    Rotations are re-orthonormalised (Gram-Schmidt), so network outputs decode to valid poses.
    """
    if vec.shape[-1] != HAND_DIM:
        raise ValueError(f"hand vector must have {HAND_DIM} values, got {vec.shape[-1]}")
    go = rot6d_to_matrix(vec[..., ORIENT])
    loc = rot6d_to_matrix(vec[..., FINGERS].reshape(vec.shape[:-1] + (NUM_FINGER_JOINTS, ROT6D)))
    return go, loc, vec[..., TRANSL]


def pack_frame(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """[...,99] x2 -> [...,198] (left first)."""
    return torch.cat([left, right], dim=-1)


def split_frame(frame: torch.Tensor):
    """[...,198] -> (left [...,99], right [...,99])."""
    if frame.shape[-1] != FRAME_DIM:
        raise ValueError(f"motion frame must have {FRAME_DIM} values, got {frame.shape[-1]}")
    return frame[..., :HAND_DIM], frame[..., HAND_DIM:]


def identity_hand_vec(dtype=torch.float32, device=None) -> torch.Tensor:
    """[99]: identity rotations, zero translation."""
    v = torch.zeros(HAND_DIM, dtype=dtype, device=device)
    v[:TRANSL.start] = torch.tensor(IDENTITY_6D, dtype=dtype, device=device).repeat(1 + NUM_FINGER_JOINTS)
    return v


def _rests(rest, dtype, device) -> torch.Tensor:
    if rest is None:
        return torch.stack([rest_skeleton(s, dtype=dtype, device=device) for s in SIDES])  # [2,21,3]
    return torch.as_tensor(rest, dtype=dtype, device=device)


def motion_to_joints(motion: torch.Tensor, rest: torch.Tensor | None = None) -> torch.Tensor:
    """motion [...,T,198] -> joints [...,T,2,21,3] (MediaPipe order, metres).

    rest: None = rest_skeleton("left"), rest_skeleton("right"); or any tensor broadcastable to
    [...,T,2,21,3] (e.g. [2,21,3] per-side skeletons of a given person).
    """
    hands = torch.stack(split_frame(motion), dim=-2)  # [...,T,2,99]
    go, loc, tr = vec_to_hand(hands)
    return fk(go, loc, tr, _rests(rest, motion.dtype, motion.device))


def fill_last_valid(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """x [T,...,C], valid [T,...] -> x with invalid frames set to the last valid value along T
    (the first valid one before any; zero when none), without a Python loop over frames."""
    T = x.shape[0]
    idx = torch.arange(T, device=x.device).view((T,) + (1,) * (valid.dim() - 1)).expand(valid.shape)
    last = torch.where(valid, idx, torch.full_like(idx, -1)).cummax(dim=0).values
    first = torch.where(valid, idx, torch.full_like(idx, T)).min(dim=0).values  # [...]
    src = torch.where(last < 0, first.clamp(max=T - 1).expand_as(last), last)
    out = torch.gather(x, 0, src[..., None].expand_as(x))
    return torch.where(valid.any(dim=0)[..., None], out, torch.zeros_like(out))


def joints_to_motion(joints: torch.Tensor, presence: torch.Tensor, rest: torch.Tensor | None = None) -> torch.Tensor:
    """joints [T,2,21,3] + presence [T,2] bool -> motion [T,198] (skeleton IK, MANO layout).

    Each present hand is solved with `ik` with its known side (rest None: the hand's own bone
    lengths per frame). Absent frames (any NaN joints count as absent too, the joints of absent
    frames are ignored) get identity rotations and the last valid wrist translation.
    """
    if joints.dim() != 4 or joints.shape[1:] != (2, 21, 3):
        raise ValueError(f"joints must be [T,2,21,3], got {tuple(joints.shape)}")
    presence = presence.to(torch.bool) & torch.isfinite(joints).all(dim=(-1, -2))
    safe_rest = _rests(None, joints.dtype, joints.device)  # [2,21,3]
    safe = torch.where(presence[..., None, None], joints, safe_rest.expand_as(joints))
    rests = (None, None) if rest is None else _rests(rest, joints.dtype, joints.device).expand(2, 21, 3)
    vecs = []
    for h, side in enumerate(SIDES):  # two hands, vectorised over frames
        go, loc, tr = ik(safe[:, h], rest=rests[h], side=side)
        vecs.append(hand_to_vec(go, loc, tr))
    hands = torch.stack(vecs, dim=1)  # [T,2,99]
    ident = identity_hand_vec(joints.dtype, joints.device)
    hands = torch.where(presence[..., None], hands, ident)
    trans = fill_last_valid(hands[..., TRANSL], presence)
    return torch.cat([hands[..., :TRANSL.start], trans], dim=-1).reshape(joints.shape[0], FRAME_DIM)


@dataclass
class MotionStats:
    """Per-dimension mean/std of motion frames over PRESENT frames only (left dims use frames
    where the left hand is present, right dims the right hand's), for normalising model inputs."""

    mean: torch.Tensor  # [198]
    std: torch.Tensor  # [198]

    @classmethod
    def fit(cls, motion: torch.Tensor, presence: torch.Tensor, min_std: float = 1e-4) -> "MotionStats":
        """motion [...,T,198], presence [...,T,2] -> stats; dims never observed get mean 0, std 1."""
        m = motion.reshape(-1, FRAME_DIM).double()
        w = presence.reshape(-1, 2).double().repeat_interleave(HAND_DIM, dim=-1)  # [N,198]
        n = w.sum(0)
        mean = (m * w).sum(0) / n.clamp(min=1)
        var = (((m - mean) ** 2) * w).sum(0) / n.clamp(min=1)
        std = var.sqrt().clamp(min=min_std)
        seen = n > 0
        mean = torch.where(seen, mean, torch.zeros_like(mean))
        std = torch.where(seen, std, torch.ones_like(std))
        return cls(mean.float(), std.float())

    def normalize(self, motion: torch.Tensor) -> torch.Tensor:
        return (motion - self.mean.to(motion)) / self.std.to(motion)

    def denormalize(self, motion: torch.Tensor) -> torch.Tensor:
        return motion * self.std.to(motion) + self.mean.to(motion)

    def to_dict(self) -> dict:
        """JSON-ready: {"mean": [198 floats], "std": [198 floats]}."""
        return {"mean": [float(x) for x in self.mean], "std": [float(x) for x in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> "MotionStats":
        mean = torch.tensor(d["mean"], dtype=torch.float32)
        std = torch.tensor(d["std"], dtype=torch.float32)
        if mean.shape != (FRAME_DIM,) or std.shape != (FRAME_DIM,):
            raise ValueError(f"MotionStats dict needs 'mean' and 'std' of {FRAME_DIM} floats")
        return cls(mean, std)
