"""One video in, clip rows out: the per-video worker of build-3dhiw, as named steps.

    decode   probe (PyAV headers) -> reader at reduced size (`reader='auto'`: PyAV for H.264,
             skipping unwanted non-reference frames; decord otherwise, PyAV its fallback) -> the
             15 fps timeline                                           clutch_core.video
    track    frames decoded ahead in a background thread (a bounded queue of
             `read_ahead_chunks` 1 s chunks), so the tracker does not wait for frames; one frame
             per 1 s chunk decides whether the chunk and the one before are tracked densely
             (the dense tracker's own detection while it runs, a presence probe after an
             untracked chunk), frame by frame as they arrive
    lift     left/right association -> lift to the camera frame        clutch_core.hands.lift
    clean    per clip (narration segments, else hand spans): gap filling, smoothing; one hand
             shape per track; the rigid hand fitted to all clips at once -> motion, joints3d;
             quality; thresholds drop or mark clips                    annotators.clean
    caption  the captioner chain                                       annotators.captioning
    rows     storage.rows.make_row

`VideoResult.seconds_by_step` records where the time went (benchmarks/annotate.py).

Only per-frame detections (~1 KB per frame) are kept for the whole video; a frame is dropped
once tracked (at most the read-ahead queue and one held chunk are in memory), so memory does
not grow with video length.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from annotators import clipping
from annotators.clean import CleanClip, clean_video, warm_up_in_background
from annotators.tracking import Detections, HandTracker, load_tracker
from clutch_core import video
from clutch_core.video import BadVideoError
from layout import FPS, MAX_FRAMES
from storage.rows import make_row


def _setting(default: Any, output: bool | str = True) -> Any:
    """A setting with its fingerprint rule: output=True changes the rows, False never does,
    "<field>" changes them only when that field is set (e.g. VLM settings without a VLM do not)."""
    return field(default=default, metadata={"output": output})


@dataclass
class AnnotateConfig:
    """Every setting of the per-video worker. `fingerprint()` hashes only the settings that change
    the rows (field metadata "output", see `_setting`): speed knobs never change a dataset's identity."""

    # clip policy (the frame rate is the layout's FPS, not a setting)
    min_s: float = 1.0
    max_frames: int = MAX_FRAMES  # 1..layout.MAX_FRAMES
    merge_gap_frames: int = 8
    # decoding
    reader: str = "auto"  # 'auto' (PyAV for H.264, else decord), 'decord' (PyAV fallback) or 'pyav'
    color_conversion: str = "exact"  # PyAV's YUV -> RGB: 'exact' (the source's matrix, rounded) or 'swscale'
    decode_short_side: int = 480
    decode_max_long_side: int = 960
    min_side: int = 32  # smaller sources are rejected as bad input
    max_side: int = 8192  # larger sources too
    # tracking (torch.hub); repo None = this project's hubconf.py
    tracker_repo: str | None = None
    tracker: str = "mediapipe_hands"  # entry point
    tracker_source: str = "local"
    tracker_kwargs: dict[str, Any] = field(default_factory=dict)
    presence_every_s: float = 1.0  # chunk length of the presence pass: one frame per chunk decides (see _track_video)
    read_ahead_chunks: int = _setting(2, output=False)  # decoded chunks queued ahead of the tracker (0: none)
    # lifting and cleaning
    max_gap: int = 5
    smooth_window: int = 7
    smooth_polyorder: int = 2
    hand_fit: str = "rigid"  # 'rigid': one hand per track fitted to the image (clutch_core.hands.fit); 'lift': the tracker's joints as they are (the earlier path)
    fit_iterations: int = 12  # Levenberg-Marquardt steps of the rigid fit, each turn at most 0.25 rad (BENCHMARKS.md)
    fit_pose_sigma: float = 0.7  # rad: how far the fit's finger rotations may leave the tracker's 3D hand to meet its 2D keypoints
    mano_dir: str | None = None  # MANO_{LEFT,RIGHT}.pkl folder: fit MANO (pose_convention 'mano')
    mano_iterations: int = _setting(10, "mano_dir")  # L-BFGS steps of the fit (IK initialises it; ~0.3 s per step per hand on CPU)
    # captions
    captioners: tuple[str, ...] = ("narration", "kinematic", "vlm")
    vlm: str | None = None  # path or hub id; the 'vlm' captioner runs only when set
    vlm_frames: int = _setting(4, "vlm")
    vlm_max_new_tokens: int = _setting(48, "vlm")
    vlm_batch_size: int = _setting(4, output=False)  # speed only
    # quality thresholds: a clip failing any is dropped, or kept with its failures in quality.flags
    # (`quality_action`); either way the ledger lists it (annotators.clean.quality_checks)
    quality_action: str = "drop"  # 'drop' or 'mark'
    min_presence: float = 0.3  # fraction of frames with at least one hand
    max_jitter: float = 60.0  # m/s^2, mean |acceleration| of joints
    max_bone_cv: float = 0.35  # mean coefficient of variation of bone lengths
    max_reproj: float = 0.01  # median reprojection error of joints3d, as a fraction of the image diagonal
    max_depth_jump: float = 0.03  # m, 95th percentile of the wrist-depth change between frames
    max_fit_rejected: float = 0.3  # fraction of tracked hand-frames the fit rejected

    def __post_init__(self) -> None:
        if self.reader not in video.READERS:
            raise ValueError(f"reader must be one of {video.READERS}, got {self.reader!r}")
        if self.color_conversion not in video.COLOR_CONVERSIONS:
            raise ValueError(f"color_conversion must be one of {video.COLOR_CONVERSIONS}, got {self.color_conversion!r}")
        from annotators.clean import HAND_FITS, QUALITY_ACTIONS

        if self.hand_fit not in HAND_FITS:
            raise ValueError(f"hand_fit must be one of {HAND_FITS}, got {self.hand_fit!r}")
        if self.quality_action not in QUALITY_ACTIONS:
            raise ValueError(f"quality_action must be one of {QUALITY_ACTIONS}, got {self.quality_action!r}")
        if self.fit_iterations < 1:
            raise ValueError(f"fit_iterations must be >= 1, got {self.fit_iterations!r}")
        if not self.fit_pose_sigma > 0:
            raise ValueError(f"fit_pose_sigma must be > 0 (radians), got {self.fit_pose_sigma!r}")
        if not 1 <= self.max_frames <= MAX_FRAMES:
            raise ValueError(f"max_frames must be in 1..{MAX_FRAMES} (the dataset layout), got {self.max_frames!r}")
        self.captioners = tuple(self.captioners)

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "AnnotateConfig":
        """From user-given settings; an unknown name is refused naming it (before any video is read)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            fixed = [k for k in unknown if k == "fps"]
            why = f" (the frame rate is fixed at {FPS:g} fps by the dataset layout)" if fixed else ""
            raise ValueError(f"unknown annotator setting(s) {unknown}{why}; known: {sorted(names)}")
        return cls(**settings)

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
    # wall seconds per step: open, track (incl. presence), wait (tracker waiting for frames, part of
    # track), presence (part of track), lift, clean, fit (part of clean), caption, rows
    seconds_by_step: dict[str, float] = field(default_factory=dict)
    records: list = field(default_factory=list)  # annotators.clean.ClipRecord of the clips dropped or marked

    def ledger_records(self, source: str) -> list[tuple]:
        """(start_s, end_s, reason, detail, action) of every dropped or marked clip, for
        storage.ledger.Ledger.record_dropped; drops without a clip span (too_short, no_hands) get
        None times and the source as detail."""
        out = [(r.start_s, r.end_s, r.reason, r.detail, r.action) for r in self.records]
        spanned: dict[str, int] = {}
        for r in self.records:
            if r.action == "dropped":
                spanned[r.reason] = spanned.get(r.reason, 0) + 1
        for reason, n in self.dropped:
            out += [(None, None, reason, source, "dropped")] * max(0, int(n) - spanned.get(reason, 0))
        return out


class _Clock:
    """Wall seconds accumulated per step name."""

    def __init__(self) -> None:
        self.s: dict[str, float] = {}

    def add(self, name: str, t0: float) -> float:
        now = time.perf_counter()
        self.s[name] = self.s.get(name, 0.0) + now - t0
        return now


_pool: dict[tuple, list[HandTracker]] = {}  # idle trackers by settings and role, shared by all threads
_pool_lock = threading.Lock()


@contextlib.contextmanager
def _tracker(cfg: AnnotateConfig, role: str, wait: bool = True) -> Iterator[HandTracker]:
    """Borrow a tracker for one video (trackers are stateful: one video at a time), reset. It goes
    back to a process-wide pool afterwards, so any thread's next video reuses it: loading a
    landmarker costs far more than a reset."""
    key = (role, cfg.tracker_repo, cfg.tracker, cfg.tracker_source, json.dumps(cfg.tracker_kwargs, sort_keys=True))
    if wait and _prewarming is not None:
        _prewarming.wait(timeout=300)
    with _pool_lock:
        idle = _pool.get(key)
        tr = idle.pop() if idle else None
    if tr is None:
        tr = load_tracker(cfg.tracker_repo, cfg.tracker, cfg.tracker_source, **cfg.tracker_kwargs)
    tr.reset()
    try:
        yield tr
    finally:
        with _pool_lock:
            _pool.setdefault(key, []).append(tr)


_prewarming: threading.Event | None = None  # set while `prewarm_in_background` loads; tasks wait for it


def prewarm_in_background(cfg: AnnotateConfig) -> None:
    """Import the tracker's stack and load one tracker per role into the pool in a background thread
    (`clutch build` starts it while Prefect starts). A video that needs a tracker meanwhile waits for
    it instead of loading a second one; an error here is left to that video to raise."""
    global _prewarming
    done = _prewarming = threading.Event()

    def load() -> None:
        try:
            with _tracker(cfg, "dense", wait=False), _tracker(cfg, "presence", wait=False):
                pass
        except Exception:  # noqa: BLE001 - the video's own load raises it where it is reported
            pass
        finally:
            done.set()
        warm_up_in_background()  # the clean step's imports and first calls, next

    threading.Thread(target=load, name="clutch-prewarm", daemon=True).start()


def _segments(narrations: Sequence[Any] | None) -> list[tuple[float, float, str]] | None:
    if not narrations:
        return None
    out = []
    for s in narrations:
        a, b, text = (s.start_s, s.end_s, s.text) if hasattr(s, "start_s") else s
        out.append((float(a), float(b), str(text)))
    return out


def _track_video(tracker: HandTracker, prober: HandTracker, reader, src_index, cfg: AnnotateConfig, segments,
                 progress, clock: _Clock) -> tuple[Detections, int]:
    """Presence pass + dense tracking over the 15 fps timeline, frame by frame as the decoder
    thread delivers them.

    The timeline is cut in chunks of `presence_every_s`. Chunk c is tracked densely when a hand is
    seen on its first frame or on the next chunk's first frame, or a narration covers it. Who
    looks at a chunk's first frame: the dense tracker itself when it tracked the chunk before
    (and at frame 0, where it starts as fresh as a probe), so a hand-dense video costs no probe
    at all; the presence tracker (its own landmarker) after an untracked chunk. A chunk whose
    first frame saw a hand (or that is narrated) is tracked as its frames arrive; any other is
    held (at most one chunk of frames) until the next chunk's first frame decides. Frames reach
    the dense tracker in timeline order.
    """
    k_len = len(src_index)
    det = Detections.empty(k_len)
    chunk = max(1, int(round(cfg.presence_every_s * FPS)))
    narrated = np.zeros(k_len, bool)
    for a, b, _ in segments or []:
        narrated[max(0, int(a * FPS)):max(0, int(np.ceil(b * FPS)))] = True
    tracked = 0

    def dense(k0: int, frames: np.ndarray) -> None:
        nonlocal tracked
        d = tracker.track(frames, FPS)
        n = min(det.kp2d.shape[1], d.kp2d.shape[1])
        sl = slice(k0, k0 + len(frames))
        det.kp2d[sl, :n], det.world[sl, :n] = d.kp2d[:, :n], d.world[:, :n]
        det.label[sl, :n], det.score[sl, :n] = d.label[:, :n], d.score[:, :n]
        tracked += len(frames)

    held: list[tuple[int, np.ndarray]] = []  # the previous chunk's frames, waiting for this chunk's first frame
    tracking = True  # the dense tracker runs through this chunk (at frame 0 it starts fresh, as a probe would)
    frames = video.iter_timeline(reader, src_index, max(0, cfg.read_ahead_chunks) * chunk)  # decoding starts
    prepare = getattr(tracker, "prepare", None)  # optional: a tracker's own set-up, while frames decode
    if prepare is not None:
        prepare(*reader.size)
    t = time.perf_counter()
    for k, frame in frames:
        t = clock.add("wait", t)
        done = False  # this frame already went through the dense tracker
        if k % chunk == 0:
            if tracking:  # the dense tracker ran through the chunk before: its own detection decides
                dense(k, frame[None])
                seen, done = bool(det.valid[k].any()), True
            else:
                seen = bool(prober.track(frame[None], 1.0 / cfg.presence_every_s).valid.any())
                t = clock.add("presence", t)
            if held and seen:
                dense(held[0][0], np.stack([f for _, f in held]))
            held = []
            if progress and k:
                progress(k, k_len)
            tracking = seen or bool(narrated[k:k + chunk].any())
        if not done:
            if tracking:
                dense(k, frame[None])
            else:
                held.append((k, frame))
        t = time.perf_counter()
    if progress:
        progress(k_len, k_len)
    return det, tracked


@dataclass
class Decoded:
    """The decode step's result: the source, its reader and the 15 fps timeline."""

    info: video.VideoInfo
    size: tuple[int, int]  # (w, h) of decoded frames
    reader: video.FrameReader
    src_index: np.ndarray  # [K] source frame of each timeline frame


