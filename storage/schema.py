"""The one definition of a 3D-HIW clip row.

Every writer (build-3dhiw, `clutch synth`) and every reader (training, evaluation,
rendering) goes through this module, so a column exists in exactly one place.

A row is a plain dict; array fields are numpy arrays with these shapes (T = num_frames):

    motion      float32 [T, 198]        per hand 6D global orient (6) + 15x6D joints (90)
                                        + wrist translation (3); left hand first
    presence    bool    [T, 2]          hand 0 = left, 1 = right
    joints3d    float32 [T, 2, 21, 3]   metres, camera frame, OpenPose/MediaPipe order
    keypoints2d float32 [T, 2, 21, 2]   pixels, NaN where the hand is absent

Version history (the version is stored in each shard's metadata, SCHEMA_VERSION_KEY):
    1  the first layout
    2  `hand_shape` (one rigid hand per track: the shape `joints3d` are forward kinematics of
       `motion` with); `quality` gains the reprojection error, the wrist-depth jump, the fraction
       of frames the fit rejected and `flags` (the quality thresholds a kept clip failed);
       `created_at` is int64 microseconds since 1970-01-01 UTC (was a timestamp, which tensor
       formats such as Hugging Face datasets' `with_format("torch")` cannot hold)
    3  `quality` gains the reprojection error per hand track (reproj_track_{mean,median,p95}_{left,right});
       version-2 shards are still read (their `quality` lacks these fields)
"""
from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

from layout import FPS, FRAME_DIM, HAND_DIM, MAX_FRAMES, NUM_JOINTS  # noqa: F401 (re-exported for readers)

SCHEMA_VERSION = "3"
READABLE_VERSIONS = ("2", "3")  # 2 lacks only quality fields: its shards read as they are
SCHEMA_VERSION_KEY = b"clutch.schema_version"

SPLITS = ("train", "val", "test")
POSE_CONVENTIONS = ("mano", "skeleton-ik")
SHAPE_KINDS = {"skeleton-ik": ("bone_lengths", 20), "mano": ("mano_betas", 10)}  # pose_convention -> hand_shape

_f32 = pa.float32()


def _fixed(t: pa.DataType, n: int) -> pa.DataType:
    return pa.list_(t, n)


QUALITY_TYPE = pa.struct(
    [
        ("presence_left", _f32),  # fraction of frames with the left hand present
        ("presence_right", _f32),
        ("jitter", _f32),  # mean |acceleration| of present joints, m/s^2
        ("bone_length_cv", _f32),  # mean coefficient of variation of bone lengths
        ("handedness_score", _f32),  # mean tracker handedness confidence (1.0 synthetic)
        ("reproj_px_median", _f32),  # joints3d projected through intrinsics vs keypoints2d: median px (image_size)
        ("reproj_px_p95", _f32),  # ... its 95th percentile
        ("wrist_depth_jump_p95", _f32),  # |wrist depth change| between consecutive present frames, p95, metres
        ("fit_rejected", _f32),  # fraction of the clip's tracked hand-frames the fit rejected (now absent)
        # per hand track (one hand in this clip): each present frame's mean joint error (px), then over the
        # track's frames its mean, median and 95th percentile; null where the hand is absent from the clip
        ("reproj_track_mean_left", _f32),
        ("reproj_track_median_left", _f32),
        ("reproj_track_p95_left", _f32),
        ("reproj_track_mean_right", _f32),
        ("reproj_track_median_right", _f32),
        ("reproj_track_p95_right", _f32),
        ("flags", pa.string()),  # quality thresholds the clip failed, comma-separated ('' = none; see docs/storage.md)
    ]
)
QUALITY_FIELDS = [f.name for f in QUALITY_TYPE]
TRACK_QUALITY_FIELDS = [f for f in QUALITY_FIELDS if f.startswith("reproj_track_")]  # null: hand absent
# One hand shape per track: kind 'bone_lengths' (20 per hand, metres, bone i ends at joint i+1 in
# MediaPipe order; skeleton-ik rows) or 'mano_betas' (10 per hand; mano rows). joints3d = forward
# kinematics of motion with it (clutch_core.hands.fit.row_joints).
HAND_SHAPE_TYPE = pa.struct([("kind", pa.string()), ("left", pa.list_(_f32)), ("right", pa.list_(_f32))])
CAPTION_TYPE = pa.struct([("source", pa.string()), ("text", pa.string())])
TRACKER_TYPE = pa.struct([("name", pa.string()), ("version", pa.string())])

