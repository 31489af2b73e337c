"""`make_row`: the one constructor of a clip row, used by build-3dhiw and `clutch synth`.

The fields every writer derives the same way (end time, fps, split) are derived here, so two
writers cannot disagree on them. The row's contract is storage.schema.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Mapping, Sequence

import numpy as np

from layout import FPS
from storage.schema import split_for


def make_row(
    *,
    clip_id: str,
    video_id: str,
    source_uri: str,
    start_s: float,
    motion: np.ndarray,  # float32 [T, 198]
    presence: np.ndarray,  # bool [T, 2]
    joints3d: np.ndarray,  # float32 [T, 2, 21, 3]
    keypoints2d: np.ndarray,  # float32 [T, 2, 21, 2]
    pose_convention: str,
    captions: Sequence[Mapping[str, str]],
    tracker: Mapping[str, str],
    quality: Mapping[str, Any],
    hand_shape: Mapping[str, Any],  # {"kind": "bone_lengths" | "mano_betas", "left": [...], "right": [...]}
    fingerprint: str,
    reader: str,
    image_size: Sequence[int],  # [width, height]
    intrinsics: Sequence[float],  # fx, fy, cx, cy
    created_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A row of storage.schema.CLIP_SCHEMA; num_frames, end_s, fps and split follow from the rest."""
    n = int(len(motion))
    return {
        "clip_id": clip_id, "video_id": video_id, "source_uri": source_uri,
        "start_s": float(start_s), "end_s": round(float(start_s) + n / FPS, 6), "fps": FPS,
        "num_frames": n, "split": split_for(video_id),
        "motion": motion, "presence": presence, "joints3d": joints3d, "keypoints2d": keypoints2d,
        "pose_convention": pose_convention, "captions": [dict(c) for c in captions], "tracker": dict(tracker),
        "quality": dict(quality), "hand_shape": dict(hand_shape), "created_at": created_at or dt.datetime.now(dt.timezone.utc),
        "fingerprint": fingerprint, "reader": reader,
        "image_size": np.asarray(image_size, np.int32), "intrinsics": np.asarray(intrinsics, np.float32),
    }
