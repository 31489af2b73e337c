"""A synthetic 3D-HIW corpus written as ordinary shards (for tests, demos and benchmarks).

Nothing here comes from video: motions are composed from primitives
(clutch_core.synth.primitives), posed on the 21-joint MANO-tree skeleton with batched
forward kinematics, projected with a pinhole camera, and captioned from the primitives
(caption source `synthetic`). Every clip and every array is a function of
(seed, video index, clip index) only, so a seed always gives the same corpus.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from clutch_core.hands.motion import fill_last_valid, hand_to_vec, identity_hand_vec
from clutch_core.hands.fit import BONE_LENGTHS
from clutch_core.hands.quality import clip_quality
from clutch_core.hands.skeleton import FINGER_CHAINS, bone_lengths, fk, rest_skeleton
from clutch_core.synth.captions import describe
from clutch_core.synth.primitives import HandControls, perform, plan
from layout import FPS, HAND_DIM, MAX_FRAMES, SIDES, TRANSL
from storage.rows import make_row

GENERATOR_VERSION = "2"  # 2: rows of schema version 2 (hand_shape, the extended quality struct)
# Pinhole camera of the synthetic "videos": 1920x1080, ~82 degree horizontal field of view.
IMAGE_SIZE = (1920, 1080)
INTRINSICS = (1100.0, 1100.0, 960.0, 540.0)  # fx, fy, cx, cy in pixels
CREATED_AT = _dt.datetime(2025, 1, 1, tzinfo=_dt.timezone.utc)  # fixed: same seed, same bytes

# Maximum flexion (radians) of the three joints of each finger, MANO finger order
# (index, middle, pinky, ring, thumb), and abduction weight of each finger's first joint.
_MAX_FLEX = np.radians([[80, 100, 70], [85, 100, 70], [85, 95, 65], [85, 100, 70], [40, 50, 75]])
_ABDUCTION = np.array([0.25, 0.0, -0.3, -0.15, 0.0])
_CURL_OF_FINGER = [1, 2, 4, 3, 0]  # MANO finger order -> index into curl [thumb, index, middle, ring, pinky]


@dataclass
class SynthConfig:
    """Settings of `clutch synth`. The fingerprint covers what changes the clips' content."""
    clips: int
    seed: int = 0
    clips_per_shard: int = 1024
    image_size: tuple[int, int] = IMAGE_SIZE
    intrinsics: tuple[float, float, float, float] = INTRINSICS
    fingerprint: str = field(init=False)

    def __post_init__(self):
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1, got {self.clips}")
        if self.clips_per_shard < 1:
            raise ValueError(f"clips_per_shard must be >= 1, got {self.clips_per_shard}")
        blob = json.dumps({"generator": GENERATOR_VERSION, "seed": self.seed, "image_size": self.image_size,
                           "intrinsics": self.intrinsics}, sort_keys=True)
        self.fingerprint = "synthetic-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class ClipPlan:
    video_index: int
    clip_index: int
    video_id: str
    start_s: float
    num_frames: int


def video_id_for(seed: int, v: int) -> str:
    return hashlib.sha256(f"clutch-synthetic:{seed}:{v}".encode()).hexdigest()[:16]


def plan_clips(cfg: SynthConfig) -> Iterator[ClipPlan]:
    """Clips of consecutive synthetic videos (2-8 clips each) until cfg.clips are planned."""
    n, v = 0, 0
    while n < cfg.clips:
        rng = np.random.default_rng([cfg.seed, v])
        vid, t = video_id_for(cfg.seed, v), float(rng.uniform(0, 5))
        for k in range(int(rng.integers(2, 9))):
            if n == cfg.clips:
                return
            if rng.random() < 0.06:  # a few very short clips (down to one frame)
                frames = int(rng.integers(1, 30))
            else:  # mostly 2-9.6 s
                frames = int(rng.integers(30, MAX_FRAMES + 1))
            yield ClipPlan(v, k, vid, round(t, 3), frames)
            t += frames / FPS + float(rng.uniform(0.5, 6.0))
            n += 1
        v += 1


@dataclass
class _ClipDraft:
    plan: ClipPlan
    controls: dict[str, HandControls]  # both sides (an absent hand gets idle controls)
    presence: np.ndarray  # [T, 2] bool
    captions: list[str]


