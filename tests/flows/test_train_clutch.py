"""train-clutch flow (stages shift -> tokenize) through Prefect; the CLI's stage handling."""

import pytest
import torch

from clutch_cli import main
from tests.fixtures.shift_data import small_dataset


@pytest.mark.slow
@pytest.mark.prefect
def test_train_clutch_flow_runs_stages_then_skips_them(prefect_harness, tmp_path_factory, tmp_path):
    from flows.train_clutch import train_clutch

    dataset = small_dataset(tmp_path_factory)
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared machine: one thread is faster
    try:
        _check_flow(train_clutch, dataset, out)
    finally:
        torch.set_num_threads(threads)


def _check_flow(train_clutch, dataset, out):
    res = train_clutch(dataset=str(dataset), out=str(out), preset="tiny", stages=["shift", "tokenize"],
                       max_steps=2, batch=4)
    assert res["shift"]["steps"] == 2 and res["shift"]["val_mpjpe_mm"] > 0
    assert res["tokenize"]["written"] == 40
    metrics = (out / "shift" / "metrics.json").read_text()
    again = train_clutch(dataset=str(dataset), out=str(out), preset="tiny", stages=["shift", "tokenize"],
                         max_steps=2, batch=4)
    assert again["tokenize"] == {**res["tokenize"], "written": 0, "skipped": 40}
    assert (out / "shift" / "metrics.json").read_text() == metrics  # not retrained
    with pytest.raises(ValueError, match="unknown"):
        train_clutch(dataset=str(dataset), out=str(out), stages=["lm"])


def test_train_clutch_is_a_served_deployment():
    from clutch_cli.deployments import DEPLOYMENTS

    assert ("flows.train_clutch:train_clutch", "local") in DEPLOYMENTS


def test_stages_are_validated_and_ordered():
    from flows.config import TrainClutchConfig

    assert TrainClutchConfig(dataset="d", out="o", stages="tokenize,shift").stages == ["shift", "tokenize"]
    with pytest.raises(ValueError, match="unknown or no stage"):
        TrainClutchConfig(dataset="d", out="o", stages=["shift", "lm"])


def test_cli_refuses_an_unknown_stage_naming_it(tmp_path, capsys):
    (tmp_path / "shards").mkdir()
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--stages", "shift,lm"]) == 2
    assert "'lm'" in capsys.readouterr().err


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no shards/" in capsys.readouterr().err
    (tmp_path / "shards").mkdir()
    assert main(["tokenize", str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "no trained tokenizer" in capsys.readouterr().err