@dataclass
class Lifted:
    """Camera-frame hands over the whole timeline (the lift step's result)."""

    joints: np.ndarray  # float32 [K, 2, 21, 3] metres
    kp2d: np.ndarray  # float32 [K, 2, 21, 2] source pixels
    score: np.ndarray  # float32 [K, 2]
    present: np.ndarray  # bool [K, 2]
    intrinsics: np.ndarray  # float32 [4] fx, fy, cx, cy


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
    cfg = cfg or AnnotateConfig()
    t_start = clock_t = time.perf_counter()
    warm_up_in_background()  # once per process: the clean step's first call, beside this video's tracking
    clock = _Clock()
    segments = _segments(narrations)
    dec = decode(path, cfg)
    with _tracker(cfg, "dense") as tracker, _tracker(cfg, "presence") as prober:
        clock_t = clock.add("open", clock_t)
        det, tracked = _track_video(tracker, prober, dec.reader, dec.src_index, cfg, segments, progress, clock)
    clock_t = clock.add("track", clock_t)
    from clutch_core.hands.fit import one_thread

    with one_thread():  # small array work: extra torch/BLAS threads only spin (see one_thread)
        hands = lift_hands(det, dec, intrinsics)
        clock_t = clock.add("lift", clock_t)
        windows, dropped = clipping.plan_clips(len(dec.src_index), hands.present.any(1), cfg, segments)
        t_fit = time.perf_counter()
        clips, records, counts = clean_video(hands, windows, (dec.info.width, dec.info.height), cfg,
                                             timer=lambda: clock.add("fit", t_fit))
    dropped += counts
    clock_t = clock.add("clean", clock_t)
    captions = caption(clips, video_id, dec, cfg)
    clock_t = clock.add("caption", clock_t)
    tracker_id = {"name": str(tracker.name), "version": str(tracker.version)}
    rows = [clip_row(c, caps, path, video_id, dec, hands, tracker_id, cfg) for c, caps in zip(clips, captions)]
    clock.add("rows", clock_t)
    return VideoResult(rows, _merge_counts(dropped), dec.reader.name, len(np.unique(dec.src_index)), tracked,
                       len(dec.src_index), time.perf_counter() - t_start, (dec.info.width, dec.info.height),
                       clock.s, records)


