"""A dataset as a Hugging Face dataset folder (`clutch export DATASET --hf OUT`).

The shards are plain Parquet already; what the Hub expects on top is split files and a dataset
card with YAML front matter. The folder written here loads with `datasets.load_dataset(OUT)` and
pushes to the Hub as it is (docs/export.md):

    OUT/README.md                     dataset card: YAML (configs, splits, features, licence, task
                                      categories), then the body of `clutch card` and how to load it
    OUT/length_hist.png               the card's clip-length histogram
    OUT/data/<split>-NNNNN.parquet    the clips of one split, cut from the `split` column

Every column the shards hold is carried over, read from their footers (never a list kept here): a
column added to storage.schema is exported as it is. Values stay
bit-identical; only types `with_format("torch")` cannot hold change representation: a timestamp
becomes its int64 count of its unit since 1970-01-01 UTC (the same 64 bits; `hub_schema`).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from storage.schema import SPLITS

DATA_DIR = "data"
# The Hub's viewer shows pages of 100 rows and refuses row groups over ~286 MiB; `datasets` aims at
# row groups of at most 100 MB and files of at most 500 MB (uncompressed). A 9.6 s clip is ~235 KB
# raw, so 100 clips per row group stay near 24 MB.
ROWS_PER_GROUP = 100
ROW_GROUP_BYTES = 100_000_000
FILE_BYTES = 500_000_000
TASK_CATEGORIES = ["text-to-3d", "robotics"]
TAGS = ["hand-motion", "3d-hands", "egocentric-video", "mano", "motion-captioning", "text-to-motion"]


@dataclass
class ExportResult:
    out: Path
    files: dict[str, list[Path]] = field(default_factory=dict)  # split -> files
    rows: dict[str, int] = field(default_factory=dict)  # split -> clips
    nbytes: dict[str, int] = field(default_factory=dict)  # split -> raw (Arrow) bytes


def hub_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with every type that `with_format("torch")` cannot hold replaced by its integer storage
    (timestamp, date, time, duration -> int64/int32 of the same unit), at any nesting depth."""
    fields = []
    for f in schema:
        t = _torch_safe(f.type)
        meta = dict(f.metadata or {})
        if t != f.type:
            meta[b"clutch.original_type"] = str(f.type).encode()
        fields.append(pa.field(f.name, t, f.nullable, meta or None))
    return pa.schema(fields, metadata=schema.metadata)


def _torch_safe(t: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(t) or pa.types.is_duration(t) or pa.types.is_date64(t) or pa.types.is_time64(t):
        return pa.int64()
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return pa.int32()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _torch_safe(f.type), f.nullable) for f in t])
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field(t.value_field.name, _torch_safe(t.value_type), t.value_field.nullable), t.list_size)
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, _torch_safe(t.value_type), t.value_field.nullable))
    if pa.types.is_large_list(t):
        return pa.large_list(pa.field(t.value_field.name, _torch_safe(t.value_type), t.value_field.nullable))
    return t


_DTYPES = {"float": "float32", "double": "float64", "halffloat": "float16"}


def features_yaml(schema: pa.Schema) -> list[dict]:
    """The `dataset_info.features` list of a dataset card for an Arrow schema, in the form the
    `datasets` library reads (`Features._from_yaml_list`): fixed-size lists keep their length."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def _feature(t: pa.DataType) -> dict:
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_feature(f.type)} for f in t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _feature(t.value_type)
        if list(inner) == ["dtype"]:
            inner = inner["dtype"]
        elif list(inner) == ["struct"]:
            inner = inner["struct"]
        out = {"large_list" if pa.types.is_large_list(t) else "list": inner}
        if pa.types.is_fixed_size_list(t):
            out["length"] = t.list_size
        return out
    if pa.types.is_timestamp(t):
        return {"dtype": f"timestamp[{t.unit}" + (f", tz={t.tz}]" if t.tz else "]")}
    return {"dtype": _DTYPES.get(str(t), str(t))}


def shard_schema(shards: Sequence[Path]) -> pa.Schema:
    """The shards' schema, read from their footers; every shard must have the same columns."""
    first = None
    for p in shards:
        try:
            schema = pq.read_schema(p)
        except (OSError, pa.ArrowException) as e:
            raise ValueError(f"{p}: not a readable Parquet file ({e})") from None
        if first is None:
            first = (p, schema)
        elif not schema.equals(first[1]):
            raise ValueError(f"{p}: columns {schema.names} differ from those of {first[0]} ({first[1].names}); "
                             "export shards of one schema version")
    assert first is not None
    return first[1]


