"""The clean step of build-3dhiw: a video's lifted hands -> the clips' hands, quality and filters.

Per video (all clips at once):
    prepare  per clip window: short gaps filled, Savitzky-Golay smoothing (the fit's start and
             its finger-pose target), per hand-frame confidence of the 2D keypoints
    shape    one hand shape per track (each side over the whole video): clutch_core.hands.fit.track_shape
    fit      `hand_fit="rigid"` (default): the track's rigid hand fitted to every clip's frames
             in one batched solve (clutch_core.hands.fit.fit_hands); `motion` is its output and
             `joints3d` forward kinematics of `motion` with the shape. With MANO files, MANO
             with the track's fixed betas is then fitted to those joints. `hand_fit="lift"`:
             the tracker's lifted joints as they are, with per-frame IK or a MANO fit (the path
             before the fit, kept for comparison; its joints and motion do not agree)
    quality  the row's quality struct (clutch_core.hands.quality.clip_quality)
    filter   clips failing a threshold are dropped, or kept and flagged (`quality_action`)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from layout import FPS, SIDES

HAND_FITS = ("rigid", "lift")
QUALITY_ACTIONS = ("drop", "mark")


@dataclass
class CleanClip:
    """One clip that passed the filters (or was marked), ready to caption and write."""

    start: int  # timeline frames [start, end)
    end: int
    joints: np.ndarray  # float32 [T, 2, 21, 3], 0 where absent
    kp2d: np.ndarray  # float32 [T, 2, 21, 2], NaN where absent
    presence: np.ndarray  # bool [T, 2]
    motion: np.ndarray  # float32 [T, 198]
    quality: dict[str, Any]
    hand_shape: dict[str, Any]
    narration: str | None


@dataclass
class ClipRecord:
    """A clip the filters dropped or marked, for the ledger (storage.ledger.Ledger.record_dropped)."""

    start_s: float
    end_s: float
    reason: str  # the first check it failed (e.g. reproj_px_median)
    detail: str  # every failed check with its value and threshold
    action: str  # 'dropped' or 'marked'


@dataclass
class _Prepared:
    start: int
    end: int
    text: str | None
    joints: np.ndarray  # [T,2,21,3] filled and smoothed tracker joints, 0 where absent
    kp2d: np.ndarray  # [T,2,21,2], NaN where absent
    present: np.ndarray  # [T,2]
    weight: np.ndarray  # [T,2] confidence of the keypoints


def clean_video(hands, windows: Sequence[tuple[int, int, str | None]], image_size: tuple[int, int], cfg,
                timer=None) -> tuple[list[CleanClip], list[ClipRecord], list[tuple[str, int]]]:
    """All clips of one video -> (clips kept, ledger records of dropped/marked clips, drop counts).

    hands: annotators.pipeline.Lifted; windows: (start, end, narration) on the 15 fps timeline;
    image_size: (w, h) of the source; cfg: AnnotateConfig; timer(): called when the fit is done.
    """
    from clutch_core.hands.fit import track_shape

    shapes = np.stack([track_shape(hands.joints[:, h], hands.present[:, h], hands.score[:, h], side)
                       for h, side in enumerate(SIDES)])
    prepared, counts = [], []
    for a, b, text in windows:
        p = _prepare(hands, a, b, text, cfg)
        if p is None:
            counts.append(("no_hands_in_clip", 1))
        else:
            prepared.append(p)
    solved = _solve(prepared, hands, shapes, float(np.hypot(*image_size)), cfg)
    if timer is not None:
        timer()
    clips, records = [], []
    for p, (joints, presence, motion, rejected, shape) in zip(prepared, solved):
        if not presence.any():  # the fit rejected every frame: nothing to keep, whatever the action
            records.append(ClipRecord(p.start / FPS, p.end / FPS, "no_hands_in_clip", "the fit rejected every frame",
                                      "dropped"))
            counts.append(("no_hands_in_clip", 1))
            continue
        score = np.where(presence, hands.score[p.start:p.end], 0.0)
        kp = np.where(presence[..., None, None], p.kp2d, np.nan).astype(np.float32)
        q = _quality(joints, kp, presence, score, hands.intrinsics, rejected)
        failed = quality_checks(q, presence, image_size, cfg)
        q["flags"] = ",".join(name for name, _ in failed)
        if failed:
            rec = ClipRecord(p.start / FPS, p.end / FPS, failed[0][0], "; ".join(d for _, d in failed),
                             "dropped" if cfg.quality_action == "drop" else "marked")
            records.append(rec)
            if rec.action == "dropped":
                counts.append((rec.reason, 1))
                continue
        clips.append(CleanClip(p.start, p.end, joints, kp, presence, motion, q, shape, p.text))
    return clips, records, counts


def _prepare(hands, a: int, b: int, text: str | None, cfg) -> _Prepared | None:
    """Frames [a, b): fill short gaps, smooth, weigh the keypoints; None when no hand is in them."""
    from clutch_core.hands import lift
    from clutch_core.hands.fit import FitSettings

    j, kp, pr = lift.fill_gaps(hands.joints[a:b], hands.kp2d[a:b], hands.present[a:b], cfg.max_gap)
    if not pr.any():
        return None
    j = lift.smooth(j, pr, cfg.smooth_window, cfg.smooth_polyorder)
    filled = pr & ~hands.present[a:b]
    weight = np.clip(hands.score[a:b], 0.5, 1.0) * np.where(filled, FitSettings.filled_weight, 1.0)
    j = np.where(pr[..., None, None], j, 0.0).astype(np.float32)
    kp = np.where(pr[..., None, None], kp, np.nan).astype(np.float32)
    return _Prepared(a, b, text, j, kp, pr, np.where(pr, weight, 0.0))


def _solve(prepared: list[_Prepared], hands, shapes: np.ndarray, diag: float, cfg) -> list[tuple]:
    """Per clip: (joints3d, presence, motion, fraction rejected, hand_shape) by the configured path."""
    if not prepared:
        return []
    models = _mano_models(cfg.mano_dir) if cfg.mano_dir else None
    shape_row = _shape_row(shapes, models)
    if cfg.hand_fit == "lift":
        return [(*_lift_path(p, models, cfg), 0.0, shape_row) for p in prepared]
    from clutch_core.hands.fit import FitSettings, clip_motion, fit_hands, mano_clip_motion

    cat = {k: np.concatenate([getattr(p, k) for p in prepared]) for k in ("kp2d", "joints", "present", "weight")}
    segment = np.concatenate([np.full(p.end - p.start, i) for i, p in enumerate(prepared)])
    fit = fit_hands(cat["kp2d"], cat["joints"], cat["present"], cat["weight"], segment, shapes, hands.intrinsics,
                    diag, FitSettings(iterations=cfg.fit_iterations, pose_sigma=cfg.fit_pose_sigma))
    out, t0 = [], 0
    for p in prepared:
        sl = slice(t0, t0 + p.end - p.start)
        t0 = sl.stop
        present = fit.present[sl]
        rejected = float(fit.rejected[sl].sum() / max(p.present.sum(), 1))
        if not present.any():
            out.append((np.zeros_like(p.joints), present, np.zeros((len(present), 198), np.float32), rejected,
                        shape_row))
        elif models is not None:
            from clutch_core.hands.mano import FitConfig

            motion, joints = mano_clip_motion(fit.joints[sl], present, shape_row, models,
                                              FitConfig(iterations=cfg.mano_iterations))
            out.append((joints, present, motion, rejected, shape_row))
        else:
            motion, joints = clip_motion(fit.global_orient[sl], fit.local_rots[sl], fit.transl[sl], present, shapes)
            out.append((joints, present, motion, rejected, shape_row))
    return out


def _lift_path(p: _Prepared, models, cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracker's lifted joints as they are; motion by per-frame IK, or a MANO fit."""
    from clutch_core.hands import lift

    if models is not None:
        from clutch_core.hands.mano import FitConfig

        motion = lift.to_motion_mano(p.joints, p.present, models, FitConfig(iterations=cfg.mano_iterations))
    else:
        motion = lift.to_motion(p.joints, p.present)
    return p.joints, p.present, motion