CLIP_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("start_s", pa.float64(), nullable=False),
        pa.field("end_s", pa.float64(), nullable=False),
        pa.field("fps", _f32, nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("motion", pa.list_(_fixed(_f32, FRAME_DIM)), nullable=False),
        pa.field("presence", pa.list_(_fixed(pa.bool_(), 2)), nullable=False),
        pa.field("joints3d", pa.list_(_fixed(_fixed(_fixed(_f32, 3), NUM_JOINTS), 2)), nullable=False),
        pa.field("keypoints2d", pa.list_(_fixed(_fixed(_fixed(_f32, 2), NUM_JOINTS), 2)), nullable=False),
        pa.field("pose_convention", pa.string(), nullable=False),
        pa.field("captions", pa.list_(CAPTION_TYPE), nullable=False),
        pa.field("tracker", TRACKER_TYPE, nullable=False),
        pa.field("quality", QUALITY_TYPE, nullable=False),
        pa.field("hand_shape", HAND_SHAPE_TYPE, nullable=False),
        pa.field("created_at", pa.int64(), nullable=False),  # microseconds since 1970-01-01 UTC (write time)
        # Not in the minimal contract, kept because renderers and resume need them.
        pa.field("fingerprint", pa.string()),  # hash of output-changing settings
        pa.field("reader", pa.string()),  # decord | pyav | synthetic
        pa.field("image_size", _fixed(pa.int32(), 2)),  # [width, height] of the source
        pa.field("intrinsics", _fixed(_f32, 4)),  # fx, fy, cx, cy (pixels of image_size)
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()},
)

ARRAY_SHAPES = {  # per-frame trailing shape and dtype of each array column
    "motion": ((FRAME_DIM,), np.float32),
    "presence": ((2,), np.bool_),
    "joints3d": ((2, NUM_JOINTS, 3), np.float32),
    "keypoints2d": ((2, NUM_JOINTS, 2), np.float32),
}
# created_at may be left out of a row: rows_to_table stamps it with the write time.
REQUIRED = [f.name for f in CLIP_SCHEMA if not f.nullable and f.name != "created_at"]


class RowValidationError(ValueError):
    """A clip row that breaks the contract; names the clip and the field."""

    def __init__(self, clip_id: str, field: str, problem: str):
        self.clip_id, self.field, self.problem = clip_id, field, problem
        super().__init__(f"clip {clip_id!r}: field {field!r}: {problem}")