class _SplitWriter:
    """Writes one split's rows as data/<split>-NNNNN.parquet: row groups of at most ROWS_PER_GROUP rows and
    ROW_GROUP_BYTES raw bytes, a new file past FILE_BYTES."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema):
        self.folder, self.split, self.schema = folder, split, schema
        self.files: list[Path] = []
        self.rows = self.nbytes = 0
        self._pending: list[pa.Table] = []
        self._writer: pq.ParquetWriter | None = None
        self._file_bytes = 0

    def add(self, table: pa.Table) -> None:
        self._pending.append(table)
        buffered = pa.concat_tables(self._pending)
        per_group = _group_rows(buffered)
        while buffered.num_rows >= per_group:
            self._write(buffered.slice(0, per_group))
            buffered = buffered.slice(per_group)
        self._pending = [buffered] if buffered.num_rows else []

    def close(self) -> None:
        if self._pending:
            self._write(pa.concat_tables(self._pending))
            self._pending = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, group: pa.Table) -> None:
        if self._writer is None or self._file_bytes >= FILE_BYTES:
            if self._writer is not None:
                self._writer.close()
            path = self.folder / f"{self.split}-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(path, self.schema, compression="zstd", write_page_index=True,
                                            use_dictionary=_string_leaves(self.schema))
            self.files.append(path)
            self._file_bytes = 0
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._file_bytes += group.nbytes
        self.rows += group.num_rows
        self.nbytes += group.nbytes


def _string_leaves(schema: pa.Schema) -> list[str]:
    """Parquet paths of the string leaves: the only columns worth dictionary encoding (float arrays grow)."""
    def walk(path: str, t: pa.DataType):
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            yield path
        elif pa.types.is_struct(t):
            for f in t:
                yield from walk(f"{path}.{f.name}", f.type)
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            yield from walk(f"{path}.list.element", t.value_type)

    return [p for f in schema for p in walk(f.name, f.type)]


def _group_rows(table: pa.Table) -> int:
    """Rows per row group for rows like these: ROWS_PER_GROUP, fewer when they are large."""
    if table.num_rows == 0 or table.nbytes == 0:
        return ROWS_PER_GROUP
    return max(1, min(ROWS_PER_GROUP, ROW_GROUP_BYTES * table.num_rows // table.nbytes))


def export_hf(dataset_dir: str | os.PathLike, out: str | os.PathLike, splits: Sequence[str] | None = None,
              overwrite: bool = False, license: str = "other") -> ExportResult:
    """Write DATASET as a Hugging Face dataset folder OUT (module docstring). `splits`: the splits to
    export (default: every split that has clips). OUT must not exist or be empty, unless `overwrite`;
    it is written next to OUT first and moved in place when complete."""
    d, out = Path(dataset_dir), Path(out)
    shards = _check_paths(d, out, overwrite)
    schema = shard_schema(shards)
    present = _split_counts(shards)
    chosen = _choose_splits(d, present, splits)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / DATA_DIR).mkdir(parents=True)
    try:
        result = _write_splits(shards, schema, chosen, tmp)
        _write_readme(d, tmp, hub_schema(schema), result, license)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.out = out
    result.files = {s: [out / DATA_DIR / p.name for p in files] for s, files in result.files.items()}
    return result


def _check_paths(d: Path, out: Path, overwrite: bool) -> list[Path]:
    from storage.writer import SHARDS_DIR, list_shards

    if not d.is_dir():
        raise FileNotFoundError(f"dataset folder {d} does not exist")
    if not (d / SHARDS_DIR).is_dir():
        raise ValueError(f"{d} is not a dataset (no {SHARDS_DIR}/ folder inside)")
    shards = list_shards(d)
    if not shards:
        raise ValueError(f"dataset {d} has no clips (no shard in {d / SHARDS_DIR})")
    if out.resolve() == d.resolve() or d.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"--hf {out}: would overwrite the dataset {d}; pick another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"--hf {out} exists and is not empty; pick another folder or pass --overwrite "
                              "to replace it")
    return shards


def _split_counts(shards: Sequence[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in shards:
        for s in pq.read_table(p, columns=["split"]).column("split").to_pylist():
            counts[s] = counts.get(s, 0) + 1
    return counts


def _choose_splits(d: Path, present: dict[str, int], splits: Sequence[str] | None) -> list[str]:
    if splits is None:
        return [s for s in SPLITS if s in present] + sorted(s for s in present if s not in SPLITS)
    for s in splits:
        if s not in present:
            raise ValueError(f"--splits: no clip of {d} is in split {s!r} (it has "
                             + ", ".join(f"{k} {v}" for k, v in sorted(present.items())) + ")")
    return list(dict.fromkeys(splits))


def _write_splits(shards: Sequence[Path], schema: pa.Schema, splits: Sequence[str], folder: Path) -> ExportResult:
    """One pass over the shards, a row group at a time, every row to its split's writer."""
    import pyarrow.compute as pc

    from storage.integrity import open_parquet, read_verified, repair_hint

    target = hub_schema(schema)
    writers = {s: _SplitWriter(folder / DATA_DIR, s, target) for s in splits}
    for p in shards:
        fix = repair_hint(p.parent.parent)
        f = open_parquet(p, fix)
        for g in range(f.num_row_groups):
            t = read_verified(f, p, fix, row_groups=[g]).cast(target)
            for s, w in writers.items():
                part = t.filter(pc.equal(t.column("split"), s))
                if part.num_rows:
                    w.add(part)
    for w in writers.values():
        w.close()
    return ExportResult(folder, {s: w.files for s, w in writers.items()}, {s: w.rows for s, w in writers.items()},
                        {s: w.nbytes for s, w in writers.items()})


