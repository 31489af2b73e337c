"""MANO through smplx: loading (chumpy-free), forward to 778 vertices + 21 joints, and fitting
MANO to tracked 3D joints.

Joints come back in MediaPipe order: MANO's 16 regressed joints plus 5 fingertip vertices
(FINGERTIP_VERTEX_IDS: thumb 744, index 320, middle 443, ring 554, pinky 671, as in smplx's
``vertex_ids['mano']`` and HaMeR), reordered with MANO_TO_MEDIAPIPE.

Parameters follow smplx with ``use_pca=False, flat_hand_mean=True``: ``global_orient`` [..,3] and
``hand_pose`` [..,45] axis-angle (15 joints in MANO order, zero = flat hand), ``betas`` [..,10],
``transl`` [..,3] (smplx's: the wrist ends at J_wrist(betas) + transl, not at transl).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .mano_io import MANO_FILES, convert_mano_dir, load_mano_pickle
from .mano_synthetic import FINGERTIP_VERTEX_IDS
from .motion import hand_to_vec
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .skeleton import MANO_TO_MEDIAPIPE, MEDIAPIPE_TO_MANO, PARENTS, fk_world, ik

__all__ = [
    "FINGERTIP_VERTEX_IDS",
    "load_mano",
    "find_mano_file",
    "mano_forward",
    "mano_rest_joints",
    "fit_mano",
    "FitConfig",
    "ManoJoints",
    "ManoFit",
    "track_betas",
    "load_mano_pickle",
    "convert_mano_dir",
]

log = logging.getLogger(__name__)
_TIPS = (FINGERTIP_VERTEX_IDS["thumb"], FINGERTIP_VERTEX_IDS["index"], FINGERTIP_VERTEX_IDS["middle"],
         FINGERTIP_VERTEX_IDS["ring"], FINGERTIP_VERTEX_IDS["pinky"])  # MANO 21-joint order 16..20


def find_mano_file(model_path: str | Path, side: str) -> Path:
    """MANO_{RIGHT,LEFT}.pkl given the file itself, its folder, or a folder with a `mano/` subfolder
    (the layout smplx.create expects)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    p = Path(model_path)
    if p.is_file():
        return p
    name = MANO_FILES[0] if side == "right" else MANO_FILES[1]
    for cand in (p / name, p / "mano" / name):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{p}: no {name} (looked in {p} and {p / 'mano'}); MANO files are not shipped, "
                            "download them from the MANO website and point here")


def load_mano(model_path: str | Path, side: str = "right", num_betas: int = 10, dtype=torch.float32):
    """An `smplx.MANO` for `side`, read with the chumpy-free loader (official or converted files)."""
    import smplx
    from smplx.utils import Struct

    path = find_mano_file(model_path, side)
    data = load_mano_pickle(path)
    return smplx.MANO(
        str(path), is_rhand=side == "right", data_struct=Struct(**data), use_pca=False, flat_hand_mean=True,
        num_betas=num_betas, dtype=dtype,
    )


def mano_forward(model, global_orient, hand_pose, betas=None, transl=None):
    """Batched MANO. global_orient [...,3], hand_pose [...,45], betas [...,10] (broadcast),
    transl [...,3] -> (vertices [...,778,3], joints [...,21,3] MediaPipe order)."""
    lead = global_orient.shape[:-1]
    dtype = model.shapedirs.dtype
    go = global_orient.reshape(-1, 3).to(dtype)
    hp = hand_pose.reshape(-1, 45).to(dtype)
    n = go.shape[0]
    b = torch.zeros(n, model.num_betas, dtype=dtype) if betas is None else betas.to(dtype).expand(lead + (model.num_betas,)).reshape(n, -1)
    t = torch.zeros(n, 3, dtype=dtype) if transl is None else transl.to(dtype).reshape(n, 3)
    out = model(global_orient=go, hand_pose=hp, betas=b, transl=t)
    joints = torch.cat([out.joints, out.vertices[:, list(_TIPS)]], dim=1)[:, list(MANO_TO_MEDIAPIPE)]
    return out.vertices.reshape(lead + (-1, 3)), joints.reshape(lead + (21, 3))


