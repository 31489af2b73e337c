"""One rigid hand per track, fitted to the image (docs/hands.md, "The fit").

    track_shape    one hand's bone lengths for a whole track: robust over confident frames, the
                   size pulled toward an adult hand (the prior that fixes depth)
    fit_hands      every present hand-frame of one or more clips at once: wrist translation and
                   rotation, 15 finger rotations, on the fixed shape; robust 2D reprojection,
                   the tracker's own 3D pose, a motion prior; depth twins unflipped by Viterbi;
                   frames the rigid hand cannot explain rejected
    clip_motion    fitted poses -> the row's motion and joints3d = FK of that motion
    row_joints     FK of a stored row's motion with its hand_shape (what joints3d must equal)
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from layout import HAND_DIM, SIDES
from storage.schema import SHAPE_KINDS

from .motion import motion_to_joints
from .rotations import axis_angle_to_matrix, matrix_to_axis_angle
from .skeleton import _PALM, FINGER_CHAINS, PARENTS, bone_lengths, fk_world, ik, rest_from_bone_lengths, rest_skeleton

BONE_LENGTHS = SHAPE_KINDS["skeleton-ik"][0]  # hand_shape kind of skeleton rows: 20 bone lengths per hand (m)
MANO_BETAS = SHAPE_KINDS["mano"][0]  # hand_shape kind of MANO rows: 10 betas per hand


def shape_rest(lengths, dtype=torch.float64) -> torch.Tensor:
    """Bone lengths [2,20] (left, right) -> rest skeletons [2,21,3] for `fk`."""
    lengths = torch.as_tensor(np.asarray(lengths), dtype=dtype)
    return torch.stack([rest_from_bone_lengths(lengths[h], side) for h, side in enumerate(SIDES)])


def first_wrist(joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Wrist of the first frame with a hand (the left one if both): the clip's origin ([3])."""
    t = int(np.flatnonzero(present.any(1))[0])
    h = 0 if present[t, 0] else 1
    return joints[t, h, 0].astype(np.float32)


def row_joints(motion, joints3d, presence, hand_shape: Mapping[str, Any] | None,
               mano_models: Mapping[str, Any] | None = None) -> np.ndarray:
    """Forward kinematics of a row's `motion` with its `hand_shape`, in the camera frame ([T,2,21,3]).

    `motion` is relative to the clip's origin (the first present wrist, `first_wrist` of
    `joints3d`); the result adds it back, so for rows built by the fit it equals `joints3d` on
    present frames. hand_shape None (rows written before it existed): the template skeleton.
    MANO rows need `mano_models` ({"left": smplx MANO, "right": ...}).
    """
    motion = torch.as_tensor(np.array(motion, np.float64))
    presence = np.asarray(presence, bool)
    origin = first_wrist(np.asarray(joints3d), presence).astype(np.float64)
    kind = None if hand_shape is None else hand_shape["kind"]
    if kind == MANO_BETAS:
        if mano_models is None:
            raise ValueError("row_joints: a MANO row needs the MANO models (mano_models)")
        out = np.stack([mano_joints(motion[:, h * HAND_DIM:(h + 1) * HAND_DIM], hand_shape[side], mano_models[side])
                        for h, side in enumerate(SIDES)], 1)
    else:
        rest = None if kind is None else shape_rest([hand_shape["left"], hand_shape["right"]])
        out = motion_to_joints(motion, rest).numpy()
    return out + origin


def mano_joints(hand_vec: torch.Tensor, betas, model) -> np.ndarray:
    """MANO's 21 joints (MediaPipe order) of motion-layout hand vectors [T,99] with `betas`: the
    rotations are MANO's, the translation is the wrist."""
    from .mano import ManoJoints
    from .motion import vec_to_hand
    from .rotations import matrix_to_axis_angle

    fn = ManoJoints(model)
    dt = fn.dtype
    go, loc, wrist = vec_to_hand(hand_vec.to(dt))
    b = torch.as_tensor(np.asarray(betas), dtype=dt)
    j0 = fn.rest(b)[0]
    with torch.no_grad():
        j = fn(matrix_to_axis_angle(go), matrix_to_axis_angle(loc).reshape(-1, 45), b, wrist - j0)
    return j.double().numpy()




