"""The 21-joint hand skeleton on MANO's kinematic tree: rest pose, forward and inverse kinematics.

Joint orders (see docs/hands.md for the full table):
- MediaPipe / OpenPose (what joints arrays use everywhere in CLUTCH): 0 wrist, 1-4 thumb CMC, MCP,
  IP, tip, 5-8 index MCP, PIP, DIP, tip, 9-12 middle, 13-16 ring, 17-20 pinky.
- MANO (16 joints, then 5 fingertip vertices as smplx/HaMeR append them): 0 wrist, 1-3 index,
  4-6 middle, 7-9 pinky, 10-12 ring, 13-15 thumb, 16-20 tips thumb, index, middle, ring, pinky.
  ``joints_mediapipe = joints_mano[..., MANO_TO_MEDIAPIPE, :]`` and back with MEDIAPIPE_TO_MANO.

Pose layout (same as a MANO fit): global orientation [...,3,3] about the wrist, and 15 local
rotations [...,15,3,3] in MANO joint order (index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3),
each relative to the rest pose (identity = rest) and expressed in the parent's frame, exactly as
MANO's ``hand_pose``. Translation is the WRIST POSITION (unlike smplx's ``transl``).

Canonical frame of the rest pose (as MANO's right hand): wrist at the origin, fingers along -x,
thumb on the +z side, palm facing -y, metres. The left hand is the mirror image (x -> -x).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from layout import MANO_JOINT_NAMES, MANO_TO_MEDIAPIPE, MEDIAPIPE_JOINT_NAMES, MEDIAPIPE_TO_MANO, PARENTS

from .rotations import axis_angle_to_matrix, rot6d_to_matrix

__all__ = [
    "MEDIAPIPE_JOINT_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_TO_MEDIAPIPE",
    "MEDIAPIPE_TO_MANO",
    "PARENTS",
    "MANO_PARENTS",
    "FINGER_CHAINS",
    "rest_skeleton",
    "rest_from_bone_lengths",
    "bone_lengths",
    "handedness",
    "fk",
    "fk_world",
    "ik",
]

MANO_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)  # MANO kintree_table[0]

# Fingers in MANO order (index, middle, pinky, ring, thumb); each row: MediaPipe ids of the three
# rotating joints and the tip. Local rotation 3*f+k belongs to joint FINGER_CHAINS[f][k].
FINGER_CHAINS = ((5, 6, 7, 8), (9, 10, 11, 12), (17, 18, 19, 20), (13, 14, 15, 16), (1, 2, 3, 4))
_PALM = (1, 5, 9, 13, 17)  # joints carried rigidly by the global orientation

# Right hand, MediaPipe order, metres, wrist at origin; proportions of MANO's mean right hand
# (wrist to middle MCP 9.5 cm).
_RIGHT_REST = (
    (0.0, 0.0, 0.0),
    (-0.0240, -0.0155, 0.0258), (-0.0437, -0.0146, 0.0495), (-0.0659, -0.0201, 0.0640), (-0.0878, -0.0240, 0.0780),
    (-0.0881, -0.0052, 0.0207), (-0.1208, -0.0012, 0.0229), (-0.1429, -0.0025, 0.0228), (-0.1649, -0.0030, 0.0230),
    (-0.0947, -0.0015, -0.0034), (-0.1258, 0.0004, -0.0090), (-0.1487, -0.0009, -0.0129), (-0.1722, -0.0020, -0.0170),
    (-0.0817, -0.0040, -0.0267), (-0.1100, -0.0019, -0.0318), (-0.1336, -0.0036, -0.0394), (-0.1560, -0.0040, -0.0460),
    (-0.0688, -0.0099, -0.0432), (-0.0858, -0.0099, -0.0557), (-0.1017, -0.0106, -0.0660), (-0.1195, -0.0110, -0.0770),
)
_MIRROR = (-1.0, 1.0, 1.0)


def _palm_normal(rest: torch.Tensor) -> torch.Tensor:
    """[...,21,3] -> [...,3] unit normal out of the palm of a RIGHT hand (into the back of a left)."""
    n = torch.cross(rest[..., 9, :] - rest[..., 0, :], rest[..., 17, :] - rest[..., 5, :], dim=-1)
    return F.normalize(n, dim=-1, eps=1e-12)


def flexion_axes(rest: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """Default flexion axes [...,5,3] (MANO finger order): normal of the plane holding the finger's
    base-to-tip line and its bending direction (the palm normal; for the thumb palm + pinky side).
    A positive rotation about it curls the finger."""
    n = _palm_normal(rest) * torch.where(left, -1.0, 1.0).to(rest.dtype)[..., None]
    across = F.normalize(rest[..., 17, :] - rest[..., 5, :], dim=-1)  # index -> pinky
    chains = torch.tensor(FINGER_CHAINS, device=rest.device)
    d = rest[..., chains[:, 3], :] - rest[..., chains[:, 0], :]  # [...,5,3] base to tip
    bend = n[..., None, :].expand(d.shape).clone()
    bend[..., 4, :] = F.normalize(n + across, dim=-1)
    return F.normalize(torch.cross(d, bend, dim=-1), dim=-1, eps=1e-12)


def _planar_right_rest() -> torch.Tensor:
    """The table above with each finger projected onto its flexion plane, so that flexing about
    the flexion axis keeps a finger planar (an exact hinge, as a real finger)."""
    rest = torch.tensor(_RIGHT_REST, dtype=torch.float64)
    h = flexion_axes(rest, torch.tensor(False))  # [5,3]
    for f, chain in enumerate(FINGER_CHAINS):
        idx = list(chain)
        off = ((rest[idx] - rest[chain[0]]) @ h[f])[:, None] * h[f]
        rest[idx] = rest[idx] - off
    return rest


_RIGHT_REST_PLANAR = _planar_right_rest()
# fk_world assembles [wrist, palm joints, chains finger-major]; this gathers MediaPipe order from it
_FK_ORDER = [
    ([0] + list(_PALM) + [c[k] for c in FINGER_CHAINS for k in (1, 2, 3)]).index(j) for j in range(21)
]


def _side_is_left(side: str) -> bool:
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return side == "left"


def rest_skeleton(side: str = "right", scale: float = 1.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """[21,3] rest joints (flat open hand) in the canonical frame, MediaPipe order, metres."""
    rest = _RIGHT_REST_PLANAR.to(dtype=dtype, device=device) * scale
    if _side_is_left(side):
        rest = rest * torch.tensor(_MIRROR, dtype=dtype, device=device)
    return rest


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    """[...,21,3] -> [...,20]; bone i ends at joint i+1."""
    parents = list(PARENTS[1:])
    return (joints[..., 1:, :] - joints[..., parents, :]).norm(dim=-1)


def rest_from_bone_lengths(lengths: torch.Tensor, side: str = "right") -> torch.Tensor:
    """[...,20] bone lengths -> [...,21,3] rest skeleton with the template's bone directions."""
    tmpl = rest_skeleton(side, dtype=lengths.dtype, device=lengths.device)
    dirs = F.normalize(tmpl[1:] - tmpl[list(PARENTS[1:])], dim=-1)  # [20,3]
    bones = dirs * lengths[..., None]  # [...,20,3]
    out = [torch.zeros_like(bones[..., 0, :])]
    for j in range(1, 21):  # 21 joints, not frames: the tree walk is fixed-size
        out.append(out[PARENTS[j]] + bones[..., j - 1, :])
    return torch.stack(out, dim=-2)