def mano_rest_joints(model, betas=None) -> torch.Tensor:
    """[21,3] joints of the flat hand (zero pose, zero translation), MediaPipe order."""
    z = torch.zeros(1, 3, dtype=model.shapedirs.dtype)
    with torch.no_grad():
        return mano_forward(model, z, torch.zeros(1, 45, dtype=z.dtype), None if betas is None else betas[None])[1][0]


class ManoJoints:
    """MANO's 21 joints only, for fitting: exactly what smplx's forward gives for the 16 joints and
    the 5 fingertip vertices (shape blend, pose correctives and skinning of those 5 vertices), at a
    fraction of the cost, because the 773 other vertices are never formed."""

    def __init__(self, model):
        dt = model.shapedirs.dtype
        reg = model.J_regressor.to(dt)  # [16,778]
        tips = list(_TIPS)
        self.J = reg @ model.v_template  # [16,3]
        self.J_dirs = torch.einsum("jv,vcl->jcl", reg, model.shapedirs)  # [16,3,B]
        self.tip = model.v_template[tips]  # [5,3]
        self.tip_dirs = model.shapedirs[tips]  # [5,3,B]
        self.tip_pose = model.posedirs.reshape(135, -1, 3)[:, tips].reshape(135, 15)  # [135,5*3]
        self.tip_w = model.lbs_weights[tips]  # [5,16]
        self.num_betas = model.num_betas
        self.dtype = dt

    def rest(self, betas: torch.Tensor) -> torch.Tensor:
        """[B] -> [21,3] flat-hand joints for these betas (MediaPipe order, no pose correctives)."""
        return torch.cat([self.J + self.J_dirs @ betas, self.tip + self.tip_dirs @ betas])[list(MANO_TO_MEDIAPIPE)]

    def __call__(self, global_orient, hand_pose, betas, transl):
        """[T,3], [T,45], [B], [T,3] -> joints [T,21,3] MediaPipe order."""
        T = global_orient.shape[0]
        R0 = axis_angle_to_matrix(global_orient)
        L = axis_angle_to_matrix(hand_pose.reshape(T, 15, 3))
        J = self.J + self.J_dirs @ betas  # [16,3]
        tip = self.tip + self.tip_dirs @ betas  # [5,3]
        eye = torch.eye(3, dtype=L.dtype)
        tip = tip + ((L - eye).reshape(T, 135) @ self.tip_pose).reshape(T, 5, 3)  # pose correctives
        rest = torch.cat([J, torch.zeros(5, 3, dtype=J.dtype)])[list(MANO_TO_MEDIAPIPE)]  # tips unused here
        joints, Rw = fk_world(R0, L, J[0] + transl, rest)  # Rw [T,16,3,3] MANO order
        pj = joints[:, list(MEDIAPIPE_TO_MANO[:16])]  # [T,16,3] posed MANO joints
        # linear blend skinning of the tips: sum_j w_j (p_j + R_j (v - J_j))
        local = tip[:, :, None, :] - J  # [T,5,16,3]
        skinned = pj[:, None] + (Rw[:, None] @ local[..., None])[..., 0]  # [T,5,16,3]
        tips = (self.tip_w[None, :, :, None] * skinned).sum(2)  # [T,5,3]
        mp_tip = [MANO_TO_MEDIAPIPE.index(16 + k) for k in range(5)]
        return joints.index_copy(1, torch.tensor(mp_tip), tips)


@dataclass
class FitConfig:
    """Weights are per squared millimetre of joint error (data term = mean over joints and frames)."""

    iterations: int = 8  # L-BFGS outer steps (each runs up to 20 evaluations); 0 = closed-form init only
    smooth_pose: float = 10.0  # second difference over frames of the pose (axis-angle, rad^2)
    smooth_transl: float = 1.0  # second difference over frames of the translation (mm^2)
    pose_prior: float = 1e-4  # |hand_pose|^2: a weak pull to the flat hand where data says little
    betas_prior: float = 1e-3  # |betas|^2
    tolerance: float = 1e-7