# ------------------------------------------------------------------------------------------- the shape
def track_shape(joints: np.ndarray, present: np.ndarray, score: np.ndarray, side: str,
                settings: "FitSettings | None" = None) -> np.ndarray:
    """One hand's bone lengths [20] (m) for a whole track, from the tracker's per-frame 3D hands.

    joints [T,21,3]: the tracker's metric 3D hand per frame (any placement); present [T];
    score [T] its confidence. Confident frames (score >= settings.shape_min_score; all present
    frames when fewer than 5 are) give, per bone, the median length, and the hand's size, the
    median over frames of the summed lengths. The size is then pulled toward the adult template
    (rest_skeleton, wrist to middle MCP 9.5 cm) in log space, weighing the tracker's size and the
    prior by their spreads, and clamped to a plausible adult range: a single camera cannot see
    size, so this prior is what fixes the hand's depth (see docs/hands.md, "The fit"). The
    proportions (bone / size) follow the tracker where it saw enough frames, else the template.
    """
    st = settings or FitSettings()
    tmpl = bone_lengths(rest_skeleton(side, dtype=torch.float64)).numpy()
    ok = present & (score >= st.shape_min_score)
    if ok.sum() < 5:
        ok = present
    if not ok.any():
        return tmpl.copy()
    bl = np.linalg.norm(np.diff(joints[ok][:, _BONE_PAIRS], axis=2)[:, :, 0], axis=-1).astype(np.float64)
    obs = float(np.log(np.median(bl.sum(1)) / tmpl.sum()))
    w_obs, w_prior = 1.0 / st.shape_obs_sigma**2, 1.0 / st.shape_prior_sigma**2
    log_size = float(np.clip(w_obs * obs / (w_obs + w_prior), *np.log(st.shape_range)))
    n = int(ok.sum())
    prop = np.clip(np.log(np.median(bl, 0) / (tmpl * np.exp(obs))), -0.4, 0.4) * n / (n + st.shape_prop_frames)
    return tmpl * np.exp(log_size + prop)


# --------------------------------------------------------------------------------------------- the fit
@dataclass
class FitSettings:
    """Weights of the per-clip fit, each as the spread (sigma) of its residual, and the shape prior."""

    iterations: int = 12  # Levenberg-Marquardt steps over the whole stretch (with max_turn_rad: as close as 24 without)
    max_turn_rad: float = 0.25  # largest rotation one step may make (rad): the linear model holds only for small turns
    reproj_sigma: float = 0.002  # 2D keypoint error, as a fraction of the image diagonal
    robust: float = 3.0  # Cauchy scale of the 2D term, in sigmas: a wrong keypoint pulls less
    pose_sigma: float = 0.7  # rad: finger rotations against the tracker's own 3D hand
    orient_sigma: float = 0.6  # rad: wrist rotation against the tracker's
    accel_xy_m: float = 0.02  # wrist acceleration per frame^2 across the image (m)
    accel_z_m: float = 0.004  # ... and in depth, which one camera sees worst (m)
    depth_speed_m: float = 0.006  # wrist depth change per frame (m): hands rarely move fast in depth
    turn_rad: float = 0.15  # wrist rotation per frame (rad)
    filled_weight: float = 0.3  # 2D weight of frames interpolated over a tracking gap
    reject: float = 0.15  # a hand-frame whose mean 2D error exceeds this fraction of its 2D size is rejected
    flip_cost: float = 5.0  # Viterbi: cost of one radian of wrist rotation between frames, in 2D sigmas^2 per palm joint
    shape_min_score: float = 0.8  # frames that estimate the shape
    shape_obs_sigma: float = 0.12  # spread of the tracker's hand size (log)
    shape_prior_sigma: float = 0.10  # spread of adult hand size around the template (log)
    shape_range: tuple[float, float] = (0.75, 1.3)  # plausible sizes relative to the template
    shape_prop_frames: float = 10.0  # frames at which the tracker's proportions weigh as much as the template's


@dataclass
class HandFit:
    """The fit of a stretch of frames (T) of both hands: pose, joints and what it rejected."""

    global_orient: np.ndarray  # float64 [T,2,3,3]
    local_rots: np.ndarray  # float64 [T,2,15,3,3] MANO order
    transl: np.ndarray  # float64 [T,2,3] wrist, camera frame (m)
    joints: np.ndarray  # float64 [T,2,21,3] FK with the track's shape, camera frame; 0 where absent
    present: np.ndarray  # bool [T,2] present and not rejected
    rejected: np.ndarray  # bool [T,2] present before, rejected by the fit


_BONE_PAIRS = np.array([(PARENTS[c], c) for c in range(1, 21)])
_PARENT_ROT = [3 * f + k if k else 0 for f in range(5) for k in range(3)]  # of each finger rotation, in the 16
_CHAIN_PIVOT = torch.tensor([c[:3] for c in FINGER_CHAINS])  # [5,3] joints the finger rotations turn about
_CHAIN_MOVED = torch.tensor([c[1:] for c in FINGER_CHAINS])  # [5,3] joints they move
_CHAIN_MASK = torch.tril(torch.ones(3, 3, dtype=torch.float64))  # [moved j, pivot k]: j moves with k when j >= k