def handedness(joints: torch.Tensor) -> torch.Tensor:
    """[...,21,3] -> [...] bool, True where the joints look like a LEFT hand.

    Chirality: for a right hand (wrist -> middle MCP) x (index MCP -> pinky MCP) points out of the
    palm, and the thumb's CMC and MCP lie on that side of the palm (about 1.5 cm); mirroring flips
    the sign. Only needed when the side is not known.
    """
    palmar = joints[..., 1, :] + joints[..., 2, :] - 2 * joints[..., 0, :]
    return (_palm_normal(joints) * palmar).sum(-1) < 0


def fk(global_orient: torch.Tensor, local_rots: torch.Tensor, transl: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """Pose -> joints.

    global_orient [...,3,3], local_rots [...,15,3,3] (MANO order), transl [...,3] (wrist),
    rest [...,21,3] (MediaPipe order; broadcast) -> joints [...,21,3] (MediaPipe order).
    """
    return fk_world(global_orient, local_rots, transl, rest)[0]


def fk_world(global_orient: torch.Tensor, local_rots: torch.Tensor, transl: torch.Tensor, rest: torch.Tensor):
    """`fk` that also returns each MANO joint's world rotation [...,16,3,3] (MANO order), which
    skinning needs (e.g. MANO's fingertip vertices)."""
    chains = torch.tensor(FINGER_CHAINS, device=rest.device)  # [5,4]
    rest = rest.to(local_rots.dtype)
    lead = torch.broadcast_shapes(global_orient.shape[:-2], local_rots.shape[:-3], transl.shape[:-1], rest.shape[:-2])
    palm = torch.tensor(_PALM, device=rest.device)
    palm_pos = transl[..., None, :] + (
        global_orient[..., None, :, :] @ (rest[..., palm, :] - rest[..., :1, :])[..., None]
    )[..., 0]  # [...,5,3]
    L = local_rots.reshape(local_rots.shape[:-3] + (5, 3, 3, 3))  # [...,finger,joint,3,3]
    Rw = global_orient[..., None, :, :].expand(lead + (5, 3, 3))  # world rotation of the parent
    pos = palm_pos[..., [1, 2, 4, 3, 0], :]  # finger bases in FINGER_CHAINS order
    world, chain_pos = [], []
    for k in range(3):  # three rotating joints per finger
        Rw = Rw @ L[..., k, :, :]
        bone = rest[..., chains[:, k + 1], :] - rest[..., chains[:, k], :]  # [...,5,3]
        pos = pos + (Rw @ bone[..., None])[..., 0]
        world.append(Rw)
        chain_pos.append(pos)
    out = torch.cat([transl.expand(lead + (3,))[..., None, :], palm_pos.expand(lead + (5, 3)),
                     torch.stack(chain_pos, dim=-2).reshape(lead + (15, 3))], dim=-2)
    # out order: wrist, palm (1,5,9,13,17), then chain joints finger-major (k+1 of FINGER_CHAINS)
    joints = out[..., _FK_ORDER, :]
    world = torch.stack(world, dim=-3).reshape(lead + (15, 3, 3))
    return joints, torch.cat([global_orient.expand(lead + (3, 3))[..., None, :, :], world], dim=-3)


def _kabsch(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Rotation R minimising sum |R p_i - q_i|^2. P, Q [...,N,3] -> [...,3,3]."""
    H = P.transpose(-1, -2) @ Q  # [...,3,3] = sum p q^T
    U, _, Vh = torch.linalg.svd(H)
    V = Vh.transpose(-1, -2)
    d = torch.det(V @ U.transpose(-1, -2))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), torch.sign(d) + (d == 0)], dim=-1))
    return V @ D @ U.transpose(-1, -2)


def _frame(d: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Orthonormal frame [...,3,3] with columns d, h (made orthogonal to d), d x h; degenerate
    input (zero or parallel vectors) still gives a rotation."""
    return rot6d_to_matrix(torch.cat([d, h], dim=-1))


def _swing(u: torch.Tensor, v: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking unit u to unit v ([...,3] -> [...,3,3]); about `fallback` at 180 deg."""
    axis = torch.cross(u, v, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    c = (u * v).sum(-1, keepdim=True)
    fb = F.normalize(fallback - (fallback * u).sum(-1, keepdim=True) * u, dim=-1, eps=1e-12)
    axis = torch.where(s > 1e-9, axis / s.clamp(min=1e-12), fb)
    return axis_angle_to_matrix(axis * torch.atan2(s, c))


def _bend_axis(dirs: torch.Tensor, expected: torch.Tensor, prior: float) -> torch.Tensor:
    """Observed flexion axis of each finger: the sum of its bone cross products (|.| = sine of the
    bends), signed like `expected`, plus `prior` * expected so a straight finger falls back to it.
    dirs [...,5,3,3] unit bones, expected [...,5,3] -> [...,5,3]. Rotation-equivariant."""
    n = torch.cross(dirs[..., 0, :], dirs[..., 1, :], dim=-1) + torch.cross(dirs[..., 1, :], dirs[..., 2, :], dim=-1)
    sign = torch.where((n * expected).sum(-1, keepdim=True) < 0, -1.0, 1.0).to(n.dtype)
    return sign * n + prior * expected


def _ik_rest(joints: torch.Tensor, rest: torch.Tensor | None, side: str | None):
    """(joints, rest skeleton, left [...] bool), broadcast to one leading shape: the rest skeleton given, or
    the template's directions with the joints' own bone lengths for the side given or inferred."""
    if side is None:
        left = handedness(joints if rest is None else rest)
    else:
        left = torch.full(joints.shape[:-2] if rest is None else rest.shape[:-2], _side_is_left(side), device=joints.device)
    if rest is None:
        lengths = bone_lengths(joints)
        rest = torch.where(
            left[..., None, None], rest_from_bone_lengths(lengths, "left"), rest_from_bone_lengths(lengths, "right")
        )
    rest = rest.to(joints.dtype)
    lead = torch.broadcast_shapes(joints.shape[:-2], rest.shape[:-2])
    return joints.expand(lead + (21, 3)), rest.expand(lead + (21, 3)), left.expand(lead)


def ik(joints: torch.Tensor, rest: torch.Tensor | None = None, side: str | None = None, twist_prior: float = 0.1):
    """Joints -> pose on the MANO tree, vectorised over any leading shape.

    joints [...,21,3] (MediaPipe order) -> (global_orient [...,3,3], local_rots [...,15,3,3] MANO
    order, transl [...,3] = the wrist). Deterministic and closed-form:
    - global orientation: best rotation (Kabsch/SVD) of the rest palm (wrist to thumb CMC and the
      four MCPs) onto the observed one;
    - each finger's first joint: a full frame fit. Its bone direction is matched exactly; the twist
      about it puts the finger's observed bending plane (sum of its bone cross products) on the rest
      flexion axis; for a nearly straight finger the axis falls back smoothly to the palm's
      (``twist_prior`` is the bend, as a sine, where both weigh the same);
    - the two distal joints: the smallest rotation matching each bone direction (pure hinges for
      planar fingers).
    `rest` None: the template's directions with the joints' own bone lengths, so that
    ``fk(*ik(x), rest_from_bone_lengths(bone_lengths(x), side)) == x`` for any x fk can produce. `side` None: inferred with `handedness`.
    Rotations are orthonormal for any finite input (noisy tracks included); a hand with a
    non-finite joint gets NaN outputs without affecting the rest of the batch.
    """
    if joints.shape[-2:] != (21, 3):
        raise ValueError(f"ik expects joints [...,21,3], got {tuple(joints.shape)}")
    bad = ~torch.isfinite(joints).all(dim=-1).all(dim=-1)  # [...] hands with NaN/inf joints
    if bad.any():  # solve the others; the bad ones come back as NaN instead of failing the batch
        joints = torch.where(bad[..., None, None], rest_skeleton("right", dtype=joints.dtype, device=joints.device), joints)
    joints, rest, left = _ik_rest(joints, rest, side)
    lead = joints.shape[:-2]
    transl = joints[..., 0, :]
    palm = list(_PALM)
    R0 = _kabsch(rest[..., palm, :] - rest[..., :1, :], joints[..., palm, :] - joints[..., :1, :])

    chains = torch.tensor(FINGER_CHAINS, device=joints.device)
    D = F.normalize(joints[..., chains[:, 1:], :] - joints[..., chains[:, :3], :], dim=-1, eps=1e-12)  # [...,5,3,3]
    U = F.normalize(rest[..., chains[:, 1:], :] - rest[..., chains[:, :3], :], dim=-1, eps=1e-12)
    h_def = flexion_axes(rest, left)  # [...,5,3]
    h_rest = _bend_axis(U, h_def, twist_prior)  # the same rule on rest and observed: rest -> identity
    h_obs = _bend_axis(D, (R0[..., None, :, :] @ h_def[..., None])[..., 0], twist_prior)
    Ra = _frame(D[..., 0, :], h_obs) @ _frame(U[..., 0, :], h_rest).transpose(-1, -2)  # world, [...,5,3,3]
    La = R0[..., None, :, :].transpose(-1, -2) @ Ra
    locs, Rw = [La], Ra
    for k in (1, 2):
        v = (Rw.transpose(-1, -2) @ D[..., k, :, None])[..., 0]
        Lk = _swing(U[..., k, :], v, h_rest)
        Rw = Rw @ Lk
        locs.append(Lk)
    local = torch.stack(locs, dim=-3).reshape(lead + (15, 3, 3))
    if bad.any():
        nan = torch.tensor(float("nan"), dtype=joints.dtype, device=joints.device)
        bad = bad.expand(lead)
        R0 = torch.where(bad[..., None, None], nan, R0)
        local = torch.where(bad[..., None, None, None], nan, local)
        transl = torch.where(bad[..., None], nan, transl)
    return R0, local, transl
