"""Read clips from a dataset's shards: as Arrow tables, row dicts, or padded torch batches.

Random access for training goes through a small in-memory index (clip_id -> shard,
row group, row) built from the scalar columns of every shard footer-first, then reads
only the row groups and columns it needs with pyarrow. Shards are sorted by clip_id and
their row groups are small (storage.writer.ROW_GROUP_BYTES), so one clip costs one
small row group. DuckDB (storage.catalog) is the tool for ad-hoc queries; this path
avoids SQL planning for the hot loop. Both are measured in BENCHMARKS.md, "Storage".
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.integrity import open_parquet, read_verified, repair_hint
from storage.schema import ARRAY_SHAPES, CLIP_SCHEMA, SPLITS, column_to_numpy, table_to_rows
from storage.writer import list_shards

_INDEX_COLUMNS = ["clip_id", "video_id", "split", "num_frames"]


@dataclass
class _Shard:
    path: Path
    stamp: tuple[int, int]  # (mtime_ns, size): a rewritten shard is re-indexed
    metadata: pq.FileMetaData
    clip_id: np.ndarray  # [N] object
    video_id: np.ndarray
    split: np.ndarray
    num_frames: np.ndarray  # [N] int32
    row_group: np.ndarray  # [N] int32
    row_in_group: np.ndarray  # [N] int64


def _stamp(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_mtime_ns, st.st_size


def _index_shard(path: Path) -> _Shard:
    """Raises storage.integrity.DamagedFileError (naming the shard and the repair) for a damaged shard."""
    fix = repair_hint(path.parent.parent)
    f = open_parquet(path, fix, columns=CLIP_SCHEMA.names)
    t = read_verified(f, path, fix, columns=_INDEX_COLUMNS)
    sizes = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
    rg = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    starts = np.repeat(np.cumsum([0] + sizes[:-1]), sizes)
    return _Shard(path, _stamp(path), f.metadata,
                  np.asarray(t.column("clip_id").to_pylist(), dtype=object),
                  np.asarray(t.column("video_id").to_pylist(), dtype=object),
                  np.asarray(t.column("split").to_pylist(), dtype=object),
                  t.column("num_frames").to_numpy().astype(np.int32),
                  rg, np.arange(t.num_rows, dtype=np.int64) - starts)


class ClipReader:
    """Random and filtered access to the clips of one dataset folder."""

    def __init__(self, dataset_dir: str | os.PathLike, threads: int = 4):
        self.dataset_dir = Path(dataset_dir)
        if not self.dataset_dir.is_dir():
            raise FileNotFoundError(f"dataset folder {self.dataset_dir} does not exist")
        self.threads = threads
        self._shards: dict[Path, _Shard] = {}
        self._where: dict[str, tuple[Path, int]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Pick up shards written, rewritten or removed since the last call."""
        paths = list_shards(self.dataset_dir)
        changed = set(self._shards) - set(paths)
        for p in paths:
            old = self._shards.get(p)
            if old is None or old.stamp != _stamp(p):
                self._shards[p] = _index_shard(p)
                changed.add(p)
        for p in set(self._shards) - set(paths):
            del self._shards[p]
        if changed:
            self._where = {}
            for p, s in self._shards.items():
                for i, cid in enumerate(s.clip_id):
                    if cid in self._where:
                        raise ValueError(f"clip_id {cid!r} is in two shards: {self._where[cid][0].name}, {p.name}")
                    self._where[cid] = (p, i)

    def __len__(self) -> int:
        return len(self._where)

    def clip_ids(self, split: str | None = None) -> list[str]:
        """All clip ids (of one split), in shard order."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        out: list[str] = []
        for s in self._shards.values():
            out.extend(s.clip_id if split is None else s.clip_id[s.split == split])
        return out

    def num_frames(self, clip_ids: Sequence[str]) -> np.ndarray:
        """[B] frame counts from the index (no shard read)."""
        return np.array([self._shards[p].num_frames[i] for p, i in self._locate(clip_ids)], dtype=np.int64)

    def _locate(self, clip_ids: Sequence[str]) -> list[tuple[Path, int]]:
        try:
            return [self._where[c] for c in clip_ids]
        except KeyError as e:
            raise KeyError(f"clip_id {e.args[0]!r} is not in {self.dataset_dir}") from None

    def read_table(self, clip_ids: Sequence[str] | None = None, split: str | None = None,
                   columns: Sequence[str] | None = None) -> pa.Table:
        """Clips as an Arrow table (CLIP_SCHEMA columns), in the order of `clip_ids` when given."""
        cols = list(columns) if columns is not None else CLIP_SCHEMA.names
        unknown = set(cols) - set(CLIP_SCHEMA.names)
        if unknown:
            raise ValueError(f"unknown column(s) {sorted(unknown)}")
        if clip_ids is None:
            clip_ids = self.clip_ids(split)
        elif split is not None:
            clip_ids = [c for c in clip_ids if self._shards[self._where[c][0]].split[self._where[c][1]] == split]
        locs = self._locate(clip_ids)
        if not locs:
            return CLIP_SCHEMA.empty_table().select(cols)
        by_shard: dict[Path, list[int]] = {}  # shard -> positions in the output
        for pos, (p, _) in enumerate(locs):
            by_shard.setdefault(p, []).append(pos)

        def read(p: Path) -> pa.Table:
            # A fresh reader per task (parsed footer reused): pyarrow readers are not thread-safe.
            s, positions = self._shards[p], by_shard[p]
            rows = np.array([locs[pos][1] for pos in positions])
            groups = np.unique(s.row_group[rows])
            f = pq.ParquetFile(p, metadata=s.metadata, page_checksum_verification=True)
            t = read_verified(f, p, repair_hint(self.dataset_dir), columns=cols, row_groups=groups.tolist())
            sizes = np.array([s.metadata.row_group(int(g)).num_rows for g in groups])
            first = dict(zip(groups.tolist(), np.cumsum(sizes) - sizes))  # row group -> its first row in t
            return t.take([int(first[int(s.row_group[i])] + s.row_in_group[i]) for i in rows])

        with ThreadPoolExecutor(max(1, min(self.threads, len(by_shard)))) as pool:
            parts = list(pool.map(read, by_shard))
        table = pa.concat_tables(parts)
        order = np.empty(len(locs), dtype=np.int64)  # output position -> row of `table`
        order[np.concatenate(list(by_shard.values()))] = np.arange(len(locs))
        return table.take(order)

    def read_rows(self, clip_ids: Sequence[str] | None = None, split: str | None = None,
                  columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Clips as row dicts with numpy arrays (storage.schema.table_to_rows)."""
        return table_to_rows(self.read_table(clip_ids, split, columns))

    def load_batch(self, clip_ids: Sequence[str], pad_to: int | None = None) -> dict[str, Any]:
        """Padded tensors for training.

        Returns motion float32 [B, T, 198], presence bool [B, T, 2] (False on padding),
        lengths int64 [B], clip_ids list[str]; T = pad_to or the longest clip.
        """
        import torch

        ids = list(clip_ids)
        t = self.read_table(ids, columns=["motion", "presence"])
        lengths = self.num_frames(ids)
        tmax = int(pad_to if pad_to is not None else (lengths.max() if len(ids) else 0))
        if len(ids) and lengths.max() > tmax:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest clip ({lengths.max()} frames)")
        motion = pad_frames(t.column("motion"), "motion", tmax)
        presence = pad_frames(t.column("presence"), "presence", tmax)
        return {"motion": torch.from_numpy(motion), "presence": torch.from_numpy(presence),
                "lengths": torch.from_numpy(lengths), "clip_ids": ids}


def pad_frames(col: pa.ChunkedArray | pa.Array, name: str, tmax: int) -> np.ndarray:
    """Array column `name` (motion, presence, ...) of B clips -> zero-padded [B, tmax, *frame shape]."""
    shape, dtype = ARRAY_SHAPES[name]
    per_clip = column_to_numpy(col, name)
    out = np.zeros((len(per_clip), tmax, *shape), dtype=dtype)
    for b, a in enumerate(per_clip):
        out[b, : len(a)] = a
    return out


def read_rows(dataset_dir: str | os.PathLike, clip_ids: Iterable[str] | None = None, split: str | None = None,
              columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One-shot helper: ClipReader(dataset_dir).read_rows(...)."""
    return ClipReader(dataset_dir).read_rows(None if clip_ids is None else list(clip_ids), split, columns)


def load_batch(dataset_dir: str | os.PathLike, clip_ids: Sequence[str], pad_to: int | None = None) -> dict[str, Any]:
    """One-shot helper: ClipReader(dataset_dir).load_batch(...). Keep a ClipReader for repeated batches."""
    return ClipReader(dataset_dir).load_batch(clip_ids, pad_to)
