"""The same integrity rules for training files: damaged checkpoints and tokens parts are caught, never used."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file

from clutch_core.shift.checkpoint import load_tokenizer
from clutch_core.training.checkpoint import DamagedCheckpoint
from clutch_core.shift.tokenize import read_tokens, tokenize_dataset
from clutch_core.shift.train import preset_config, train_tokenizer
from tests.fixtures.shift_data import SMALL, small_dataset
from storage.integrity import DamagedFileError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return small_dataset(tmp_path_factory)


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


def truncate(p) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def train(dataset, out, steps):
    return train_tokenizer(dataset, out, preset_config("tiny", max_steps=steps, ckpt_every=3, **SMALL), progress=False)


@pytest.mark.slow
def test_a_truncated_checkpoint_resumes_from_the_previous_one_and_equals_uninterrupted(dataset, tmp_path, caplog):
    train(dataset, tmp_path / "a", 9)
    train(dataset, tmp_path / "b", 6)  # checkpoints at steps 3 (kept as previous) and 6
    ckpt = tmp_path / "b/shift/checkpoint.safetensors"
    truncate(ckpt)
    with caplog.at_level("WARNING"):
        train(dataset, tmp_path / "b", 9)  # resumes from step 3, not a crash
    assert "previous checkpoint" in caplog.text and "not a readable" in caplog.text
    assert (tmp_path / "b/shift/checkpoint.safetensors.damaged").exists()
    a, b = load_file(tmp_path / "a/shift/model.safetensors"), load_file(tmp_path / "b/shift/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "resume from the previous checkpoint changed the result"
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b/shift/train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 10))


@pytest.mark.slow
def test_with_no_good_checkpoint_the_stage_restarts_with_a_warning(dataset, tmp_path, caplog):
    train(dataset, tmp_path, 3)  # one checkpoint only
    (tmp_path / "shift/metrics.json").unlink()  # not finished: it must resume
    ckpt = tmp_path / "shift/checkpoint.safetensors"
    data = bytearray(ckpt.read_bytes())
    data[-64:] = bytes(b ^ 0xFF for b in data[-64:])  # flipped bytes in the tensor data, size unchanged
    ckpt.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        m = train(dataset, tmp_path, 3)
    assert "starts over" in caplog.text and "sha256 differs" in caplog.text
    assert m["steps_this_run"] == 3


def test_a_damaged_model_file_is_named(dataset, tmp_path):
    train(dataset, tmp_path, 1)
    truncate(tmp_path / "shift/model.safetensors")
    with pytest.raises(DamagedCheckpoint, match="model.safetensors"):
        load_tokenizer(tmp_path)


@pytest.mark.slow
def test_a_damaged_tokens_part_is_named_on_read_and_redone_by_the_next_run(dataset, tmp_path):
    train(dataset, tmp_path, 2)
    s = tokenize_dataset(tmp_path, dataset, chunk=16, progress=False)
    before = read_tokens(s["dir"]).sort_by("clip_id")
    part = sorted(p for p in os.listdir(s["dir"]) if p.endswith(".parquet"))[0]
    path = os.path.join(s["dir"], part)
    n = len(open(path, "rb").read())
    with open(path, "r+b") as f:  # flipped bytes inside the token pages
        f.seek(n // 3)
        chunk = f.read(32)
        f.seek(n // 3)
        f.write(bytes(b ^ 0xFF for b in chunk))
    with pytest.raises(DamagedFileError, match=part):
        read_tokens(s["dir"])
    again = tokenize_dataset(tmp_path, dataset, chunk=16, progress=False)
    assert again["written"] > 0 and os.path.exists(os.path.join(s["dir"], ".damaged", part))
    assert read_tokens(s["dir"]).sort_by("clip_id").equals(before)
