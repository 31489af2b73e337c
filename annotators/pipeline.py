"""One video in, clip rows out: the per-video worker of build-3dhiw.

    probe (PyAV headers) -> reader (decord, PyAV fallback) at reduced size -> 15 fps
    timeline, streamed in 1 s chunks -> presence pass (the tracker on the first frame of
    each chunk) -> dense tracking of chunks next to a hand sighting -> left/right
    association -> lift to the camera frame -> clips (narration segments, else hand spans) -> per clip:
    gap filling, smoothing, quality filter, IK -> captions -> rows (storage.schema).

Only per-frame detections (~1 KB per frame) are kept for the whole video; frames are
dropped after each chunk, so memory does not grow with video length.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from annotators import clipping
from annotators.errors import BadVideoError
from annotators.tracking import Detections, HandTracker, load_tracker


def _setting(default: Any, output: bool | str = True) -> Any:
    """A setting with its fingerprint rule: output=True changes the rows, False never does,
    "<field>" changes them only when that field is set (e.g. VLM settings without a VLM do not)."""
    return field(default=default, metadata={"output": output})


@dataclass
class AnnotateConfig:
    """Every setting of the per-video worker. `fingerprint()` hashes only the settings that change
    the rows (field metadata "output", see `_setting`): speed knobs never change a dataset's identity."""

    # clip policy
    fps: float = 15.0
    min_s: float = 1.0
    max_frames: int = 144
    merge_gap_frames: int = 8
    # decoding
    reader: str = "decord"  # 'decord' (PyAV fallback) or 'pyav'
    decode_short_side: int = 480
    decode_max_long_side: int = 960
    min_side: int = 32  # smaller sources are rejected as bad input
    max_side: int = 8192  # larger sources too
    # tracking (torch.hub); repo None = this project's hubconf.py
    tracker_repo: str | None = None
    tracker_entrypoint: str = "mediapipe_hands"
    tracker_source: str = "local"
    tracker_kwargs: dict[str, Any] = field(default_factory=dict)
    presence_every_s: float = 1.0  # the presence pass probes one frame per this many seconds
    # lifting and cleaning
    max_gap: int = 5
    smooth_window: int = 7
    smooth_polyorder: int = 2
    mano_dir: str | None = None  # MANO_{LEFT,RIGHT}.pkl folder: fit MANO (pose_convention 'mano')
    mano_iterations: int = _setting(10, "mano_dir")  # L-BFGS steps of the fit (IK initialises it; ~0.3 s per step per hand on CPU)
    # captions
    captioners: tuple[str, ...] = ("narration", "kinematic", "vlm")
    vlm_model: str | None = None  # path or hub id; the 'vlm' captioner runs only when set
    vlm_frames: int = _setting(4, "vlm_model")
    vlm_max_new_tokens: int = _setting(48, "vlm_model")
    vlm_batch_size: int = _setting(4, output=False)  # speed only
    # quality filters (a clip failing any is dropped and counted)
    min_presence: float = 0.3  # fraction of frames with at least one hand
    max_jitter: float = 60.0  # m/s^2, mean |acceleration| of joints
    max_bone_cv: float = 0.35  # mean coefficient of variation of bone lengths

    def __post_init__(self) -> None:
        if self.reader not in ("decord", "pyav"):
            raise ValueError(f"reader must be 'decord' or 'pyav', got {self.reader!r}")
        self.captioners = tuple(self.captioners)

    def clip_policy(self) -> clipping.ClipPolicy:
        return clipping.ClipPolicy(self.fps, self.min_s, self.max_frames, self.merge_gap_frames)

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the rows under the fields' "output" rules (stored in the dataset)."""
        out = {}
        for f in dataclasses.fields(self):
            rule = f.metadata.get("output", True)
            if rule is True or (isinstance(rule, str) and getattr(self, rule)):
                out[f.name] = copy.deepcopy(getattr(self, f.name))
        return out

    def fingerprint(self) -> str:
        """Stable 16-hex hash of `output_settings()`."""
        blob = json.dumps(self.output_settings(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class VideoResult:
    rows: list[dict[str, Any]]
    dropped: list[tuple[str, int]]  # (reason, number of clips or 1 for the whole video)
    reader: str
    frames_decoded: int  # source frames decoded
    frames_tracked: int  # 15 fps frames the tracker saw densely
    num_frames: int  # length of the 15 fps timeline
    seconds: float
    image_size: tuple[int, int]


_local = threading.local()  # trackers are stateful: one per thread, reused across videos


def _tracker(cfg: AnnotateConfig, role: str) -> HandTracker:
    key = (role, cfg.tracker_repo, cfg.tracker_entrypoint, cfg.tracker_source, json.dumps(cfg.tracker_kwargs, sort_keys=True))
    cache = getattr(_local, "trackers", None)
    if cache is None:
        cache = _local.trackers = {}
    if key not in cache:
        cache[key] = load_tracker(cfg.tracker_repo, cfg.tracker_entrypoint, cfg.tracker_source, **cfg.tracker_kwargs)
    tr = cache[key]
    tr.reset()
    return tr


def _segments(narrations: Sequence[Any] | None) -> list[tuple[float, float, str]] | None:
    if not narrations:
        return None
    out = []
    for s in narrations:
        a, b, text = (s.start_s, s.end_s, s.text) if hasattr(s, "start_s") else s
        out.append((float(a), float(b), str(text)))
    return out


def _track_video(tracker: HandTracker, reader, src_index, cfg: AnnotateConfig, segments,
                 progress) -> tuple[Detections, int]:
    """Presence pass + dense tracking over the 15 fps timeline, one chunk in memory at a time."""
    prober = _tracker(cfg, "presence")
    k_len = len(src_index)
    det = Detections.empty(k_len)
    chunk = max(1, int(round(cfg.presence_every_s * cfg.fps)))
    narrated = np.zeros(k_len, bool)
    for a, b, _ in segments or []:
        narrated[max(0, int(a * cfg.fps)):max(0, int(np.ceil(b * cfg.fps)))] = True
    tracked = 0

    def dense(k0: int, frames: np.ndarray) -> None:
        nonlocal tracked
        d = tracker.track(frames, cfg.fps)
        n = min(det.kp2d.shape[1], d.kp2d.shape[1])
        sl = slice(k0, k0 + len(frames))
        det.kp2d[sl, :n], det.world[sl, :n] = d.kp2d[:, :n], d.world[:, :n]
        det.label[sl, :n], det.score[sl, :n] = d.label[:, :n], d.score[:, :n]
        tracked += len(frames)

    pending: tuple[int, np.ndarray, bool] | None = None
    for k0, frames in clipping.iter_resampled(reader, src_index, chunk):
        seen = bool(prober.track(frames[:1], 1.0 / cfg.presence_every_s).valid.any())
        if pending is not None:
            pk0, pframes, pseen = pending
            if pseen or seen or narrated[pk0:pk0 + len(pframes)].any():
                dense(pk0, pframes)
            if progress:
                progress(pk0 + len(pframes), k_len)
        pending = (k0, frames, seen)
    if pending is not None:
        pk0, pframes, pseen = pending
        if pseen or narrated[pk0:pk0 + len(pframes)].any():
            dense(pk0, pframes)
        if progress:
            progress(k_len, k_len)
    return det, tracked


def annotate_video(
    path: str | Path,
    video_id: str,
    cfg: AnnotateConfig | None = None,
    narrations: Sequence[Any] | None = None,
    intrinsics: Sequence[float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Annotate one video. Raises BadVideoError for bad input; anything else is transient.

    narrations: Segment objects or (start_s, end_s, text); clips then follow them.
    intrinsics: [fx, fy, cx, cy] in source pixels; default lift.default_intrinsics.
    progress: called as progress(frames_done, frames_total) on the 15 fps timeline.
    """
    from clutch_core.hands import lift
    from storage.schema import split_for

    from annotators.captioning import ClipContext, build_captioners, caption_clips

    cfg = cfg or AnnotateConfig()
    t_start = time.perf_counter()
    info = clipping.probe(path, cfg.min_side, cfg.max_side)
    size = clipping.decode_size(info.width, info.height, cfg.decode_short_side, cfg.decode_max_long_side)
    reader = clipping.open_reader(info, size, cfg.reader)
    src_index = clipping.resample_indices(reader.timestamps, cfg.fps)
    if len(src_index) == 0:
        raise BadVideoError(path, "no frames on the 15 fps timeline (video shorter than one frame)")
    segments = _segments(narrations)

    tracker = _tracker(cfg, "dense")
    det, tracked = _track_video(tracker, reader, src_index, cfg, segments, progress)
    sx, sy = info.width / size[0], info.height / size[1]
    det.kp2d *= np.array([sx, sy], np.float32)  # keypoints in source pixels
    diag = float(np.hypot(info.width, info.height))
    tracks = lift.associate(det.kp2d, det.world, det.label, det.score, diag)
    k_mat = np.asarray(intrinsics if intrinsics is not None else lift.default_intrinsics(info.width, info.height), np.float32)
    joints, ok = lift.lift_to_camera(tracks, k_mat)
    present = tracks.present & ok

    windows, dropped = clipping.plan_clips(len(src_index), present.any(1), cfg.clip_policy(), segments)
    contexts, kept = [], []
    for a, b, text in windows:
        j, kp, pr = lift.fill_gaps(joints[a:b], tracks.kp2d[a:b], present[a:b], cfg.max_gap)
        if not pr.any():
            dropped.append(("no_hands_in_clip", 1))
            continue
        j = lift.smooth(j, pr, cfg.smooth_window, cfg.smooth_polyorder)
        q = lift.quality(j, pr, tracks.score[a:b], cfg.fps)
        reason = _filter(q, pr, cfg)
        if reason:
            dropped.append((reason, 1))
            continue
        j = np.where(pr[..., None, None], j, 0.0).astype(np.float32)
        kp = np.where(pr[..., None, None], kp, np.nan).astype(np.float32)
        if cfg.mano_dir:
            from clutch_core.hands.mano import FitConfig

            motion = lift.to_motion_mano(j, pr, _mano_models(cfg.mano_dir), FitConfig(iterations=cfg.mano_iterations))
        else:
            motion = lift.to_motion(j, pr)
        cid = f"{video_id}-{a:06d}"
        contexts.append(ClipContext(cid, j, pr, motion, cfg.fps, text))
        kept.append((a, b, j, kp, pr, motion, q))

    captioners = build_captioners(cfg)
    if contexts and any(c.source == "vlm" for c in captioners):
        _attach_keyframes(reader, src_index, [(a, b) for a, b, *_ in kept], contexts, cfg.vlm_frames)
    captions = caption_clips(captioners, contexts)

    tracker_id = {"name": str(tracker.name), "version": str(tracker.version)}
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for (a, b, j, kp, pr, motion, q), ctx, caps in zip(kept, contexts, captions):
        rows.append({
            "clip_id": ctx.clip_id,
            "video_id": video_id,
            "source_uri": str(Path(path).resolve()),
            "start_s": a / cfg.fps,
            "end_s": b / cfg.fps,
            "fps": float(cfg.fps),
            "num_frames": int(b - a),
            "split": split_for(video_id),
            "motion": motion,
            "presence": pr,
            "joints3d": j,
            "keypoints2d": kp,
            "pose_convention": "mano" if cfg.mano_dir else "skeleton-ik",
            "captions": caps,
            "tracker": tracker_id,
            "quality": q,
            "created_at": now,
            "fingerprint": cfg.fingerprint(),
            "reader": reader.name,
            "image_size": np.array([info.width, info.height], np.int32),
            "intrinsics": k_mat,
        })
    dropped = _merge_counts(dropped)
    return VideoResult(rows, dropped, reader.name, len(np.unique(src_index)), tracked, len(src_index),
                       time.perf_counter() - t_start, (info.width, info.height))


def _filter(q: dict[str, float], present: np.ndarray, cfg: AnnotateConfig) -> str | None:
    if present.any(1).mean() < cfg.min_presence:
        return "low_presence"
    if q["jitter"] > cfg.max_jitter:
        return "jitter"
    if q["bone_length_cv"] > cfg.max_bone_cv:
        return "bone_length_variation"
    return None


def _merge_counts(dropped: list[tuple[str, int]]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for reason, n in dropped:
        out[reason] = out.get(reason, 0) + int(n)
    return sorted(out.items())


def _mano_models(mano_dir: str) -> dict:
    """smplx MANO models for both sides, loaded once per thread and folder."""
    from clutch_core.hands.mano import load_mano

    cache = getattr(_local, "mano", None)
    if cache is None:
        cache = _local.mano = {}
    if mano_dir not in cache:
        cache[mano_dir] = {side: load_mano(mano_dir, side) for side in ("left", "right")}
    return cache[mano_dir]


def _attach_keyframes(reader, src_index, spans, contexts, k: int) -> None:
    """Decode k evenly spaced frames per clip (one sorted pass) for the VLM captioner."""
    picks = [np.unique(src_index[np.linspace(a, b - 1, k).round().astype(int)]) for a, b in spans]
    wanted = np.unique(np.concatenate(picks))
    frames = dict(reader.iter_frames(wanted.tolist()))
    for ctx, idx in zip(contexts, picks):
        ctx.frames = [frames[int(i)] for i in idx]
