"""`clutch export DATASET --hf OUT`: a folder `datasets.load_dataset` reads as it is, same clips and
bit-identical arrays per split, `with_format("torch")` on every column; the card; usage errors.
Also: the shards themselves under `with_format("torch")`."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from clutch_cli import main
from storage.schema import ARRAY_SHAPES, CLIP_SCHEMA, rows_to_table
from tests.fixtures.cli import assert_usage_errors
from tests.fixtures.eval_data import make_rows

try:
    import datasets
except ImportError:  # a test extra: `pip install -e ".[dev]"`
    datasets = None


@pytest.fixture(autouse=True)
def needs_datasets():
    from tests.conftest import require

    require(datasets is not None, "the datasets package is not installed (pip install -e '.[dev]')")

SHAPE = pa.list_(pa.float32(), 10)  # a column the schema may gain (e.g. a per-track hand shape)


def _rows(n: int, seed: int, first: int) -> list[dict]:
    rows = make_rows(n, seed=seed)
    for i, r in enumerate(rows):
        r["clip_id"], r["video_id"] = f"clip{first + i:04d}", f"vid{first + i:04d}"
        r["split"] = ("train", "val", "test")[(first + i) % 3]
        r["created_at"] = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=first + i)
    return rows


@pytest.fixture(scope="module")
def newer_schema():
    """The schema as if storage.schema had gained a column `shape`: the export must carry it unchanged."""
    import storage.verify

    mp = pytest.MonkeyPatch()
    mp.setattr(storage.verify, "CLIP_SCHEMA", CLIP_SCHEMA.append(pa.field("shape", SHAPE)))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two shards of clips with a column `shape` besides the ones of CLIP_SCHEMA."""
    d = tmp_path_factory.mktemp("export") / "ds"
    (d / "shards").mkdir(parents=True)
    for key, seed, first, n in (("a", 1, 0, 7), ("b", 2, 7, 8)):
        t = rows_to_table(_rows(n, seed=seed, first=first))
        shape = pa.array([np.arange(10, dtype=np.float32) * (first + i) for i in range(n)], SHAPE)
        pq.write_table(t.append_column(pa.field("shape", SHAPE), shape), d / "shards" / f"part-{key}.parquet")
    return d


@pytest.fixture(scope="module")
def exported(dataset, newer_schema, tmp_path_factory):
    import storage.export as export

    out = tmp_path_factory.mktemp("hf") / "out"
    mp = pytest.MonkeyPatch()
    mp.setattr(export, "ROWS_PER_GROUP", 2)  # several row groups and files from a few clips
    mp.setattr(export, "FILE_BYTES", 200_000)
    try:
        assert main(["export", str(dataset), "--hf", str(out), "--license", "cc-by-4.0"]) == 0
    finally:
        mp.undo()
    return out


def _source(dataset) -> dict[str, dict]:
    t = pa.concat_tables([pq.read_table(p) for p in sorted((dataset / "shards").glob("*.parquet"))])
    return {r["clip_id"]: r for r in t.to_pylist()}


def _bits(a) -> np.ndarray:
    a = np.asarray(a)
    return a.view(np.uint32) if a.dtype == np.float32 else a


def test_load_dataset_gives_the_same_clips_and_bit_identical_arrays_per_split(dataset, exported, tmp_path):
    src = _source(dataset)
    ds = datasets.load_dataset(str(exported), cache_dir=str(tmp_path / "cache"))
    assert set(ds) == {"train", "val", "test"}
    for split, part in ds.items():
        assert sorted(part["clip_id"]) == sorted(c for c, r in src.items() if r["split"] == split)
        files = sorted((exported / "data").glob(f"{split}-*.parquet"))
        assert [f.name for f in files] == [f"{split}-{k:05d}.parquet" for k in range(len(files))]
        assert all(pq.ParquetFile(f).metadata.row_group(g).num_rows <= 2
                   for f in files for g in range(pq.ParquetFile(f).num_row_groups))
        numpy_part = part.with_format("numpy")
        for i, clip in enumerate(part["clip_id"]):
            row = numpy_part[i]
            for name, (shape, dtype) in ARRAY_SHAPES.items():
                want = np.asarray(src[clip][name], dtype).reshape(-1, *shape)
                got = np.asarray(row[name], dtype)
                assert got.shape == want.shape and np.array_equal(_bits(got), _bits(want)), (clip, name)  # NaNs too
            assert np.array_equal(row["shape"], src[clip]["shape"])
            for name in ("quality", "captions", "tracker", "start_s", "num_frames", "source_uri"):
                assert part[i][name] == src[clip][name], (clip, name)
            assert int(row["created_at"]) == src[clip]["created_at"]  # int64 microseconds, as stored
    assert len(list((exported / "data").glob("train-*.parquet"))) > 1  # FILE_BYTES cut the split into files