def draft_clip(p: ClipPlan, seed: int) -> _ClipDraft:
    """Primitives, presence and captions of one clip (numpy only)."""
    rng = np.random.default_rng([seed, p.video_index, p.clip_index, 1])
    T = p.num_frames
    mode = rng.choice(["both", "right", "left"], p=[0.5, 0.33, 0.17])
    speed, noise = float(rng.uniform(0.7, 1.5)), float(rng.choice([0.0005, 0.001, 0.002, 0.004]))
    active = SIDES if mode == "both" else (str(mode),)
    controls, steps = {}, {}
    presence = np.zeros((T, 2), dtype=bool)
    for h, side in enumerate(SIDES):
        seq = plan(rng, T) if side in active else ["idle"]
        controls[side], done = perform(seq, side, T, speed, noise, rng)
        if side not in active:
            continue
        steps[side] = done
        presence[:, h] = True
        if T >= 8 and rng.random() < 0.25:  # the hand leaves the view for a while
            g = int(rng.integers(2, max(3, T // 3)))
            s = int(rng.integers(0, T - g + 1))
            presence[s:s + g, h] = False
    if not presence.any():
        presence[:, SIDES.index(active[0])] = True
    captions = describe(steps, rng, n=int(rng.integers(1, 4)))
    return _ClipDraft(p, controls, presence, captions)


def _skew(axes: torch.Tensor) -> torch.Tensor:
    """[...,3] axes -> [...,3,3] cross-product matrices (column j = axis x e_j)."""
    eye = torch.eye(3, dtype=axes.dtype).expand(axes.shape[:-1] + (3, 3))
    return torch.linalg.cross(axes[..., None, :].expand_as(eye), eye, dim=-1).transpose(-1, -2)


def _about(K: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotations about fixed unit axes (skew K [...,3,3]) by angle [F,...] -> [F,...,3,3] (Rodrigues).

    The axes are constant per joint, so this is a few elementwise ops instead of a general
    axis-angle conversion per frame.
    """
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return torch.eye(3) + s * K + (1 - c) * (K @ K)


def _hand_axes(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit flexion axes [15,3] of the local joints (MANO order) and abduction axes [5,3] of each
    finger's first joint, in the rest frame.

    Rest frame (clutch_core.hands.skeleton): fingers along -x (right) / +x (left), palm
    facing -y, thumb on +z. Fingers curl towards the palm; the thumb towards palm and pinky;
    positive abduction turns a finger towards the thumb side.
    """
    rest = rest_skeleton(side)
    flex, abd = [], []
    for f, chain in enumerate(FINGER_CHAINS):
        bend = torch.tensor([0.0, -1.0, -1.0 if f == 4 else 0.0])
        for k in range(3):
            d = rest[chain[k + 1]] - rest[chain[k]]
            flex.append(F.normalize(torch.linalg.cross(d, bend), dim=0))
        d0 = rest[chain[1]] - rest[chain[0]]
        abd.append(F.normalize(torch.linalg.cross(d0, torch.tensor([0.0, 0.0, 1.0])), dim=0))
    return torch.stack(flex), torch.stack(abd)


def _base_orient(side: str) -> torch.Tensor:
    """[3,3] rest frame -> camera (x right, y down, z forward): fingers forward, palm down."""
    f = torch.tensor([-1.0 if side == "right" else 1.0, 0.0, 0.0])
    p = torch.tensor([0.0, -1.0, 0.0])
    f2, p2 = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1.0, 0.0])
    rest = torch.stack([f, p, torch.linalg.cross(f, p)], 1)
    cam = torch.stack([f2, p2, torch.linalg.cross(f2, p2)], 1)
    return cam @ rest.T


def pose_hands(controls: list[HandControls], side: str):
    """Batched pose of one side over the concatenated frames of many clips (float32).

    Returns global_orient [F,3,3], local_rots [F,15,3,3], transl [F,3], joints [F,21,3].
    """
    cat = lambda name: torch.from_numpy(np.concatenate([getattr(c, name) for c in controls]).astype(np.float32))
    pos, ang, curl, spread = cat("pos"), cat("angles"), cat("curl"), cat("spread")  # [F,3] [F,3] [F,5] [F]
    cam_axes = _skew(torch.eye(3))  # pitch about camera x, yaw about y, roll about z
    R = _about(cam_axes, ang)  # [F,3,3,3]: one rotation per angle
    R = R[:, 0] @ R[:, 1] @ R[:, 2] @ _base_orient(side)
    flex_axis, abd_axis = _hand_axes(side)
    flex = (curl[:, _CURL_OF_FINGER, None] * torch.from_numpy(_MAX_FLEX).float()).reshape(-1, 15)  # [F,15]
    local = _about(_skew(flex_axis), flex)  # [F,15,3,3]
    first = local[:, 0::3] @ _about(_skew(abd_axis), spread[:, None] * torch.from_numpy(_ABDUCTION).float())
    local = local.clone()
    local[:, 0::3] = first
    joints = fk(R, local, pos, rest_skeleton(side))
    return R, local, pos, joints


def _quality(joints: np.ndarray, kp: np.ndarray, presence: np.ndarray, cfg: "SynthConfig") -> dict:
    """The quality struct of one clip: the shared definition (clutch_core.hands.quality); the
    tracker is exact (handedness 1, nothing rejected, keypoints are the projected joints)."""
    q = clip_quality(joints, kp, presence, np.ones(presence.shape, np.float32), cfg.intrinsics, FPS)
    return {**q, "flags": ""}


def hand_shape() -> dict:
    """Every synthetic hand is the rest skeleton: its bone lengths, exactly."""
    return {"kind": BONE_LENGTHS, **{s: bone_lengths(rest_skeleton(s)).tolist() for s in SIDES}}


def render_rows(drafts: list[_ClipDraft], cfg: SynthConfig) -> list[dict]:
    """Clip rows (storage.schema contract) for many drafts at once: batched FK and motion packing."""
    lengths = np.array([d.plan.num_frames for d in drafts])
    n, cuts = len(drafts), np.cumsum(lengths)[:-1]
    clip = np.repeat(np.arange(n), lengths)  # [F] clip of each frame
    t_idx = torch.from_numpy(np.arange(len(clip)) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    b_idx = torch.from_numpy(clip)
    presence = np.concatenate([d.presence for d in drafts])  # [F,2]
    hands, joints = [], []
    for side in SIDES:
        R, L, pos, j = pose_hands([d.controls[side] for d in drafts], side)
        hands.append(hand_to_vec(R, L, pos))
        joints.append(j)
    joints_np = torch.stack(joints, 1).numpy()  # [F,2,21,3]
    # Motion translation is relative to the first present wrist of each clip (earliest frame, left
    # hand first); absent frames hold identity rotations and the last valid translation, the
    # convention of clutch_core.hands.motion. Done on a padded [B,144,2,...] grid, once per chunk.
    first = [np.argwhere(p)[0] for p in np.split(presence, cuts)]
    starts = np.cumsum(lengths) - lengths
    origin = torch.from_numpy(np.stack([joints_np[s + t, h, 0] for s, (t, h) in zip(starts, first)]))  # [B,3]
    grid = torch.zeros(n, MAX_FRAMES, 2, HAND_DIM)
    grid[b_idx, t_idx] = torch.stack(hands, 1)
    valid = torch.zeros(n, MAX_FRAMES, 2, dtype=torch.bool)
    valid[b_idx, t_idx] = torch.from_numpy(presence)
    trans = grid[..., TRANSL] - origin[:, None, None, :]
    grid = torch.where(valid[..., None], grid, identity_hand_vec())
    trans = fill_last_valid(trans.transpose(0, 1), valid.transpose(0, 1)).transpose(0, 1)
    grid = torch.cat([grid[..., :TRANSL.start], trans], -1)
    motion = grid[b_idx, t_idx].reshape(-1, 2 * HAND_DIM).numpy()  # [F,198]

    fx, fy, cx, cy = cfg.intrinsics
    kp = np.stack([fx * joints_np[..., 0] / joints_np[..., 2] + cx,
                   fy * joints_np[..., 1] / joints_np[..., 2] + cy], -1).astype(np.float32)
    kp[~presence] = np.nan
    joints_np[~presence] = 0.0
    shape = hand_shape()
    rows = []
    for i, (d, m, pr, j3, k2) in enumerate(zip(drafts, np.split(motion, cuts), np.split(presence, cuts),
                                               np.split(joints_np, cuts), np.split(kp, cuts))):
        p = d.plan
        rows.append(make_row(
            clip_id=f"{p.video_id}-{p.clip_index:03d}", video_id=p.video_id,
            source_uri=f"synthetic://seed-{cfg.seed}/video-{p.video_index:06d}", start_s=p.start_s,
            motion=m, presence=pr, joints3d=j3, keypoints2d=k2, pose_convention="skeleton-ik",
            captions=[{"source": "synthetic", "text": t} for t in d.captions],
            tracker={"name": "synthetic", "version": GENERATOR_VERSION}, quality=_quality(j3, k2, pr, cfg),
            hand_shape=shape,
            fingerprint=cfg.fingerprint, reader="synthetic", image_size=cfg.image_size, intrinsics=cfg.intrinsics,
            created_at=CREATED_AT))
    return rows


def write_corpus(out: str | os.PathLike, cfg: SynthConfig,
                 progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write cfg.clips synthetic clips to `out` as shards `part-synth-s<seed>-<n>.parquet`.

    A shard holds whole videos (about cfg.clips_per_shard clips).
    Also registers each synthetic video in the ledger as done, so status/card/ledger views
    behave as for a built dataset. `progress(n)` is called with the clips written so far.
    """
    from storage.ledger import Ledger
    from storage.writer import write_shard

    ledger = Ledger(out)
    ledger.ensure_fingerprint(cfg.fingerprint)
    paths, batch, written = [], [], 0

    def flush() -> None:
        nonlocal written
        key = f"synth-s{cfg.seed}-{len(paths):05d}"
        path = write_shard(out, key, render_rows([draft_clip(p, cfg.seed) for p in batch], cfg))
        videos = {p.video_id: f"synthetic://seed-{cfg.seed}/video-{p.video_index:06d}" for p in batch}
        ledger.record_done(videos, cfg.fingerprint, path.name)
        paths.append(path)
        written += len(batch)
        batch.clear()
        if progress:
            progress(written)

    for p in plan_clips(cfg):
        if len(batch) >= cfg.clips_per_shard and p.clip_index == 0:  # a video never spans two shards
            flush()
        batch.append(p)
    if batch:
        flush()
    return paths
