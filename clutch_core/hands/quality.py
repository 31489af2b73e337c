"""Ground-truth-free quality figures of stored hands: one definition, used by the build (the row's
`quality` struct), the synthetic corpus and benchmarks/track_quality.py.

All take numpy arrays of one clip in the storage layout: joints [T,2,21,3] (camera frame,
metres), keypoints [T,2,21,2] (pixels of the stored image size), presence [T,2], intrinsics
[fx, fy, cx, cy]. Each figure says what a user can trust:

- reprojection error: the pixel distance between the 3D joints projected through the stored
  intrinsics and the tracker's 2D keypoints (do the joints land on the image?);
- wrist-depth jump: |change of the wrist's depth| between consecutive present frames (metres;
  depth is what one camera sees worst);
- bone-length CV: per bone std / mean over the clip's frames (a rigid hand has 0);
- jitter: mean |acceleration| of the joints (m/s^2).
"""
from __future__ import annotations

import numpy as np

from layout import PARENTS

_BONE_CHILD = np.arange(1, 21)
_BONE_PARENT = np.asarray(PARENTS[1:])


def project(joints: np.ndarray, intrinsics) -> np.ndarray:
    """[...,3] camera points (z forward) -> [...,2] pixels (pinhole)."""
    fx, fy, cx, cy = (float(x) for x in intrinsics)
    z = joints[..., 2]
    return np.stack([fx * joints[..., 0] / z + cx, fy * joints[..., 1] / z + cy], -1)


def reprojection_px(joints: np.ndarray, kp2d: np.ndarray, present: np.ndarray, intrinsics) -> np.ndarray:
    """Pixel error of every joint of every present hand-frame with a finite keypoint ([n] float64)."""
    j = joints[present].astype(np.float64)  # [n,21,3]
    k = kp2d[present].astype(np.float64)
    if not len(j):
        return np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.linalg.norm(project(j, intrinsics) - k, axis=-1)
    return err[np.isfinite(err)]


def wrist_depth_jumps(joints: np.ndarray, present: np.ndarray) -> np.ndarray:
    """|wrist depth change| (m) between consecutive frames where the hand is present ([n] float64)."""
    both = present[1:] & present[:-1]  # [T-1,2]
    dz = np.abs(np.diff(joints[:, :, 0, 2].astype(np.float64), axis=0))
    return dz[both]


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """[...,21,3] -> [...,20]; bone i ends at joint i+1 (MediaPipe order)."""
    return np.linalg.norm(joints[..., _BONE_CHILD, :] - joints[..., _BONE_PARENT, :], axis=-1)


def bone_length_cv(joints: np.ndarray, present: np.ndarray) -> float:
    """Mean over bones and hands (seen in >= 2 frames) of std / mean of the bone length."""
    cvs = []
    for h in range(present.shape[1]):
        if present[:, h].sum() >= 2:
            bl = bone_lengths(joints[present[:, h], h].astype(np.float64))
            cvs.append(float((bl.std(0) / np.maximum(bl.mean(0), 1e-9)).mean()))
    return float(np.mean(cvs)) if cvs else 0.0


def jitter(joints: np.ndarray, present: np.ndarray, fps: float) -> float:
    """Mean |acceleration| (m/s^2) of the joints over frame triples where the hand is present."""
    out = []
    for h in range(present.shape[1]):
        p = present[:, h]
        trip = p[2:] & p[1:-1] & p[:-2]
        if trip.any():
            j = joints[:, h].astype(np.float64)
            acc = (j[2:] - 2 * j[1:-1] + j[:-2])[trip] * fps**2
            out.append(float(np.linalg.norm(acc, axis=-1).mean()))
    return float(np.mean(out)) if out else 0.0


def track_reprojection(joints: np.ndarray, kp2d: np.ndarray, present: np.ndarray, intrinsics) -> dict:
    """Per hand track (each side of the clip): every present frame's mean joint error (px), then its
    mean, median and p95 over the track's frames; None for a hand absent from the clip. The pooled
    median of the clip hides a track that is off in many frames; the track's mean does not."""
    out = {}
    for h, side in enumerate(("left", "right")):
        p = present[:, h]
        e = np.zeros(0)
        if p.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                err = np.linalg.norm(project(joints[p, h].astype(np.float64), intrinsics)
                                     - kp2d[p, h].astype(np.float64), axis=-1)  # [n,21]
            e = np.nanmean(np.where(np.isfinite(err), err, np.nan), -1) if err.size else e
            e = e[np.isfinite(e)]
        for stat, f in (("mean", np.mean), ("median", np.median), ("p95", lambda x: np.percentile(x, 95))):
            out[f"reproj_track_{stat}_{side}"] = float(f(e)) if len(e) else None
    return out


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else 0.0


def clip_quality(joints: np.ndarray, kp2d: np.ndarray, present: np.ndarray, score: np.ndarray, intrinsics,
                 fps: float, fit_rejected: float = 0.0) -> dict[str, float]:
    """The row's `quality` struct (storage.schema.QUALITY_TYPE) of one clip, without `flags`.

    score [T,2]: the tracker's handedness confidence; fit_rejected: the fraction of the clip's
    tracked hand-frames the fit rejected (storage.schema documents each field).
    """
    err = reprojection_px(joints, kp2d, present, intrinsics)
    return {
        "presence_left": float(present[:, 0].mean()),
        "presence_right": float(present[:, 1].mean()),
        "jitter": jitter(joints, present, fps),
        "bone_length_cv": bone_length_cv(joints, present),
        "handedness_score": float(score[present].mean()) if present.any() else 0.0,
        "reproj_px_median": _pct(err, 50),
        "reproj_px_p95": _pct(err, 95),
        "wrist_depth_jump_p95": _pct(wrist_depth_jumps(joints, present), 95),
        "fit_rejected": float(fit_rejected),
        **track_reprojection(joints, kp2d, present, intrinsics),
    }