def _shape_row(shapes: np.ndarray, models) -> dict[str, Any]:
    """The row's hand_shape: the tracks' bone lengths, or with MANO the betas that match them."""
    from clutch_core.hands.fit import BONE_LENGTHS, MANO_BETAS, shape_rest

    if models is None:
        return {"kind": BONE_LENGTHS, **{s: shapes[h].astype(np.float32).tolist() for h, s in enumerate(SIDES)}}
    from clutch_core.hands.mano import track_betas

    rest = shape_rest(shapes)
    return {"kind": MANO_BETAS,
            **{s: track_betas(models[s], rest[h], s).float().numpy().tolist() for h, s in enumerate(SIDES)}}


def _quality(joints, kp, presence, score, intrinsics, rejected: float) -> dict[str, Any]:
    from clutch_core.hands.quality import clip_quality

    return {**clip_quality(joints, kp, presence, score, intrinsics, FPS, rejected), "flags": ""}


def quality_checks(q: dict[str, Any], presence: np.ndarray, image_size: tuple[int, int], cfg) -> list[tuple[str, str]]:
    """The thresholds a clip fails, in order: [(check name, "value vs threshold")]. The names are
    the quality flags: low_presence, jitter, bone_length_variation, reproj_px_median,
    wrist_depth_jump_p95, fit_rejected."""
    diag = float(np.hypot(*image_size))
    frac = float(presence.any(1).mean()) if len(presence) else 0.0
    checks = [
        ("low_presence", frac < cfg.min_presence, f"hands in {frac:.0%} of frames < {cfg.min_presence:.0%}"),
        ("jitter", q["jitter"] > cfg.max_jitter, f"jitter {q['jitter']:.1f} > {cfg.max_jitter:g} m/s^2"),
        ("bone_length_variation", q["bone_length_cv"] > cfg.max_bone_cv,
         f"bone_length_cv {q['bone_length_cv']:.3f} > {cfg.max_bone_cv:g}"),
        ("reproj_px_median", q["reproj_px_median"] > cfg.max_reproj * diag,
         f"reproj_px_median {q['reproj_px_median']:.1f} > {cfg.max_reproj * diag:.1f} px ({cfg.max_reproj:.2%} of "
         "the diagonal)"),
        ("wrist_depth_jump_p95", q["wrist_depth_jump_p95"] > cfg.max_depth_jump,
         f"wrist_depth_jump_p95 {100 * q['wrist_depth_jump_p95']:.1f} > {100 * cfg.max_depth_jump:g} cm"),
        ("fit_rejected", q["fit_rejected"] > cfg.max_fit_rejected,
         f"fit_rejected {q['fit_rejected']:.0%} > {cfg.max_fit_rejected:.0%}"),
    ]
    return [(name, detail) for name, failed, detail in checks if failed]