def test_torch_format_works_on_every_column_without_picking_columns(exported, tmp_path):
    import torch

    ds = datasets.load_dataset(str(exported), cache_dir=str(tmp_path / "cache"))
    for split, part in ds.items():
        t = part.with_format("torch")
        assert t.format["columns"] is None or set(t.format["columns"]) == set(part.column_names)
        for i in range(len(t)):
            row = t[i]
            assert set(row) == set(part.column_names)
            n = int(row["num_frames"])
            assert isinstance(row["motion"], torch.Tensor) and row["motion"].shape == (n, 198)
            assert row["presence"].dtype == torch.bool and row["joints3d"].shape == (n, 2, 21, 3)
            assert row["created_at"].dtype == torch.int64
        batch = t[:3]  # a batch too: clips of different lengths come as lists of tensors
        assert len(batch["motion"]) == min(3, len(t))


def test_card_front_matter_and_body(exported, dataset):
    text = (exported / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "cc-by-4.0" and meta["task_categories"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*.parquet"} for s in ("train", "val", "test")]}]
    counts = {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]}
    assert counts == {"train": 5, "val": 5, "test": 5}
    names = [f["name"] for f in meta["dataset_info"]["features"]]
    assert names == [*CLIP_SCHEMA.names, "shape"]
    body = text.split("---\n", 2)[2]
    for section in ("## Splits", "## Hands", "## Captions", "## Quality", "## Load it", "## Publish it"):
        assert section in body, section
    assert "| presence_right | 15 |" in body  # the quality distribution, over every clip
    assert (exported / "length_hist.png").stat().st_size > 1000
    assert not (dataset / "card").exists()  # exporting leaves the dataset as it was


def test_yaml_features_are_what_datasets_reads():
    from storage.export import features_yaml, hub_schema

    schema = CLIP_SCHEMA.append(pa.field("shape", SHAPE)).append(
        pa.field("events", pa.list_(pa.struct([("at", pa.timestamp("ms")), ("what", pa.large_string())]))))
    hub = hub_schema(schema)
    assert hub.field("created_at").type == pa.int64()
    assert hub.field("events").type.value_type.field("at").type == pa.int64()
    assert features_yaml(hub) == datasets.Features.from_arrow_schema(hub)._to_yaml_list()
    assert datasets.Features._from_yaml_list(features_yaml(hub)) == datasets.Features.from_arrow_schema(hub)


def test_usage_errors_exit_2_and_create_nothing(dataset, newer_schema, tmp_path, capsys):
    not_ds = tmp_path / "plain"
    not_ds.mkdir()
    cases = [
        (["export", str(not_ds), "--hf", str(tmp_path / "o1")], [str(not_ds), "not a dataset"]),
        (["export", str(tmp_path / "nope"), "--hf", str(tmp_path / "o2")], ["nope", "no such folder"]),
        (["export", str(dataset), "--hf", str(tmp_path / "o3"), "--splits", "train,holdout"], ["holdout"]),
        (["export", str(dataset), "--hf", str(dataset.parent)], ["overwrite the dataset"]),
    ]
    assert_usage_errors(main, capsys, cases)
    assert not any((tmp_path / f"o{k}").exists() for k in (1, 2, 3))
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert main(["export", str(dataset), "--hf", str(full)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (full / "keep.txt").read_text() == "mine"
    assert main(["export", str(dataset), "--hf", str(full), "--overwrite", "--splits", "val"]) == 0
    assert not (full / "keep.txt").exists() and sorted(p.name for p in (full / "data").iterdir()) == ["val-00000.parquet"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


@pytest.fixture
def shards(tmp_path):
    """A dataset written by the project's own shard writer, with today's CLIP_SCHEMA."""
    from storage.writer import write_shard

    write_shard(tmp_path / "ds", "0", _rows(4, seed=3, first=0))
    return tmp_path / "ds" / "shards"


def _shards_dataset(shards, tmp_path):
    return datasets.load_dataset("parquet", data_files=str(shards / "*.parquet"), split="train",
                                 cache_dir=str(tmp_path / "cache"))


def test_shards_take_the_torch_and_numpy_formats_as_they_are(shards, tmp_path):
    """Every column of the shards themselves (created_at is int64 microseconds) loads as tensors."""
    import torch

    ds = _shards_dataset(shards, tmp_path)
    row = ds.with_format("torch")[0]
    assert set(row) == set(CLIP_SCHEMA.names) and row["motion"].shape == (int(row["num_frames"]), 198)
    assert row["created_at"].dtype == torch.int64
    assert ds.with_format("numpy")[0]["joints3d"].shape[1:] == (2, 21, 3)