def decode(path: str | Path, cfg: AnnotateConfig) -> Decoded:
    """Probe, open a reader at the decode size, and lay the 15 fps timeline over the source frames."""
    info = video.probe(path, cfg.min_side, cfg.max_side)
    size = video.decode_size(info.width, info.height, cfg.decode_short_side, cfg.decode_max_long_side)
    reader = video.open_reader(info, size, cfg.reader, cfg.color_conversion)
    src_index = video.resample_indices(reader.timestamps, FPS)
    if len(src_index) == 0:
        raise BadVideoError(path, "no frames on the 15 fps timeline (video shorter than one frame)")
    return Decoded(info, size, reader, src_index)


def lift_hands(det: Detections, dec: Decoded, intrinsics: Sequence[float] | None) -> Lifted:
    """Detections (decode-size pixels) -> associated left/right hands in the camera frame."""
    from clutch_core.hands import lift

    w, h = dec.info.width, dec.info.height
    det.kp2d *= np.array([w / dec.size[0], h / dec.size[1]], np.float32)  # keypoints in source pixels
    tracks = lift.associate(det.kp2d, det.world, det.label, det.score, float(np.hypot(w, h)))
    k_mat = np.asarray(intrinsics if intrinsics is not None else lift.default_intrinsics(w, h), np.float32)
    joints, ok = lift.lift_to_camera(tracks, k_mat)
    return Lifted(joints, tracks.kp2d, tracks.score, tracks.present & ok, k_mat)