@dataclass
class ManoFit:
    """One track's MANO fit (T frames; betas shared by the track)."""

    side: str
    global_orient: torch.Tensor  # [T,3]
    hand_pose: torch.Tensor  # [T,45]
    betas: torch.Tensor  # [10]
    transl: torch.Tensor  # [T,3] smplx translation
    joints: torch.Tensor  # [T,21,3] fitted joints, MediaPipe order
    error_m: torch.Tensor  # [T] mean joint error per frame (m), NaN where the frame was absent
    seconds: float

    def to_hand_vec(self) -> torch.Tensor:
        """[T,99] in the CLUTCH motion layout: true MANO rotations, translation = wrist position."""
        go = axis_angle_to_matrix(self.global_orient)
        loc = axis_angle_to_matrix(self.hand_pose.reshape(-1, 15, 3))
        return hand_to_vec(go, loc, self.joints[:, 0])


def _init_betas(joint_fn: ManoJoints, obs: torch.Tensor, side: str, prior: float) -> torch.Tensor:
    """Ridge least squares for betas: observed bones [V,21,3], brought into the rest frame by the
    IK rotations at betas = 0, against the model's linear rest bones base + dirs @ betas."""
    B = joint_fn.num_betas
    zero = torch.zeros(B, dtype=obs.dtype)
    rest0 = joint_fn.rest(zero)
    R0, L, wrist = ik(obs, rest=rest0, side=side)
    _, Rw = fk_world(R0, L, wrist, rest0)  # [V,16,3,3]
    child = torch.arange(1, 21)
    parent = torch.tensor(PARENTS[1:])
    R_bone = Rw[:, [MANO_TO_MEDIAPIPE[p] for p in PARENTS[1:]]]  # [V,20,3,3]
    seen = (R_bone.transpose(-1, -2) @ (obs[:, child] - obs[:, parent])[..., None])[..., 0]  # [V,20,3]
    dirs = torch.cat([joint_fn.J_dirs, joint_fn.tip_dirs])[list(MANO_TO_MEDIAPIPE)]  # [21,3,B]
    A = (dirs[child] - dirs[parent]).reshape(60, B) * 1000  # mm per unit beta
    y = (seen.mean(0) - (rest0[child] - rest0[parent])).reshape(60) * 1000
    V = obs.shape[0]
    return torch.linalg.solve(V * A.T @ A + prior * torch.eye(B, dtype=A.dtype), V * A.T @ y)


def _accel(x: torch.Tensor) -> torch.Tensor:
    return x[2:] - 2 * x[1:-1] + x[:-2]


def fit_mano(joints: torch.Tensor, model, side: str = "right", presence: torch.Tensor | None = None,
             config: FitConfig | None = None, betas: torch.Tensor | None = None) -> ManoFit:
    """Fit MANO (global orientation, 45 pose, 10 betas shared over the track, translation) to a
    sequence of 3D joints [T,21,3] (MediaPipe order, metres), all frames at once.

    Initialised in closed form (betas by least squares on the bone vectors, then skeleton IK on
    the model's own rest joints for those betas: already ~0.6 mm on clean joints), then refined
    with L-BFGS on joint error + temporal smoothness (second differences) + weak priors. `presence` [T] bool: absent frames are ignored by the data term and
    bridged by the smoothness term. `betas` [10] given: the track's shape, kept fixed (one shape
    per track over many clips, see `track_betas`).
    """
    from .fit import one_thread

    with one_thread():
        return _fit_mano(joints, model, side, presence, config, betas)