@dataclass
class _Frames:
    """The present hand-frames of the fit, flattened [N], sorted by hand, then time."""

    t: np.ndarray  # frame of each
    h: np.ndarray  # hand of each
    pairs: np.ndarray  # [M,2] consecutive frames of one hand inside one segment (velocity)
    triples: np.ndarray  # [M,3] the same for three frames (acceleration)
    kp: torch.Tensor  # [N,21,2] pixels
    conf: torch.Tensor  # [N] weight of the 2D term
    rest: torch.Tensor  # [N,21,3]
    target_go: torch.Tensor  # [N,3,3] the tracker's wrist rotation
    target_loc: torch.Tensor  # [N,15,3,3] the tracker's finger rotations


def _frames(kp2d, joints, present, weight, segment, shape) -> _Frames:
    """Flatten, and the tracker's own pose (IK of its 3D joints on the track's shape) as target and start."""
    h_idx, t_idx = np.nonzero(present.T)  # sorted by hand, then time
    n = len(t_idx)
    prev_ok = np.zeros(n, bool)  # the hand-frame before is this one's previous frame, same segment
    prev_ok[1:] = (h_idx[1:] == h_idx[:-1]) & (t_idx[1:] == t_idx[:-1] + 1) & (segment[t_idx[1:]] == segment[t_idx[:-1]])
    mid = np.flatnonzero(prev_ok[:-1] & prev_ok[1:])
    triples = np.stack([mid - 1, mid, mid + 1], 1)
    after = np.flatnonzero(prev_ok)
    pairs = np.stack([after - 1, after], 1)
    rest = shape_rest(shape)[h_idx]
    j = torch.from_numpy(np.asarray(joints[t_idx, h_idx], np.float64))
    go, loc, _ = ik(j, rest=rest)
    return _Frames(t_idx, h_idx, pairs, triples, torch.from_numpy(np.asarray(kp2d[t_idx, h_idx], np.float64)),
                   torch.from_numpy(np.asarray(weight[t_idx, h_idx], np.float64)), rest, go, loc)


