"""Small datasets for the eval/render tests: motion whose pattern depends on the caption."""
from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from storage.schema import FPS, rows_to_table

ACTIONS = [
    ("the left hand waves slowly", "a slow wave of the left hand"),
    ("the right hand taps quickly", "right hand tapping fast"),
    ("both hands clap", "two hands clapping together"),
    ("the right hand rotates the wrist", "wrist rotation with the right hand"),
    ("the left hand makes a fist", "left fingers curl into a fist"),
    ("the right hand moves forward", "right hand reaches forward"),
    ("both hands open wide", "spreading the fingers of both hands"),
    ("the left hand lifts up", "raising the left hand"),
]
INTRINSICS = (500.0, 500.0, 320.0, 240.0)  # fx, fy, cx, cy of a 640x480 image


def _motion(k: int, t: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from clutch_core.hands.motion import identity_hand_vec

    base = identity_hand_vec().numpy()
    m = np.tile(np.concatenate([base, base]), (t, 1)).astype(np.float32)  # [T, 198]
    time = np.arange(t) / FPS
    freq = 0.5 + 0.4 * k
    cols = rng.choice(np.arange(6, 96), 12, replace=False)
    for h in (0, 1):
        m[:, h * 99 + cols] += (0.4 * np.sin(2 * np.pi * freq * time + k))[:, None]
        m[:, h * 99 + 96:h * 99 + 99] = np.stack([0.05 * np.sin(freq * time + k), 0.03 * k * time / 10, 0.4 + 0 * time], 1) + [-0.1 + 0.2 * h, 0, 0]
    m += rng.normal(0, 0.02, m.shape).astype(np.float32)
    pres = np.ones((t, 2), bool)
    if k % 3 == 0:
        pres[: t // 3, 1] = False
    return m, pres


def make_rows(n: int, seed: int = 0, source_uri: str = "synthetic://eval", image_size=(640, 480)) -> list[dict]:
    from clutch_core.hands.motion import motion_to_joints

    rng = np.random.default_rng(seed)
    rows = []
    fx, fy, cx, cy = INTRINSICS
    for i in range(n):
        k = i % len(ACTIONS)
        t = int(rng.integers(24, 80))
        motion, pres = _motion(k, t, rng)
        joints = motion_to_joints(torch.from_numpy(motion)).numpy().astype(np.float32)  # [T, 2, 21, 3]
        kp = np.stack([fx * joints[..., 0] / joints[..., 2] + cx, fy * joints[..., 1] / joints[..., 2] + cy], -1)
        kp[~pres] = np.nan
        rows.append({
            "clip_id": f"clip{i:04d}", "video_id": f"vid{i:04d}", "source_uri": source_uri,
            "start_s": 0.0, "end_s": t / FPS, "fps": FPS, "num_frames": t,
            "split": "train" if i % 5 else "test",
            "motion": motion, "presence": pres, "joints3d": joints, "keypoints2d": kp.astype(np.float32),
            "pose_convention": "skeleton-ik",
            "captions": [{"source": "synthetic", "text": ACTIONS[k][0]}, {"source": "kinematic", "text": ACTIONS[k][1]}],
            "tracker": {"name": "synthetic", "version": "0"},
            "quality": {"presence_left": 1.0, "presence_right": float(pres[:, 1].mean()), "jitter": 0.0,
                        "bone_length_cv": 0.0, "handedness_score": 1.0},
            "created_at": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
            "reader": "synthetic", "image_size": list(image_size), "intrinsics": list(INTRINSICS),
        })
    return rows


def write_dataset(folder: Path, rows: list[dict]) -> Path:
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), folder / "shards" / "part-000.parquet")
    return folder
