"""A researcher's first capped run: `clutch train D --out R --max-steps 2` with every default stage, then
`clutch eval` and `clutch caption` on it, with the transformers and bert-score versions installed here."""
from __future__ import annotations

import json

import pytest

from clutch_cli import main

pytestmark = [pytest.mark.slow, pytest.mark.prefect]


@pytest.fixture(scope="module")
def short_run(prefect_harness, tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("first_hour")
    dataset, run = root / "synth", root / "run"
    assert main(["synth", "--out", str(dataset), "--clips", "500", "--seed", "0", "--no-progress"]) == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", str(dataset), "--out", str(run), "--max-steps", "2", "--lm-rerank", "1",
                     "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return dataset, run


def test_the_eval_stage_of_a_two_step_run_writes_its_report(short_run, capsys):
    _, run = short_run
    text = (run / "eval" / "report.md").read_text()
    assert text.startswith("# CLUTCH evaluation report\n\n- text-to-motion (given length) R@3 ")
    assert "## Legend" in text and "- evaluation set: val (" in text  # tuning reads val; test only with --final
    m2t = json.loads((run / "eval" / "m2t_metrics.json").read_text())
    assert m2t["clutch"]["empty_hypotheses"] >= 0 and m2t["clutch"]["bertscore_f1_minilm"] >= 0


def test_clutch_eval_and_caption_work_on_it(short_run, tmp_path, capsys):
    dataset, run = short_run
    rep = tmp_path / "rep"
    assert main(["eval", str(run), "--dataset", str(dataset), "--out", str(rep), "--repeats", "3", "--rerank", "1"]) == 0
    text = (rep / "report.md").read_text()
    assert text.startswith("# CLUTCH evaluation report")
    stage = json.loads((rep / "metrics.json").read_text())
    assert {"real", "clutch", "clutch_free", "chance"} <= set(stage)
    # the rows say which guidance produced them: the run's recorded scale by default, or the one asked for
    from clutch_core.lm.api import load_run_lm

    recorded = load_run_lm(run).guidance
    assert stage["clutch"]["guidance"] == recorded and f"guidance scale {recorded:g}" in text
    off = tmp_path / "off"
    assert main(["eval", str(run), "--dataset", str(dataset), "--out", str(off), "--repeats", "3", "--rerank", "1", "--rows", "clutch",
                 "m2t", "--guidance", "1"]) == 0
    assert json.loads((off / "metrics.json").read_text())["clutch"]["guidance"] == 1.0
    assert json.loads((off / "m2t_metrics.json").read_text())["clutch"]["guidance"] == 1.0
    assert "classifier-free guidance off" in (off / "report.md").read_text()
    assert main(["eval", str(run), "--dataset", str(dataset), "--out", str(tmp_path / "neg"), "--guidance", "-2"]) == 2
    assert "--guidance" in capsys.readouterr().err
    from storage.reader import ClipReader

    clip = ClipReader(dataset).clip_ids("test")[0]
    capsys.readouterr()
    assert main(["caption", str(run), "--dataset", str(dataset), "--clip-id", clip]) == 0
    assert capsys.readouterr().out.strip()  # never an empty caption, whatever a two-step model writes
    # the test split without --final is refused before anything is scored
    assert main(["eval", str(run), "--dataset", str(dataset), "--out", str(tmp_path / "r2"), "--split", "test"]) == 2
    assert "pass --final to read it" in capsys.readouterr().err  # test is read once, at the end, when told
