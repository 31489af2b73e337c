"""Rotation conversions in torch: batched over any leading shape, differentiable, stable.

Conventions used everywhere in CLUTCH:
- rotation matrices act on column vectors (``x_world = R @ x_local``);
- axis-angle is a 3-vector ``angle * unit_axis`` (angle in radians), as in MANO;
- quaternions are ``(w, x, y, z)``, scalar first; ``matrix_to_quaternion`` returns ``w >= 0``;
- the continuous 6D representation (Zhou et al., CVPR 2019) is the FIRST TWO COLUMNS of the
  matrix, concatenated: ``rot6d = [R[:,0], R[:,1]] = [R00, R10, R20, R01, R11, R21]``.
  Identity is ``[1, 0, 0, 0, 1, 0]``. ``rot6d_to_matrix`` orthonormalises with Gram-Schmidt,
  so any 6-vector maps to a valid rotation.

Near angle 0 the formulas switch to Taylor series (no division by a vanishing norm, finite
gradients); near pi the quaternion path picks the largest, well-conditioned component, so the
axis stays correct.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "rot6d_to_matrix",
    "IDENTITY_6D",
]

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

_SMALL = 1e-4  # below this angle^2 the Taylor branches are exact to float64 precision


def _skew(v: torch.Tensor) -> torch.Tensor:
    """[...,3] -> [...,3,3] cross-product matrix."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """[...,3] axis-angle -> [...,3,3] (Rodrigues; Taylor series near 0)."""
    t2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # [...,1,1]
    small = t2 < _SMALL
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = t2s.sqrt()
    a = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)  # sin(t)/t
    b = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / t2s)  # (1-cos t)/t^2
    K = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """[...,4] (w,x,y,z), any norm > 0 -> [...,3,3]."""
    q = F.normalize(q, dim=-1, eps=1e-12)
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """[...,3,3] -> [...,4] (w,x,y,z) with w >= 0.

    Four algebraically equivalent candidates are formed, each dividing by one of |w|,|x|,|y|,|z|;
    the one with the largest divisor is kept (Shepperd's method), which stays exact at pi where w=0.
    """
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4*|component|^2 for w, x, y, z
    sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    mag = sq.clamp(min=1e-12).sqrt()  # [...,4] = 2*|component|
    cand = torch.stack(
        [
            torch.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], dim=-1),
            torch.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], dim=-1),
        ],
        dim=-2,
    ) / (2 * mag.clamp(min=0.1))[..., None]  # [...,4 candidates,4]
    best = sq.argmax(dim=-1)  # [...]
    q = torch.gather(cand, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    q = F.normalize(q, dim=-1, eps=1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """[...,4] (w,x,y,z) -> [...,3] with angle in [0, pi]."""
    q = F.normalize(q, dim=-1, eps=1e-12)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    s2 = (v * v).sum(-1, keepdim=True)
    small = s2 < _SMALL
    s = torch.where(small, torch.ones_like(s2), s2).sqrt()
    angle = 2 * torch.atan2(s, w)
    # angle / |v| = 2 atan(u) / (u w) with u = |v|/w; near 0 use atan's series 1 - u^2/3 + u^4/5
    wc = w.clamp(min=0.5)
    u2 = s2 / (wc * wc)
    scale = torch.where(small, 2 / wc * (1 - u2 / 3 + u2 * u2 / 5), angle / s)
    return v * scale


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """[...,3] -> [...,4] (w,x,y,z)."""
    t2 = (aa * aa).sum(-1, keepdim=True)
    small = t2 < _SMALL
    t = torch.where(small, torch.ones_like(t2), t2).sqrt()
    half_sinc = torch.where(small, 0.5 - t2 / 48 + t2 * t2 / 3840, torch.sin(t / 2) / t)
    w = torch.where(small, 1 - t2 / 8 + t2 * t2 / 384, torch.cos(t / 2))
    return torch.cat([w, aa * half_sinc], dim=-1)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """[...,3,3] -> [...,3] (via the quaternion: correct axis at pi, finite near 0)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """[...,3,3] -> [...,6]: first column then second column."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """[...,6] -> [...,3,3] by Gram-Schmidt on the two columns (Zhou et al. 2019).

    Degenerate input (a zero first half, or parallel halves) still gives a valid rotation: the
    missing direction is completed with a fixed perpendicular, so decoders never emit NaN/det 0.
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    ex = torch.zeros_like(a1)
    ex[..., 0] = 1
    n1 = a1.norm(dim=-1, keepdim=True)
    b1 = torch.where(n1 > 1e-8, a1 / n1.clamp(min=1e-8), ex)
    r = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    nr = r.norm(dim=-1, keepdim=True)
    # fallback: cross b1 with the basis axis it is least aligned with
    k = b1.abs().argmin(dim=-1, keepdim=True)
    fb = torch.cross(b1, torch.zeros_like(b1).scatter(-1, k, 1.0), dim=-1)
    fb = fb / fb.norm(dim=-1, keepdim=True)
    ok = nr > 1e-8 * (1 + a2.norm(dim=-1, keepdim=True))
    b2 = torch.where(ok, r / nr.clamp(min=1e-30), fb)
    b2 = F.normalize(b2 - (b1 * b2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-30)  # second pass: exact orthogonality
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)
