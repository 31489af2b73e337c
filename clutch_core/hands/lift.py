"""From per-frame 2D/3D hand detections to clean camera-frame two-hand motion.

Steps (each a function, composed by annotators.pipeline):
1. `associate`: detections -> left/right slots over time: tracklets by motion
   continuity, each tracklet's side by its summed handedness votes (see there).
2. `lift_to_camera`: wrist translation from the 2D-3D correspondences of the metric,
   hand-centred 3D landmarks and the 2D keypoints (closed-form least squares; see there
   why not a full PnP) -> 21 joints in the camera frame.
3. `fill_gaps` (linear, gaps <= max_gap frames) and `smooth` (Savitzky-Golay per present
   run, as the paper).
4. `to_motion`: skeleton IK (clutch_core.hands.motion.joints_to_motion) -> [T, 198],
   translation shifted so the first valid wrist of the clip is the origin; or
   `to_motion_mano`: a MANO fit (clutch_core.hands.mano) when MANO files are given.
The per-clip fit that replaces steps 3-4 by default (one rigid hand per track, fitted to the
image) is clutch_core.hands.fit; the quality figures are clutch_core.hands.quality.

Default intrinsics (no calibration in the manifest): fx = fy = 0.5 * max(W, H), principal
point at the image centre, i.e. a 90 degree field of view across the long side. Head-
mounted egocentric cameras are wide (GoPro linear ~90 deg, wide modes up to ~120 deg);
the classic 0.8 * max(W, H) (~64 deg) puts hands about 1.6x too far for such footage.
Only the wrist depth depends on it (depth scales with fx); hand shape does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layout import FRAME_DIM, HAND_DIM, SIDES, TRANSL

_CENTROID = (0, 5, 9, 13, 17)  # wrist and MCPs: stable under finger motion


@dataclass
class HandTracks:
    """Two slots (0 = left, 1 = right) per frame, T frames."""

    kp2d: np.ndarray  # float32 [T, 2, 21, 2] pixels, NaN absent
    world: np.ndarray  # float32 [T, 2, 21, 3] hand-centred metres, NaN absent
    score: np.ndarray  # float32 [T, 2] probability that the detection is this slot's side
    present: np.ndarray  # bool [T, 2]

    def __getitem__(self, sl: slice) -> "HandTracks":
        return HandTracks(self.kp2d[sl], self.world[sl], self.score[sl], self.present[sl])


def default_intrinsics(width: int, height: int) -> np.ndarray:
    """[fx, fy, cx, cy] for an uncalibrated wide egocentric camera (see module docstring)."""
    f = 0.5 * max(width, height)
    return np.array([f, f, width / 2.0, height / 2.0], np.float32)


def _side_logodds(label: np.ndarray, score: np.ndarray) -> np.ndarray:
    """log p(right) / p(left) of each detection from its label and confidence ([T, N])."""
    s = np.clip(score, 0.5, 0.999)
    lo = np.log(s / (1 - s))
    return np.where(label == 1, lo, -lo) * (label >= 0)


def _tracklets(cents: np.ndarray, valid: np.ndarray, gate: float, max_skip: int) -> np.ndarray:
    """Link detections over time by centroid distance -> tracklet id [T, N] (-1 = none).

    A detection continues the nearest tracklet seen in the last max_skip + 1 frames when it
    is within gate * (1 + frames since) pixels; otherwise it starts a new tracklet.
    """
    t_len, n = valid.shape
    ids = np.full((t_len, n), -1, int)
    last: dict[int, tuple[int, np.ndarray]] = {}  # tracklet -> (frame, centroid)
    next_id = 0
    for t in range(t_len):
        pairs = []
        for j in np.flatnonzero(valid[t]):
            for k, (tf, c) in last.items():
                gap = t - tf
                if gap <= max_skip + 1:
                    d = float(np.linalg.norm(cents[t, j] - c))
                    if d < gate * (1 + 0.5 * (gap - 1)):
                        pairs.append((d, int(j), k))
        used_j, used_k = set(), set()
        for d, j, k in sorted(pairs):
            if j not in used_j and k not in used_k:
                ids[t, j] = k
                used_j.add(j), used_k.add(k)
        for j in np.flatnonzero(valid[t]):
            if ids[t, j] < 0:
                ids[t, j], next_id = next_id, next_id + 1
            last[int(ids[t, j])] = (t, cents[t, j])
    return ids


def associate(kp2d, world, label, score, diag: float, gate: float = 0.08, max_skip: int = 5,
              dedup: float = 0.03) -> HandTracks:
    """Detections [T, N, ...] (N any, label -1 = none) -> left/right HandTracks.

    1. Duplicates (centroids closer than dedup * diagonal) keep the more confident one.
    2. Detections are linked into tracklets by motion continuity (`_tracklets`, gate as a
       fraction of the image diagonal per frame, bridging up to max_skip missing frames).
    3. Each tracklet takes the side its summed handedness votes favour (log-odds); when
       two tracklets that share frames want the same side, the weaker one takes the other.
       A single mislabelled frame therefore cannot swap the hands, a consistent label does.
    4. Chirality: a hand whose 3D landmarks look like the other side (the tracker
       confused palm and back, a depth ambiguity of one view) gets its depth mirrored
       (z -> -z about the hand centre), which leaves the 2D projection as it was.
    """
    import torch

    from clutch_core.hands.skeleton import handedness

    t_len, n = label.shape
    cents = kp2d[:, :, _CENTROID].mean(axis=2)  # [T, N, 2], NaN where no detection
    valid = label >= 0
    for t in range(t_len):
        js = [j for j in np.argsort(-score[t]) if valid[t, j]]
        for i, j in enumerate(js):
            if any(np.linalg.norm(cents[t, j] - cents[t, k]) < dedup * diag for k in js[:i] if valid[t, k]):
                valid[t, j] = False
    ids = _tracklets(cents, valid, gate * diag, max_skip)
    votes = _side_logodds(label, score)
    tids = [int(k) for k in np.unique(ids[ids >= 0])]
    strength = {k: float(votes[ids == k].sum()) for k in tids}
    side_of: dict[int, int] = {}
    taken = np.zeros((t_len, 2), bool)
    for k in sorted(tids, key=lambda k: -abs(strength[k])):
        frames = np.flatnonzero((ids == k).any(1))
        want = int(strength[k] > 0)
        side = want if not taken[frames, want].any() else 1 - want
        side_of[k] = side
        taken[frames, side] = True  # a third overlapping tracklet loses its shared frames below

    out = HandTracks(
        np.full((t_len, 2, 21, 2), np.nan, np.float32),
        np.full((t_len, 2, 21, 3), np.nan, np.float32),
        np.zeros((t_len, 2), np.float32),
        np.zeros((t_len, 2), bool),
    )
    looks_left = handedness(torch.from_numpy(np.nan_to_num(world))).numpy()  # [T, N]
    for t, j in zip(*np.nonzero(ids >= 0)):
        h = side_of[int(ids[t, j])]
        if out.present[t, h]:
            continue
        w = world[t, j].copy()
        if looks_left[t, j] != (h == 0):
            w[:, 2] *= -1
        p_right = 1.0 / (1.0 + np.exp(-votes[t, j]))
        out.kp2d[t, h], out.world[t, h] = kp2d[t, j], w
        out.score[t, h], out.present[t, h] = (p_right if h == 1 else 1 - p_right), True
    return out


def lift_to_camera(tracks: HandTracks, intrinsics: np.ndarray, max_reproj: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Place each present hand in the camera frame -> (joints3d float32 [T, 2, 21, 3] metres, ok [T, 2]).

    MediaPipe's world landmarks are metric and already in camera orientation (on the
    sample video the 2D and 3D wrist-to-middle-MCP directions agree, cosine >= 0.98), so
    only the translation is unknown and `fit.solve_translations` finds it in closed form, for
    all hand-frames at once. A full PnP (cv2.solvePnP, SQPnP) also re-estimates the rotation
    and, the palm being nearly planar, flips it between frames (jumps up to 170 degrees
    measured); its translation is no better. Hands that land behind the camera or reproject
    worse than max_reproj * image diagonal are dropped.
    """
    import torch

    from clutch_core.hands.fit import solve_translations
    from clutch_core.hands.quality import project

    cx, cy = float(intrinsics[2]), float(intrinsics[3])
    diag = 2.0 * float(np.hypot(cx, cy))
    t_len = len(tracks.present)
    joints = np.full((t_len, 2, 21, 3), np.nan, np.float32)
    ok = np.zeros((t_len, 2), bool)
    ti, hi = np.nonzero(tracks.present)
    if not len(ti):
        return joints, ok
    w = tracks.world[ti, hi].astype(np.float64)
    p = tracks.kp2d[ti, hi].astype(np.float64)
    with torch.no_grad():
        t = solve_translations(torch.from_numpy(w), torch.from_numpy(p), intrinsics).numpy()
    cam = w + t[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(project(cam, intrinsics) - p, axis=-1).mean(-1)
    good = np.isfinite(cam).all((1, 2)) & (cam[..., 2] > 0.02).all(1) & (err <= max_reproj * diag)
    joints[ti[good], hi[good]] = cam[good]
    ok[ti[good], hi[good]] = True
    return joints, ok


def fill_gaps(joints: np.ndarray, kp2d: np.ndarray, present: np.ndarray, max_gap: int = 5):
    """Linearly interpolate absences of at most max_gap frames between two present frames.

    joints [T, 2, 21, 3], kp2d [T, 2, 21, 2], present [T, 2] -> filled copies of all three.
    """
    joints, kp2d, present = joints.copy(), kp2d.copy(), present.copy()
    for h in range(present.shape[1]):
        idx = np.flatnonzero(present[:, h])
        for a, b in zip(idx[:-1], idx[1:]):
            if 1 < b - a <= max_gap + 1:
                w = (np.arange(a + 1, b) - a) / (b - a)
                for arr in (joints, kp2d):
                    arr[a + 1:b, h] = (1 - w)[:, None, None] * arr[a, h] + w[:, None, None] * arr[b, h]
                present[a + 1:b, h] = True
    return joints, kp2d, present


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def smooth(joints: np.ndarray, present: np.ndarray, window: int = 7, polyorder: int = 2) -> np.ndarray:
    """Savitzky-Golay along time over each present run of each hand ([T, 2, 21, 3] -> same).

    The same numbers as scipy.signal.savgol_filter(mode="interp"): inside a run each frame gets
    the value at its centre of the polynomial fitted to the window around it, the first and last
    window // 2 frames the values of the polynomial fitted to the first and last window. Written
    with numpy (one projection matrix per window size) so the build does not import scipy.signal
    (0.8 s on a busy 2-core machine, paid by the first video of every process).
    """
    out = joints.copy()
    for h in range(present.shape[1]):
        for a, b in _runs(present[:, h]):
            n = b - a
            win = min(window, n if n % 2 else n - 1)
            if win > polyorder:
                out[a:b, h] = _savgol_run(joints[a:b, h], win, polyorder)
    return out


def _savgol_run(x: np.ndarray, win: int, polyorder: int) -> np.ndarray:
    """x [n, ...] (n >= win, win odd) smoothed along axis 0 (see `smooth`)."""
    half = win // 2
    pos = np.arange(win) - half
    vander = pos[:, None] ** np.arange(polyorder + 1)  # [win, order + 1]
    proj = vander @ np.linalg.pinv(vander)  # [win, win]: window values -> fitted values at each position
    flat = x.reshape(len(x), -1).astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(flat, win, axis=0)  # [n - win + 1, F, win]
    out = np.empty_like(flat)
    out[half:len(x) - half] = windows @ proj[half]
    out[:half] = proj[:half] @ flat[:win]
    out[len(x) - half:] = proj[win - half:] @ flat[-win:]
    return out.reshape(x.shape).astype(x.dtype)


def to_motion(joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Skeleton IK -> motion float32 [T, 198]; translation relative to the clip's first valid wrist."""
    import torch

    from clutch_core.hands.motion import joints_to_motion

    motion = joints_to_motion(torch.from_numpy(np.asarray(joints, np.float32)), torch.from_numpy(present)).numpy()
    return _from_first_wrist(motion, joints, present)


def to_motion_mano(joints: np.ndarray, present: np.ndarray, models: dict, fit_config=None) -> np.ndarray:
    """MANO fit per present hand (clutch_core.hands.mano.fit_mano) -> motion float32 [T, 198].

    models: {"left": smplx MANO, "right": smplx MANO}. Rotations are true MANO parameters
    (pose_convention 'mano'); absent frames get identity rotations and the nearest earlier
    (else later) fitted wrist, as in the skeleton-IK path; same origin as `to_motion`.
    """
    import torch

    from clutch_core.hands.mano import fit_mano
    from clutch_core.hands.motion import identity_hand_vec

    t_len = len(present)
    hands = np.tile(identity_hand_vec().numpy(), (t_len, len(SIDES), 1))  # [T, 2, 99]
    for h, side in enumerate(SIDES):
        p = present[:, h]
        if not p.any():
            continue
        fit = fit_mano(torch.from_numpy(np.asarray(joints[:, h], np.float32)), models[side], side,
                       torch.from_numpy(p), fit_config)
        vec = fit.to_hand_vec().detach().float().numpy()
        hands[p, h] = vec[p]
        idx = np.flatnonzero(p)
        src = idx[np.clip(np.searchsorted(idx, np.arange(t_len), side="right") - 1, 0, None)]
        hands[:, h, TRANSL] = vec[src, TRANSL]
    return _from_first_wrist(hands.reshape(t_len, FRAME_DIM), joints, present)


def _from_first_wrist(motion: np.ndarray, joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """motion [T, 198] with each seen hand's translation relative to the clip's origin (`first_wrist`)."""
    from clutch_core.hands.fit import first_wrist

    hands = motion.reshape(len(motion), len(SIDES), HAND_DIM)  # a view
    origin = first_wrist(joints, present)
    for h in range(len(SIDES)):
        if present[:, h].any():
            hands[:, h, TRANSL] -= origin
    return motion.astype(np.float32)