@contextmanager
def one_thread():
    """One thread for torch, OpenMP and BLAS (numpy's, scipy's) inside: fits are thousands of
    small ops, and extra threads only add synchronisation. Without it, with OMP_NUM_THREADS
    unset on 2 busy cores, a video's fit took 3.8 s instead of 0.16 s (BENCHMARKS.md). Restored
    afterwards."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(n)


def _skew(v: torch.Tensor) -> torch.Tensor:
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(v.shape + (3,))


class _Problem:
    """The fit's cost and its Gauss-Newton normal equations for the flattened hand-frames.

    Unknowns per hand-frame: the wrist translation (3), and an increment (3) of each of the 16
    rotations (wrist, 15 finger joints) in the camera frame about its joint. Residuals: the 2D
    error of the 21 joints (robust, weighted by the tracker's confidence), the rotations' distance
    to the tracker's own 3D hand, and the motion prior over consecutive frames of one hand: the
    wrist's acceleration, its depth velocity and its rotation velocity.
    """

    def __init__(self, fr: _Frames, intrinsics, diag: float, st: FitSettings):
        self.fr, self.st = fr, st
        self.k = [float(x) for x in intrinsics]
        self.sigma = st.reproj_sigma * diag  # px
        self.pose_w = st.pose_sigma ** -2.0
        self.orient_w = st.orient_sigma ** -2.0
        acc_w = np.array([st.accel_xy_m, st.accel_xy_m, st.accel_z_m, np.inf, np.inf, np.inf]) ** -2.0
        vel_w = np.array([np.inf, np.inf, st.depth_speed_m, st.turn_rad, st.turn_rad, st.turn_rad]) ** -2.0
        # finite differences over time of the 6 per-frame unknowns [translation, wrist rotation]:
        # (hand-frames [M,k], coefficients [k], weight of each of the 6)
        self.temporal = [(fr.pairs, np.array([-1.0, 1.0]), vel_w), (fr.triples, np.array([1.0, -2.0, 1.0]), acc_w)]
        self._cols = [[torch.from_numpy(idx[:, i]) for i in range(len(coef))] for idx, coef, _ in self.temporal]
        self._band = MotionBand(len(fr.t), self.temporal)
        self._hb_prior = torch.diag(torch.tensor([0.0] * 3 + [self.orient_w] * 3, dtype=torch.float64))
        self._hf_prior = torch.eye(9, dtype=torch.float64) * self.pose_w

    def forward(self, go, loc, t):
        """-> joints [N,21,3], world rotations [N,16,3,3], pixels [N,21,2]."""
        joints, world = fk_world(go, loc, t, self.fr.rest)
        fx, fy, cx, cy = self.k
        z = joints[..., 2].clamp(min=0.02)
        px = torch.stack([fx * joints[..., 0] / z + cx, fy * joints[..., 1] / z + cy], -1)
        return joints, world, px

    def terms(self, go, loc, t, world, px):
        """Residuals: 2D error vectors [N,21,2] px and lengths in sigmas [N,21]; rotation deviations
        from the tracker's [N,16,3] (camera-frame axis-angle); the motion prior's differences, per
        entry of `temporal` [M,6] (translation, then wrist rotation as camera-frame axis-angle)."""
        d = px - self.fr.kp
        s = d.norm(dim=-1) / self.sigma
        n = len(go)
        (c0, c1), _ = self._cols  # consecutive hand-frames: the rotation velocity
        a = torch.cat([go, loc.reshape(-1, 3, 3), go[c1]])  # one log map for all three
        b = torch.cat([self.fr.target_go, self.fr.target_loc.reshape(-1, 3, 3), go[c0]])
        aa = matrix_to_axis_angle(a @ b.transpose(-1, -2))
        e_go, dev, dr = aa[:n], aa[n:16 * n].reshape(n, 15, 3), aa[16 * n:]
        e_loc = (world[:, _PARENT_ROT] @ dev[..., None])[..., 0]
        diffs = []
        for (idx, coef, _), cols in zip(self.temporal, self._cols):
            dt = sum(c * t[i] for c, i in zip(coef, cols))
            diffs.append(torch.cat([dt, dr if len(coef) == 2 else torch.zeros_like(dt)], -1))
        return d, s, torch.cat([e_go[:, None], e_loc], 1), diffs

    def evaluate(self, go, loc, t) -> dict:
        """Everything a step needs at this pose, and its cost."""
        joints, world, px = self.forward(go, loc, t)
        d, s, e, diffs = self.terms(go, loc, t, world, px)
        c = self.st.robust
        data = float((self.fr.conf[:, None] * c * c * torch.log1p((s / c) ** 2)).sum())
        prior = float((e[:, 0] ** 2).sum()) * self.orient_w + float((e[:, 1:] ** 2).sum()) * self.pose_w
        motion = sum(float(((x.numpy() ** 2) * w).sum()) for x, (_, _, w) in zip(diffs, self.temporal))
        return {"pose": (go, loc, t), "joints": joints, "world": world, "d": d, "s": s, "e": e, "diffs": diffs,
                "cost": data + prior + motion}

    def step(self, ev: dict, lam: float):
        """One damped Gauss-Newton step -> (rotation increments [N,16,3], translation increments [N,3]).

        A finger's 3 rotations move only that finger's joints, and touch only their hand-frame;
        the translation and wrist rotation (6) move every joint and are tied to the neighbouring
        frames by the motion prior. So each finger is eliminated per hand-frame (batched 9x9
        Cholesky: the Schur complement) and the 6 solved as one sparse banded system over the
        whole stretch.
        """
        d, s, e, diffs = ev["d"], ev["s"], ev["e"], ev["diffs"]
        n = len(d)
        jb, jf = self._jacobian(ev["joints"])  # [N,21,2,6], [N,5,3,2,9]
        c = self.st.robust
        w = (self.fr.conf[:, None] / self.sigma**2 / (1 + (s / c) ** 2))[..., None]  # [N,21,1]
        jbw = (jb * w[..., None]).reshape(n, 42, 6)
        hgb = jbw.mT @ torch.cat([jb.reshape(n, 42, 6), d.reshape(n, 42, 1)], -1)  # [N,6,7]: J'WJ | J'Wd
        hb, gb = hgb[..., :6] + self._hb_prior, hgb[..., 6]
        gb[:, 3:] += e[:, 0] * self.orient_w
        chain = _CHAIN_MOVED
        jfw = (jf * w[:, chain][..., None]).reshape(n, 5, 6, 9)  # a finger's 3 joints x 2 pixel rows
        rhs = torch.cat([jf.reshape(n, 5, 6, 9), jb[:, chain].reshape(n, 5, 6, 6), d[:, chain].reshape(n, 5, 6, 1)], -1)
        h = jfw.mT @ rhs  # [N,5,9,16]: the finger's own 9x9 | its coupling to the shared 6 | gradient
        hf, hfb = h[..., :9] + self._hf_prior, h[..., 9:15]
        gf = h[..., 15] + e[:, 1:].reshape(n, 5, 9) * self.pose_w
        torch.diagonal(hf, dim1=-2, dim2=-1).mul_(1 + lam)  # Marquardt's scaled damping
        torch.diagonal(hb, dim1=-2, dim2=-1).mul_(1 + lam)
        x = torch.cholesky_solve(torch.cat([hfb, gf[..., None]], -1), torch.linalg.cholesky(hf))  # [N,5,9,7]
        schur = hfb.reshape(n, 45, 6).mT @ x.reshape(n, 45, 7)  # [N,6,7]
        S, sg = hb - schur[..., :6], gb - schur[..., 6]
        db = self._band.solve(S, sg, diffs)
        da = -(x[..., 6] + (x[..., :6] @ db[:, None, :, None])[..., 0])  # [N,5,9]
        rot = torch.cat([db[:, None, 3:], da.reshape(n, 15, 3)], 1)
        shorten = (self.st.max_turn_rad / rot.norm(dim=-1).clamp(min=1e-12)).clamp(max=1.0)  # [N,16]
        return rot * shorten[..., None], db[:, :3]

    def _jacobian(self, joints: torch.Tensor):
        """d pixels / d unknowns: of the 6 shared ones (translation, wrist rotation) for every joint
        [N,21,2,6], and of each finger's 9 for its 3 moving joints [N,5,3,2,9]. A rotation about
        pivot q moves joint p by delta x (p - q); through the projection's rows r that is
        (p - q) x r."""
        fx, fy, _, _ = self.k
        x, y, z = joints.unbind(-1)
        z = z.clamp(min=0.02)
        zero = torch.zeros_like(z)
        P = torch.stack([torch.stack([fx / z, zero, -fx * x / z**2], -1),
                         torch.stack([zero, fy / z, -fy * y / z**2], -1)], -2)  # [N,21,2,3]
        lever = (joints - joints[:, :1])[:, :, None].expand_as(P)
        jb = torch.cat([P, torch.cross(lever, P, dim=-1)], -1)
        moved = joints[:, _CHAIN_MOVED]  # [N,5,3,3]
        piv = joints[:, _CHAIN_PIVOT]  # [N,5,3,3]
        lever = moved[:, :, :, None, None, :] - piv[:, :, None, None, :, :]  # [N,5,3j,1,3k,3]
        Pf = P[:, _CHAIN_MOVED][:, :, :, :, None, :]  # [N,5,3j,2,1,3]
        jf = torch.cross(lever.expand(-1, -1, -1, 2, -1, -1), Pf.expand(-1, -1, -1, -1, 3, -1), dim=-1)
        jf = jf * _CHAIN_MASK[:, None, :, None]  # joint j moves with pivot k when j >= k
        return jb, jf.reshape(jf.shape[:4] + (9,))

    @staticmethod
    def apply(ev: dict, da, db):
        """The increments applied: rotations in the camera frame about their joints."""
        (go, loc, t), world = ev["pose"], ev["world"]
        go2 = axis_angle_to_matrix(da[:, 0]) @ go
        inc = axis_angle_to_matrix((world[:, 1:].transpose(-1, -2) @ da[:, 1:, :, None])[..., 0])
        return go2, loc @ inc, t + db


class MotionBand:
    """The coupled system of a step: (blockdiag(S) + motion-prior Hessian) x = -(sg + motion-prior
    gradient) for the 6 shared unknowns of every hand-frame [N,6]. The motion prior links a
    hand-frame only to the next two (the frames are sorted by hand and time), so the system is
    banded (LAPACK's banded Cholesky: linear in the frames). The prior's part of the band, and where
    S goes in it, do not change between steps: laid out once."""

    K = 6

    def __init__(self, n: int, temporal: list):
        k = self.K
        self.n, self.temporal, self.u = n, temporal, 3 * k - 1
        blocks = np.zeros((3, n, k, k))  # blocks[o, m]: the 6x6 block between hand-frames m and m + o
        for idx, coef, w in temporal:
            for i in range(len(coef)):
                for j in range(i, len(coef)):
                    blocks[j - i, idx[:, i]] += np.diag(coef[i] * coef[j] * w)  # a frame is once per column
        self.ab = np.zeros((self.u + 1, n * k))  # LAPACK's lower band storage: ab[r - c, c] = A[r, c], r >= c
        m, p, q = np.meshgrid(np.arange(n), np.arange(k), np.arange(k), indexing="ij")
        for o in range(3):
            row, col = k * (m + o) + q, k * m + p  # A[row, col] = A[col, row] = blocks[o][m, p, q]
            keep = (row >= col) & (m + o < n)
            self.ab[row[keep] - col[keep], col[keep]] = blocks[o][keep]
        keep = q >= p  # S's lower triangle, on the band's main blocks (S is symmetric)
        self.s_at = ((q - p)[keep], (k * m + p)[keep])
        self.s_keep = torch.from_numpy(keep)

    def solve(self, S: torch.Tensor, sg: torch.Tensor, diffs: list) -> torch.Tensor:
        from scipy.linalg import solveh_banded

        ab = self.ab.copy()
        ab[self.s_at] += S[self.s_keep].numpy()
        g = sg.numpy().copy()
        for x, (idx, coef, w) in zip(diffs, self.temporal):
            xw = x.numpy() * w
            for i in range(len(coef)):
                g[idx[:, i]] += coef[i] * xw
        x = solveh_banded(ab, -g.ravel(), lower=True, check_finite=False)  # lower: 10x faster than upper here
        return torch.from_numpy(x).reshape(self.n, self.K)


def _palm_normals(rest: torch.Tensor) -> torch.Tensor:
    n = torch.cross(rest[..., 9, :] - rest[..., 0, :], rest[..., 17, :] - rest[..., 5, :], dim=-1)
    return n / n.norm(dim=-1, keepdim=True)


def _unflip(prob: _Problem) -> torch.Tensor:
    """The wrist rotation of each hand-frame: the tracker's, or its depth twin, chosen by Viterbi.

    A flat hand and its mirror image in depth (the palm turned toward instead of away from the
    camera, `Mz R M0`: depth reflected, the hand reflected through its own palm plane, still a
    rotation) draw the same picture; a single view's 3D landmarks jump between the two. Each
    hand-frame keeps the candidate that its 2D keypoints favour (their robust error with the
    track's shape and the tracker's finger pose), traded against the rotation between consecutive
    frames (`flip_cost` per radian): a flip survives only where the 2D evidence pays for it.
    """
    fr, st = prob.fr, prob.st
    a = fr.target_go
    n0 = _palm_normals(fr.rest)
    m0 = torch.eye(3, dtype=a.dtype) - 2 * n0[..., :, None] * n0[..., None, :]
    mz = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=a.dtype))
    cands = torch.stack([a, mz @ a @ m0], 1)  # [N,2,3,3]
    unary = torch.stack([_palm_2d_cost(prob, cands[:, i]) for i in range(2)], 1).numpy()  # [N,2]
    rel = cands[:-1, :, None].transpose(-1, -2) @ cands[1:, None]  # [N-1,2,2,3,3]
    cos = ((torch.diagonal(rel, dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    pair = (st.flip_cost * len(_PALM) * torch.arccos(cos)).numpy()  # [N-1,2(prev),2(cur)]
    linked = (fr.h[1:] == fr.h[:-1]) & (fr.t[1:] == fr.t[:-1] + 1)
    choice = viterbi(unary, pair, linked)
    return cands[torch.arange(len(a)), torch.from_numpy(choice)]


def viterbi(unary: np.ndarray, pair: np.ndarray, linked: np.ndarray) -> np.ndarray:
    """Cheapest two-state sequence [N] over chains (item i+1 continues item i where linked[i]),
    without a loop over items: min-marginals from a forward and a backward min-plus scan."""
    n = len(unary)
    trans = np.where(linked[:, None, None], pair, 0.0) + unary[1:, None, :]  # [N-1,prev,cur]
    first = np.broadcast_to(unary[:1, None, :], (1, 2, 2))
    fwd = _minplus_prefix(np.concatenate([first, trans])).min(1)  # [N,2]: best cost ending in each state
    rev = np.concatenate([trans[::-1].transpose(0, 2, 1), np.zeros((1, 2, 2))])
    bwd = np.zeros((n, 2))
    bwd[:-1] = _minplus_prefix(rev[:-1])[::-1].min(1)  # best cost of what follows each state
    return (fwd + bwd).argmin(1)


def _minplus_prefix(m: np.ndarray) -> np.ndarray:
    """Inclusive prefix products [N,2,2] of 2x2 matrices in the (min, +) semiring (Hillis-Steele:
    log2 N vectorised rounds)."""
    out = m.copy()
    k = 1
    while k < len(out):
        prod = np.min(out[:-k, :, :, None] + out[k:, None, :, :], axis=2)
        out = np.concatenate([out[:k], prod])
        k *= 2
    return out


def _palm_2d_cost(prob: _Problem, go: torch.Tensor) -> torch.Tensor:
    """Robust 2D cost [N] of each hand-frame's palm (wrist, thumb base, four knuckles: rigid in the
    hand model, so the fingers' pose does not enter) with this wrist rotation, placed in closed form."""
    fr = prob.fr
    palm = [0, *_PALM]
    local = (go[:, None] @ (fr.rest[:, palm] - fr.rest[:, :1])[..., None])[..., 0]
    t = solve_translations(local, fr.kp[:, palm], prob.k)
    fx, fy, cx, cy = prob.k
    p = local + t[:, None]
    z = p[..., 2].clamp(min=0.02)
    px = torch.stack([fx * p[..., 0] / z + cx, fy * p[..., 1] / z + cy], -1)
    s = (px - fr.kp[:, palm]).norm(dim=-1) / prob.sigma
    c = prob.st.robust
    return (fr.conf[:, None] * c * c * torch.log1p((s / c) ** 2)).sum(-1)


def solve_translations(local: torch.Tensor, kp2d: torch.Tensor, intrinsics) -> torch.Tensor:
    """Translations t [N,3] so that the points local [N,21,3] + t project onto kp2d [N,21,2]
    (pixels; NaN keypoints ignored), in closed form: each point gives two equations linear in t,
    fx (X + tx) = (u - cx) (Z + tz) and the same in y."""
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    du, dv = kp2d[..., 0] - cx, kp2d[..., 1] - cy
    ok = (torch.isfinite(du) & torch.isfinite(dv)).to(local.dtype)
    du, dv = torch.nan_to_num(du), torch.nan_to_num(dv)
    z, one = torch.zeros_like(du), torch.ones_like(du)
    A = torch.cat([torch.stack([fx * one, z, -du], -1), torch.stack([z, fy * one, -dv], -1)], 1)  # [N,42,3]
    b = torch.cat([du * local[..., 2] - fx * local[..., 0], dv * local[..., 2] - fy * local[..., 1]], 1)
    A, b = A * ok.repeat(1, 2)[..., None], b * ok.repeat(1, 2)
    AtA = A.transpose(1, 2) @ A + 1e-9 * torch.eye(3, dtype=A.dtype)
    return torch.linalg.solve(AtA, (A.transpose(1, 2) @ b[..., None]))[..., 0]


def fit_hands(kp2d: np.ndarray, joints: np.ndarray, present: np.ndarray, weight: np.ndarray, segment: np.ndarray,
              shape: np.ndarray, intrinsics, image_diag: float, settings: FitSettings | None = None) -> HandFit:
    """Fit the track's rigid hand to every present hand-frame of T frames at once.

    kp2d [T,2,21,2] the tracker's keypoints (pixels); joints [T,2,21,3] its 3D hands in the camera
    frame (start and finger-pose target); present [T,2]; weight [T,2] confidence of each
    hand-frame's keypoints; segment [T] clip of each frame (acceleration never spans two);
    shape [2,20] bone lengths of the two tracks; intrinsics [fx, fy, cx, cy]; image_diag pixels.
    Minimises, by damped Gauss-Newton over the whole stretch (`_Problem`): the robust 2D error,
    the rotations' distance to the tracker's 3D hand, the wrist's acceleration; depth comes from
    the fixed shape. Starts from the tracker's pose on the track's shape with the wrist rotation
    unflipped (`_unflip`) and the wrist placed in closed form (`solve_translations`).
    """
    st = settings or FitSettings()
    with one_thread(), torch.no_grad():
        fr = _frames(kp2d, joints, present, weight, np.asarray(segment), shape)
        if len(fr.t) == 0:
            return _assemble(fr, *(torch.zeros((0,) + s, dtype=torch.float64) for s in ((3, 3), (15, 3, 3), (3,))),
                             torch.zeros(0, dtype=torch.bool), present)
        prob = _Problem(fr, intrinsics, image_diag, st)
        loc = fr.target_loc.clone()
        go = fr.target_go = _unflip(prob)
        local, _ = fk_world(go, loc, torch.zeros(len(go), 3, dtype=go.dtype), fr.rest)
        t = solve_translations(local, fr.kp, prob.k)
        go, loc, t = _minimise(prob, go, loc, t)
        rejected = _rejected(prob, go, loc, t)
    return _assemble(fr, go, loc, t, rejected, present)


def _minimise(prob: _Problem, go, loc, t):
    """Levenberg-Marquardt: a step that does not lower the cost is retried with more damping."""
    lam, ev = 1e-3, prob.evaluate(go, loc, t)
    for _ in range(prob.st.iterations):
        new = prob.evaluate(*prob.apply(ev, *prob.step(ev, lam)))
        if new["cost"] < ev["cost"]:
            done = ev["cost"] - new["cost"] < 1e-4 * ev["cost"]
            ev, lam = new, max(lam / 3, 1e-6)
            if done:
                break
        else:
            lam *= 8
    return ev["pose"]


def _rejected(prob: _Problem, go, loc, t) -> torch.Tensor:
    """Hand-frames the rigid hand cannot explain: mean 2D error above `reject` x the 2D size of
    the tracker's hand (the diagonal of its keypoints' box) -> [N] bool."""
    _, _, px = prob.forward(go, loc, t)
    err = (px - prob.fr.kp).norm(dim=-1).mean(-1)
    size = (prob.fr.kp.amax(1) - prob.fr.kp.amin(1)).norm(dim=-1).clamp(min=1.0)
    return err > prob.st.reject * size


def _assemble(fr: _Frames, go, loc, t, rejected, present) -> HandFit:
    """Flattened hand-frames back on the [T,2] grid (identity rotations, zeros where absent)."""
    T = len(present)
    out_go = np.broadcast_to(np.eye(3), (T, 2, 3, 3)).copy()
    out_loc = np.broadcast_to(np.eye(3), (T, 2, 15, 3, 3)).copy()
    out_t, out_j = np.zeros((T, 2, 3)), np.zeros((T, 2, 21, 3))
    rej = np.zeros((T, 2), bool)
    if len(fr.t):
        joints, _ = fk_world(go, loc, t, fr.rest)
        out_go[fr.t, fr.h], out_loc[fr.t, fr.h], out_t[fr.t, fr.h] = go.numpy(), loc.numpy(), t.numpy()
        out_j[fr.t, fr.h] = joints.numpy()
        rej[fr.t, fr.h] = rejected.numpy()
    keep = present & ~rej
    out_j[~keep] = 0.0
    return HandFit(out_go, out_loc, out_t, out_j, keep, rej)


def clip_motion(global_orient: np.ndarray, local_rots: np.ndarray, transl: np.ndarray, present: np.ndarray,
                shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A clip's fitted poses ([T,2,...] camera frame) -> (motion float32 [T,198], joints3d float32 [T,2,21,3]).

    `motion` is relative to the clip's origin (the first present wrist, the left one if both),
    absent frames hold identity rotations and the hand's last valid translation
    (clutch_core.hands.motion); `joints3d` is forward kinematics of exactly that float32 motion
    with the track's `shape` [2,20], put back at the origin: the two agree by construction.
    """
    from .motion import fill_last_valid, hand_to_vec, identity_hand_vec

    pres = torch.from_numpy(np.asarray(present, bool))
    t = int(np.flatnonzero(present.any(1))[0])
    origin = transl[t, 0 if present[t, 0] else 1]
    vec = hand_to_vec(torch.from_numpy(global_orient), torch.from_numpy(local_rots), torch.from_numpy(transl - origin))
    vec = torch.where(pres[..., None], vec, identity_hand_vec(vec.dtype))
    trans = fill_last_valid(vec[..., 96:], pres)
    motion = torch.cat([vec[..., :96], trans], -1).reshape(len(present), 2 * HAND_DIM).float()
    origin32 = torch.from_numpy(origin.astype(np.float32)).double()
    joints = motion_to_joints(motion.double(), shape_rest(shape)) + origin32
    joints = torch.where(pres[..., None, None], joints, torch.zeros_like(joints))
    return motion.numpy(), joints.float().numpy()


def mano_clip_motion(joints: np.ndarray, present: np.ndarray, betas: Mapping[str, Any], models: Mapping[str, Any],
                     config=None) -> tuple[np.ndarray, np.ndarray]:
    """MANO with each track's fixed `betas` fitted to a clip's fitted joints ([T,2,21,3] camera frame)
    -> (motion float32 [T,198] of true MANO rotations, joints3d float32: MANO's joints of that motion)."""
    from .mano import fit_mano
    from .motion import fill_last_valid, identity_hand_vec

    T = len(present)
    pres = torch.from_numpy(np.asarray(present, bool))
    t0 = int(np.flatnonzero(present.any(1))[0])
    origin = joints[t0, 0 if present[t0, 0] else 1, 0].astype(np.float64)
    vec = identity_hand_vec(torch.float64).repeat(T, 2, 1)
    for h, side in enumerate(SIDES):
        if present[:, h].any():
            fit = fit_mano(torch.from_numpy(np.asarray(joints[:, h] - origin, np.float32)), models[side], side,
                           pres[:, h], config, torch.as_tensor(np.asarray(betas[side]), dtype=torch.float32))
            vec[:, h] = torch.where(pres[:, h, None], fit.to_hand_vec().double(), vec[:, h])
    h0 = 0 if present[t0, 0] else 1
    shift = vec[t0, h0, 96:].clone()  # the fitted first wrist becomes the origin exactly
    origin = origin + shift.numpy()
    trans = fill_last_valid(vec[..., 96:] - shift, pres)
    motion = torch.cat([vec[..., :96], trans], -1).reshape(T, 2 * HAND_DIM).float()
    out = np.stack([mano_joints(motion[:, h * HAND_DIM:(h + 1) * HAND_DIM].double(), betas[side], models[side])
                    for h, side in enumerate(SIDES)], 1) + origin.astype(np.float32)
    return motion.numpy(), np.where(present[..., None, None], out, 0.0).astype(np.float32)