def caption(clips: list[CleanClip], video_id: str, dec: Decoded, cfg: AnnotateConfig) -> list[list[dict[str, str]]]:
    """The captioner chain over all clips of the video ([{source, text}, ...] per clip)."""
    from annotators.captioning import ClipContext, build_captioners, caption_clips

    contexts = [ClipContext(_clip_id(video_id, c), c.joints, c.presence, c.motion, FPS, c.narration) for c in clips]
    captioners = build_captioners(cfg)
    if contexts and any(c.source == "vlm" for c in captioners):
        _attach_keyframes(dec.reader, dec.src_index, [(c.start, c.end) for c in clips], contexts, cfg.vlm_frames)
    return caption_clips(captioners, contexts)


def clip_row(c: CleanClip, captions: list[dict[str, str]], path: str | Path, video_id: str, dec: Decoded,
             hands: Lifted, tracker: dict[str, str], cfg: AnnotateConfig) -> dict[str, Any]:
    return make_row(
        clip_id=_clip_id(video_id, c), video_id=video_id, source_uri=str(Path(path).resolve()),
        start_s=c.start / FPS, motion=c.motion, presence=c.presence, joints3d=c.joints, keypoints2d=c.kp2d,
        pose_convention="mano" if cfg.mano_dir else "skeleton-ik", captions=captions, tracker=tracker,
        quality=c.quality, hand_shape=c.hand_shape, fingerprint=cfg.fingerprint(), reader=dec.reader.name,
        image_size=(dec.info.width, dec.info.height), intrinsics=hands.intrinsics)


def _clip_id(video_id: str, c: CleanClip) -> str:
    return f"{video_id}-{c.start:06d}"


def _merge_counts(dropped: list[tuple[str, int]]) -> list[tuple[str, int]]:
    out: dict[str, int] = {}
    for reason, n in dropped:
        out[reason] = out.get(reason, 0) + int(n)
    return sorted(out.items())


def _attach_keyframes(reader, src_index, spans, contexts, k: int) -> None:
    """Decode k evenly spaced frames per clip (one sorted pass) for the VLM captioner."""
    picks = [np.unique(src_index[np.linspace(a, b - 1, k).round().astype(int)]) for a, b in spans]
    wanted = np.unique(np.concatenate(picks))
    frames = dict(reader.iter_frames(wanted.tolist()))
    for ctx, idx in zip(contexts, picks):
        ctx.frames = [frames[int(i)] for i in idx]