def track_betas(model, rest_joints: torch.Tensor, side: str, prior: float | None = None) -> torch.Tensor:
    """MANO betas [10] whose flat hand best matches a rest skeleton [21,3] (MediaPipe order): the
    ridge least squares `fit_mano` starts from, on one frame."""
    joint_fn = ManoJoints(model)
    with torch.no_grad():
        return _init_betas(joint_fn, rest_joints.to(joint_fn.dtype)[None], side,
                           FitConfig().betas_prior if prior is None else prior)


def _fit_mano(joints, model, side, presence, config, fixed_betas=None) -> ManoFit:
    cfg = config or FitConfig()
    t0 = time.perf_counter()
    if joints.dim() != 3 or joints.shape[1:] != (21, 3):
        raise ValueError(f"fit_mano expects joints [T,21,3], got {tuple(joints.shape)}")
    T = joints.shape[0]
    dtype = model.shapedirs.dtype
    obs = joints.to(dtype)
    valid = torch.isfinite(obs).all(dim=(-1, -2))
    if presence is not None:
        valid &= presence.to(torch.bool)
    if not valid.any():
        raise ValueError("fit_mano: no frame with finite joints to fit")
    obs = torch.where(valid[:, None, None], obs, torch.zeros_like(obs))
    joint_fn = ManoJoints(model)
    # closed-form init: IK on the model's rest joints, betas by least squares on the bones seen in
    # each bone's rest frame, then IK again with those betas. Absent frames copy the nearest valid.
    idx = torch.arange(T)
    src = torch.where(valid, idx, -1).cummax(0).values
    src = torch.where(src < 0, idx[valid][0], src)
    with torch.no_grad():
        betas0 = _init_betas(joint_fn, obs[valid], side, cfg.betas_prior) if fixed_betas is None else \
            fixed_betas.to(dtype)
        rest = joint_fn.rest(betas0)
        R0, L, wrist = ik(obs[src], rest=rest, side=side)
    go = matrix_to_axis_angle(R0).clone().requires_grad_(True)
    hp = matrix_to_axis_angle(L).reshape(T, 45).clone().requires_grad_(True)
    tr = (wrist - rest[0]).clone().requires_grad_(True)
    betas = betas0.clone().requires_grad_(fixed_betas is None)
    w = valid.to(dtype)[:, None]
    opt = torch.optim.LBFGS([go, hp, tr] + ([betas] if fixed_betas is None else []), lr=1, max_iter=20,
                            tolerance_change=cfg.tolerance, history_size=20, line_search_fn="strong_wolfe")

    def loss_fn():
        pred = joint_fn(go, hp, betas, tr)
        err = ((pred - obs) * 1000) ** 2  # mm^2
        loss = (err.sum(-1).mean(-1, keepdim=True) * w).sum() / w.sum()
        if T > 2:  # penalise acceleration, not velocity: steady motion costs nothing
            loss = loss + cfg.smooth_pose * (_accel(hp) ** 2).sum(-1).mean()
            loss = loss + cfg.smooth_pose * (_accel(go) ** 2).sum(-1).mean()
            loss = loss + cfg.smooth_transl * ((_accel(tr) * 1000) ** 2).sum(-1).mean()
        return loss + cfg.pose_prior * (hp ** 2).sum(-1).mean() + cfg.betas_prior * (betas ** 2).sum()

    def closure():
        opt.zero_grad()
        (loss := loss_fn()).backward()
        return loss

    prev = None
    for _ in range(cfg.iterations):
        loss = opt.step(closure).item()
        if prev is not None and abs(prev - loss) <= cfg.tolerance * max(1.0, abs(loss)):
            break
        prev = loss
    with torch.no_grad():
        _, pred = mano_forward(model, go, hp, betas, tr)
        err = torch.where(valid, (pred - obs).norm(dim=-1).mean(-1), torch.tensor(float("nan"), dtype=dtype))
    secs = time.perf_counter() - t0
    log.debug("MANO fit %s: %d frames, %.2f mm mean error, %.1f s", side, T, err.nanmean().item() * 1000, secs)
    return ManoFit(side, go.detach(), hp.detach(), betas.detach(), tr.detach(), pred.detach(), err, secs)
