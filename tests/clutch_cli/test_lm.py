"""`clutch train` runs every stage through the train-clutch flow; `clutch generate` and `clutch caption`
work on the result and refuse bad input with exit 2 and a message naming the problem."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from clutch_cli import main
from tests.fixtures.shift_data import small_dataset

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


@pytest.fixture(scope="module")
def trained(prefect_harness, tmp_path_factory):
    """(dataset, run): every train-clutch stage, a few steps each, through `clutch train`."""
    import torch

    dataset = small_dataset(tmp_path_factory)
    run = tmp_path_factory.mktemp("lm_cli") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["train", str(dataset), "--out", str(run), "--preset", "tiny", "--max-steps", "3", "--batch", "4",
                   "--lm-batch", "4", "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return dataset, run


def test_train_runs_every_stage_by_default(trained):
    from flows.stages import STAGES

    _, run = trained
    for stage in ("shift", "pretrain", "refine", "instruct"):
        assert (run / stage / "metrics.json").is_file(), stage
    assert {"shift", "tokenize", "pretrain", "refine", "instruct"} <= set(STAGES)


def test_generate_writes_npz_with_the_asked_length_and_caption_reads_it(trained, tmp_path, capsys):
    _, run = trained
    out = tmp_path / "m.npz"
    assert main(["generate", str(run), "the left hand waves", "--out", str(out), "--seconds", "2"]) == 0
    z = np.load(out)
    assert z["motion"].shape == (30, 198) and z["presence"].shape == (30, 2)
    assert np.isfinite(z["motion"]).all() and z["presence"].dtype == bool
    capsys.readouterr()
    assert main(["caption", str(run), "--motion", str(out)]) == 0
    assert capsys.readouterr().out.strip()


def test_generate_parquet_holds_one_row_per_sample(trained, tmp_path):
    _, run = trained
    out = tmp_path / "m.parquet"
    assert main(["generate", str(run), "both hands clap", "--out", str(out), "--samples", "3", "--seed", "1"]) == 0
    t = pq.read_table(out).to_pylist()
    assert [r["sample"] for r in t] == [0, 1, 2]
    for r in t:
        assert 4 <= r["num_frames"] <= 144 and len(r["motion"]) == r["num_frames"] == len(r["presence"])


def test_caption_of_a_dataset_clip(trained, capsys):
    from storage.reader import read_rows

    dataset, run = trained
    clip = read_rows(dataset, columns=["clip_id"])[0]["clip_id"]
    assert main(["caption", str(run), "--dataset", str(dataset), "--clip-id", clip]) == 0
    assert capsys.readouterr().out.strip()


def test_bad_input_is_a_usage_error_naming_the_problem(trained, tmp_path, capsys):
    dataset, run = trained
    cases = []
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, motion=np.zeros((10, 99), np.float32))
    nan = tmp_path / "nan.npz"
    m = np.zeros((10, 198), np.float32)
    m[3, 5] = np.nan
    np.savez(nan, motion=m)
    shift_only = tmp_path / "shift_only"
    (shift_only / "shift").mkdir(parents=True)
    cases = [
        (["generate", str(run), "  ", "--out", str(tmp_path / "a.npz")], "empty"),
        (["generate", str(run), "wave " * 400, "--out", str(tmp_path / "a.npz")], "long"),
        (["generate", str(run), "wave", "--out", str(tmp_path / "a.txt")], "--out"),
        (["generate", str(run), "wave", "--out", str(tmp_path / "a.npz"), "--seconds", "30"], "seconds"),
        (["generate", str(tmp_path / "nope"), "wave", "--out", str(tmp_path / "a.npz")], "nope"),
        (["generate", str(shift_only), "wave", "--out", str(tmp_path / "a.npz")], "pretrain"),
        (["generate", str(run), "wave", "--out", str(tmp_path / "a.npz"), "--guidance", "-1"], "guidance"),
        (["caption", str(run), "--motion", str(wrong)], "198"),
        (["caption", str(run), "--motion", str(nan)], "NaN"),
        (["caption", str(run), "--motion", str(tmp_path / "missing.npz")], "missing.npz"),
        (["caption", str(run), "--dataset", str(dataset), "--clip-id", "no-such-clip"], "no-such-clip"),
    ]
    for argv, needle in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle.lower() in err.lower(), (argv, err)
        assert "Traceback" not in err