def split_for(video_id: str) -> str:
    """Deterministic 80/10/10 split from the video id: clips of one video never straddle splits."""
    import hashlib

    h = int(hashlib.sha1(video_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if h < 80 else ("val" if h < 90 else "test")


def validate_row(row: Mapping[str, Any]) -> None:
    """Raise RowValidationError on the first problem found in one row."""
    cid = str(row.get("clip_id", "<no clip_id>"))
    for name in REQUIRED:
        if row.get(name) is None:
            raise RowValidationError(cid, name, "missing")
    t = row["num_frames"]
    if not isinstance(t, (int, np.integer)) or not 1 <= int(t) <= MAX_FRAMES:
        raise RowValidationError(cid, "num_frames", f"must be an int in 1..{MAX_FRAMES}, got {t!r}")
    if abs(float(row["fps"]) - FPS) > 1e-6:
        raise RowValidationError(cid, "fps", f"must be {FPS}, got {row['fps']!r}")
    if row["split"] not in SPLITS:
        raise RowValidationError(cid, "split", f"must be one of {SPLITS}, got {row['split']!r}")
    if row["pose_convention"] not in POSE_CONVENTIONS:
        raise RowValidationError(cid, "pose_convention", f"must be one of {POSE_CONVENTIONS}")
    if not float(row["end_s"]) >= float(row["start_s"]) >= 0:
        raise RowValidationError(cid, "end_s", "need 0 <= start_s <= end_s")
    for name, (shape, dtype) in ARRAY_SHAPES.items():
        a = np.asarray(row[name])
        if a.shape != (int(t), *shape):
            raise RowValidationError(cid, name, f"shape {a.shape}, expected {(int(t), *shape)}")
        if dtype is np.float32 and name != "keypoints2d" and not np.isfinite(a).all():
            raise RowValidationError(cid, name, "contains NaN or inf")
    _validate_quality(cid, row["quality"])
    _validate_shape(cid, row["hand_shape"], row["pose_convention"])
    caps = row["captions"]
    if not caps or any(not c.get("source") or not str(c.get("text", "")).strip() for c in caps):
        raise RowValidationError(cid, "captions", "need at least one caption with source and text")


def _validate_quality(cid: str, q: Mapping[str, Any]) -> None:
    missing = [k for k in QUALITY_FIELDS if k not in q or q[k] is None and k not in TRACK_QUALITY_FIELDS]
    if missing:
        raise RowValidationError(cid, "quality", f"missing {missing}")
    bad = [k for k in QUALITY_FIELDS if k != "flags" and q[k] is not None and not np.isfinite(float(q[k]))]
    if bad:
        raise RowValidationError(cid, "quality", f"not finite: {bad}")


def _validate_shape(cid: str, shape: Mapping[str, Any], convention: str) -> None:
    kind, n = SHAPE_KINDS[convention]
    if shape.get("kind") != kind:
        raise RowValidationError(cid, "hand_shape", f"kind must be {kind!r} for pose_convention {convention!r}, "
                                                    f"got {shape.get('kind')!r}")
    for side in ("left", "right"):
        v = np.asarray(shape.get(side, ()), np.float64)
        if v.shape != (n,) or not np.isfinite(v).all():
            raise RowValidationError(cid, "hand_shape", f"{side}: need {n} finite values, got shape {v.shape}")
        if kind == "bone_lengths" and (v <= 0).any():
            raise RowValidationError(cid, "hand_shape", f"{side}: bone lengths must be > 0")


EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def epoch_us(t: _dt.datetime | int) -> int:
    """`created_at` as stored: microseconds since 1970-01-01 UTC (an int passes through)."""
    if isinstance(t, (int, np.integer)):
        return int(t)
    if t.tzinfo is None:
        raise ValueError(f"created_at {t}: give a timezone-aware datetime (e.g. UTC)")
    return (t - EPOCH) // _dt.timedelta(microseconds=1)


def rows_to_table(rows: list[Mapping[str, Any]]) -> pa.Table:
    """Validate rows and build an Arrow table with CLIP_SCHEMA (fixed-size lists, no copies of Python floats)."""
    for r in rows:
        validate_row(r)
    cols: dict[str, pa.Array] = {}
    for f in CLIP_SCHEMA:
        if f.name in ARRAY_SHAPES:
            cols[f.name] = _nested_array([np.asarray(r[f.name]) for r in rows], f.type)
        elif f.name == "created_at":
            now = _dt.datetime.now(_dt.timezone.utc)
            cols[f.name] = pa.array([epoch_us(r.get("created_at") or now) for r in rows], f.type)
        else:
            vals = [r.get(f.name) for r in rows]
            if f.name in ("image_size", "intrinsics"):
                vals = [None if v is None else [x for x in np.asarray(v).tolist()] for v in vals]
            elif f.name == "hand_shape":
                vals = [{"kind": v["kind"], "left": np.asarray(v["left"], np.float32).tolist(),
                         "right": np.asarray(v["right"], np.float32).tolist()} for v in vals]
            cols[f.name] = pa.array(vals, f.type)
    return pa.Table.from_arrays(list(cols.values()), schema=CLIP_SCHEMA)


def _nested_array(arrays: list[np.ndarray], typ: pa.DataType) -> pa.Array:
    """Build list<fixed_size_list...> from per-row arrays [T, ...] without Python loops per value."""
    lengths = np.array([len(a) for a in arrays], dtype=np.int32)
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
    inner = typ.value_type
    sizes = []
    t = inner
    while pa.types.is_fixed_size_list(t):
        sizes.append(t.list_size)
        t = t.value_type
    values: pa.Array = pa.array(flat.astype(t.to_pandas_dtype(), copy=False), type=t)
    for n in reversed(sizes):
        values = pa.FixedSizeListArray.from_arrays(values, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def column_to_numpy(col: pa.ChunkedArray | pa.Array, name: str) -> list[np.ndarray]:
    """Inverse of _nested_array: one [T, ...] numpy array per row.

    Also accepts variable-size inner lists (what DuckDB returns for these columns, since
    Parquet has no fixed-size list) as long as every inner list has the contract size.
    """
    shape, dtype = ARRAY_SHAPES[name]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    offsets = col.offsets.to_numpy()
    values = col.values
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    per = int(np.prod(shape))  # `values` is the unsliced child: offsets index it directly
    if len(offsets) and len(flat) < int(offsets[-1]) * per:
        raise ValueError(f"column {name!r}: inner lists are shorter than the contract shape {shape}")
    return [flat[a * per:b * per].reshape(b - a, *shape) for a, b in zip(offsets[:-1], offsets[1:])]


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Arrow table -> list of row dicts with numpy arrays (the inverse of rows_to_table)."""
    arrays = {n: column_to_numpy(table.column(n), n) for n in ARRAY_SHAPES if n in table.column_names}
    plain = [n for n in table.column_names if n not in ARRAY_SHAPES]
    pyd = table.select(plain).to_pylist()
    for i, r in enumerate(pyd):
        for n, lst in arrays.items():
            r[n] = lst[i]
    return pyd
