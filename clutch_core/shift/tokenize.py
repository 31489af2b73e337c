"""Token extraction: every clip of a dataset -> motion tokens, written next to the shards.

DATASET/tokens/<run name>-<weights hash>/
  tokenizer.json      streams, codebook sizes, frames per step, the run it came from
  part-<key>.parquet  one file per chunk of clips, written atomically (temporary name
                      not matching *.parquet, then rename), rows sorted by clip_id

Row: clip_id, split, num_frames, num_steps (= ceil(num_frames / 4)),
tokens list<int32> [num_steps * n_streams] step-major ([l-traj, l-pose, r-traj, r-pose]
per step for SHIFT, one per step for the VQ-VAE baseline),
presence_steps list<fixed_size_list<bool, 2>> [num_steps] (hand present in any frame of
the step; an absent hand's tokens are still there, this mask says to ignore them).
Resumable: clips already present in a part are skipped. Parts carry page checksums; a
part that does not read back whole (truncated, flipped bytes) is moved to .damaged/ by the
next tokenize run and its clips are tokenized again; read_tokens names it instead of
returning damaged tokens.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from clutch_core.shift.checkpoint import load_tokenizer, shift_weights_id
from clutch_core.training.checkpoint import atomic_write_json
from layout.run import TOKENS_DIR
from storage.integrity import DamagedFileError, open_parquet, read_verified

log = logging.getLogger(__name__)

DAMAGED_DIR = ".damaged"
TOKENS_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("num_frames", pa.int32(), nullable=False),
    pa.field("num_steps", pa.int32(), nullable=False),
    pa.field("tokens", pa.list_(pa.int32()), nullable=False),
    pa.field("presence_steps", pa.list_(pa.list_(pa.bool_(), 2)), nullable=False),
])


def tokens_dir(run: str | os.PathLike, dataset: str | os.PathLike) -> Path:
    """DATASET/tokens/<run folder name>-<weights id of RUN's tokenizer> (clutch_core.shift.checkpoint)."""
    return Path(dataset) / TOKENS_DIR / f"{Path(run).resolve().name}-{shift_weights_id(run)}"


def _parts(out: Path) -> list[Path]:
    return sorted(out.glob("part-*.parquet"))


def _fix(out: Path) -> str:
    return (f"Rerun `clutch tokenize RUN DATASET` for {out}: it moves damaged parts to "
            f"{out / DAMAGED_DIR} and tokenizes their clips again")


def _read_part(p: Path, columns: list[str] | None = None) -> pa.Table:
    """A whole part, page CRCs checked; DamagedFileError naming it otherwise."""
    return read_verified(open_parquet(p, _fix(p.parent), columns=TOKENS_SCHEMA.names), p, _fix(p.parent), columns)


def done_clip_ids(out: Path) -> set[str]:
    """Clip ids of the readable parts; a damaged part is moved aside (its clips are then redone)."""
    done: set[str] = set()
    for p in _parts(out):
        try:
            done.update(_read_part(p).column("clip_id").to_pylist())  # every page: bad token pages too
        except DamagedFileError as e:
            (out / DAMAGED_DIR).mkdir(exist_ok=True)
            os.replace(p, out / DAMAGED_DIR / p.name)
            log.warning("moved damaged tokens part %s to %s (%s); its clips are tokenized again",
                        p, out / DAMAGED_DIR, e.problem)
    return done


def read_tokens(out: str | os.PathLike) -> pa.Table:
    """All token rows of one tokens folder; DamagedFileError names a damaged part."""
    parts = _parts(Path(out))
    return pa.concat_tables([_read_part(p) for p in parts]) if parts else TOKENS_SCHEMA.empty_table()


def tokenize_dataset(run: str | os.PathLike, dataset: str | os.PathLike, chunk: int = 512, batch: int = 64,
                     progress: bool = True) -> dict[str, Any]:
    """Tokenize every clip of DATASET not yet tokenized with RUN's tokenizer; returns a summary."""
    from storage.reader import ClipReader
    from clutch_core.shift.data import clip_batches, load_clips

    out = tokens_dir(run, dataset)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".part-*.tmp-*"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    model, stats, config = load_tokenizer(run)
    atomic_write_json(out / "tokenizer.json", {
        "run": str(Path(run).resolve()), "tokenizer": config["tokenizer"]["kind"], "streams": config["streams"],
        "codebooks": config["codebooks"], "frames_per_step": config["frames_per_step"], "steps": config["steps"]})
    reader = ClipReader(dataset, threads=1)
    done = done_clip_ids(out)
    todo = sorted(set(reader.clip_ids()) - done)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo) + len(done), initial=len(done), desc="tokenize", unit="clip", dynamic_ncols=True)
    stride, n_streams = model.cfg.stride, len(model.streams)
    for k in range(0, len(todo), chunk):
        ids = todo[k:k + chunk]
        clips = load_clips(dataset, clip_ids=ids)
        norm = clips.normalized(stats)
        splits = reader.read_table(ids, columns=["split"]).column("split").to_pylist()
        toks: list[np.ndarray | None] = [None] * len(ids)
        pres: list[np.ndarray | None] = [None] * len(ids)
        with torch.no_grad():
            for idx, x, p in clip_batches(norm, stride, batch):
                o = model(x, p)
                for j, i in enumerate(idx):
                    toks[i] = o.tokens[j].to(torch.int32).numpy()  # [S, n_streams]
                    pres[i] = o.latent_presence[j].numpy()  # [S, 2]
            if bar is not None:
                bar.update(len(ids))
        steps = np.array([len(t) for t in toks], dtype=np.int32)
        flat_p = pa.array(np.concatenate(pres).reshape(-1), pa.bool_())
        table = pa.table({
            "clip_id": pa.array(clips.clip_ids, pa.string()),
            "split": pa.array(splits, pa.string()),
            "num_frames": pa.array(clips.lengths.numpy().astype(np.int32)),
            "num_steps": pa.array(steps),
            "tokens": pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(steps * n_streams)]).astype(np.int32)),
                                               pa.array(np.concatenate(toks).reshape(-1), pa.int32())),
            "presence_steps": pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(steps)]).astype(np.int32)),
                                                       pa.FixedSizeListArray.from_arrays(flat_p, 2)),
        }).cast(TOKENS_SCHEMA)
        key = hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]
        _write_part(out / f"part-{key}.parquet", table.sort_by("clip_id"))
    if bar is not None:
        bar.close()
    return {"dir": str(out), "written": len(todo), "skipped": len(done), "total": len(todo) + len(done)}


def _write_part(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