def card_metadata(name: str, schema: pa.Schema, result: ExportResult, license: str) -> dict:
    """The README's YAML front matter: what the Hub and `datasets` read (configs, splits, features)."""
    files = [p for fs in result.files.values() for p in fs]
    return {
        "pretty_name": name,
        "license": license,
        "task_categories": TASK_CATEGORIES,
        "tags": TAGS,
        "size_categories": [_size_category(sum(result.rows.values()))],
        "configs": [{"config_name": "default", "data_files": [
            {"split": s, "path": f"{DATA_DIR}/{s}-*.parquet"} for s in result.files]}],
        "dataset_info": {
            "features": features_yaml(schema),
            "splits": [{"name": s, "num_bytes": result.nbytes[s], "num_examples": result.rows[s]}
                       for s in result.files],
            "download_size": sum(p.stat().st_size for p in files),
            "dataset_size": sum(result.nbytes.values()),
        },
    }


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")]
    return next((label for b, label in bounds if n < b), "100M<n<1B")


def _write_readme(d: Path, folder: Path, schema: pa.Schema, result: ExportResult, license: str) -> None:
    import yaml

    from storage.card import card_markdown

    meta = yaml.safe_dump(card_metadata(d.name, schema, result, license), sort_keys=False, allow_unicode=True)
    body = card_markdown(d, folder / "length_hist.png", "length_hist.png")
    (folder / "README.md").write_text(f"---\n{meta}---\n\n{body}\n{_usage(schema, license)}")


def _usage(schema: pa.Schema, license: str) -> str:
    """The card's sections after `clutch card`'s: columns, conventions, how to load and publish."""
    cols = ["| column | type |", "|---|---|"] + [
        f"| `{f.name}` | `{f.type}`" + (f" (was `{f.metadata[b'clutch.original_type'].decode()}`: same value, "
                                        "counted in its unit since 1970-01-01 UTC)" if f.metadata and
                                        b"clutch.original_type" in f.metadata else "") + " |" for f in schema]
    licence = ("The licence is not set (`license: other`): set it in the YAML above to the terms of the source "
               "videos before publishing." if license == "other" else f"Licence: `{license}`.")
    return "\n".join([
        "## Columns", "", *cols, "",
        "One row per clip at 15 fps. `motion` is [T, 198] per frame: left hand then right hand, each 6D global "
        "orientation (6), 15 finger joints in 6D (90) and wrist translation in metres (3). `presence` [T, 2] says "
        "which hand is seen in each frame (0 left, 1 right): mask with it. `joints3d` [T, 2, 21, 3] (metres, "
        "camera frame) and `keypoints2d` [T, 2, 21, 2] (pixels, NaN where absent) are in MediaPipe joint order.",
        "", licence, "",
        "## Load it", "", "```python", "from datasets import load_dataset", "",
        'ds = load_dataset("PATH_OR_HUB_ID")           # this folder, or the Hub repository it was pushed to',
        'clip = ds["train"].with_format("torch")[0]   # every column; arrays as tensors',
        'clip["motion"].shape                         # torch.Size([T, 198])', "```", "",
        "Or with any Parquet reader: `duckdb.sql(\"FROM 'data/train-*.parquet'\")`.", "",
        "## Publish it", "", "```bash",
        "hf upload USER/NAME . --repo-type dataset     # huggingface_hub's CLI, from this folder", "```", "",
    ])