_local = threading.local()  # MANO models: one per thread and folder
_warm_lock = threading.Lock()
_warm_started = False


def warm_up_in_background() -> None:
    """Once per process, in a daemon thread: import what the clean step needs (scipy.linalg, the
    fit) and run it on a tiny made-up clip, so the first video does not pay that (~1 s on a busy
    2-core machine) after its tracking. `clutch build` does it while the Prefect server starts;
    other entry points get it at their first video, beside its tracking."""
    global _warm_started
    with _warm_lock:
        if _warm_started:
            return
        _warm_started = True
    threading.Thread(target=_warm_up, name="clutch-warm-clean", daemon=True).start()


def _warm_up() -> None:
    import scipy.linalg  # noqa: F401 - the fit's banded solver
    import torch

    from clutch_core.hands.fit import FitSettings, clip_motion, fit_hands, one_thread
    from clutch_core.hands.quality import clip_quality, project
    from clutch_core.hands.skeleton import bone_lengths, rest_skeleton

    rest = np.stack([rest_skeleton(s, dtype=torch.float64).numpy() for s in SIDES])  # [2,21,3]
    t = np.arange(6)[:, None, None, None]
    joints = rest[None] + np.array([0.0, 0.0, 0.5]) + 0.005 * t * np.array([1.0, 0.0, 0.0])
    k = np.array([500.0, 500.0, 320.0, 240.0])
    kp, present = project(joints, k), np.ones((6, 2), bool)
    shapes = np.stack([bone_lengths(torch.from_numpy(r)).numpy() for r in rest])
    with one_thread():
        fit = fit_hands(kp, joints, present, np.ones((6, 2)), np.zeros(6, int), shapes, k, 800.0,
                        FitSettings(iterations=2))
        motion, j = clip_motion(fit.global_orient, fit.local_rots, fit.transl, fit.present, shapes)
        clip_quality(j, kp, present, np.ones((6, 2)), k, FPS)


def _mano_models(mano_dir: str) -> dict:
    """smplx MANO models for both sides, loaded once per thread and folder."""
    from clutch_core.hands.mano import load_mano

    cache = getattr(_local, "mano", None)
    if cache is None:
        cache = _local.mano = {}
    if mano_dir not in cache:
        cache[mano_dir] = {side: load_mano(mano_dir, side) for side in SIDES}
    return cache[mano_dir]
