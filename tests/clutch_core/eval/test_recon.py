"""The tokenizer_recon row measures what training measures: same masking, same batching."""
import json

import numpy as np
import pytest
import torch

from clutch_cli import main
from clutch_core.eval.data import load_clips
from clutch_core.eval.recon import load_run_tokenizer, reconstruct
from clutch_core.shift.train import preset_config, train_tokenizer
from tests.fixtures.shift_data import SMALL


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("recon") / "ds"
    assert main(["synth", "--out", str(d), "--clips", "400", "--seed", "5"]) == 0
    return d


@pytest.fixture(scope="module")
def runs(corpus, tmp_path_factory):
    """A briefly trained SHIFT and VQ-VAE (trained models see absent hands as zeros, so feeding
    them anything else shows up in the error)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for kind in ("shift", "vqvae"):
        run = tmp_path_factory.mktemp(kind)
        train_tokenizer(corpus, run, preset_config("tiny", tokenizer=kind, max_steps=40, **{**SMALL, "lr": 2e-3}),
                        progress=False)
        out[kind] = run
    torch.set_num_threads(n)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shift", "vqvae"])
def test_recon_row_equals_training_metrics_on_the_same_split(corpus, runs, kind):
    run = runs[kind]
    metrics = json.loads((run / "shift" / "metrics.json").read_text())
    assert metrics["eval_split"] == "val"
    clips = load_clips(corpus, "val")
    assert any(not c["presence"].all() for c in clips)  # absent hands are part of the test
    rec = reconstruct(load_run_tokenizer(run), [c["motion"] for c in clips], [c["presence"] for c in clips])
    assert rec.metrics["mpjpe_mm"] == pytest.approx(metrics["val_mpjpe_mm"], rel=0.02)
    assert rec.metrics["accel_error_mm"] == pytest.approx(metrics["val_accel_error_mm"], rel=0.02)


@pytest.mark.slow
def test_a_clips_reconstruction_does_not_depend_on_its_batch(corpus, runs):
    tok = load_run_tokenizer(runs["shift"])
    clips = load_clips(corpus, "val")
    motions, pres = [c["motion"] for c in clips], [c["presence"] for c in clips]
    together = reconstruct(tok, motions, pres, batch=64)
    for i in (0, len(clips) // 2, len(clips) - 1):
        alone = reconstruct(tok, [motions[i]], [pres[i]], batch=1)
        np.testing.assert_allclose(alone.motions[0], together.motions[i], atol=1e-4)


@pytest.mark.slow
def test_clutch_eval_recon_rows_match_metrics_json_and_share_one_evaluator(corpus, runs, tmp_path):
    hashes = set()
    for kind, run in runs.items():
        out = tmp_path / kind
        assert main(["eval", str(run), "--dataset", str(corpus), "--out", str(out), "--split", "val",
                     "--repeats", "2", "--evaluator-epochs", "2"]) == 0
        table = json.loads((out / "metrics.json").read_text())
        want = json.loads((run / "shift" / "metrics.json").read_text())["val_mpjpe_mm"]
        assert table["tokenizer_recon"]["mpjpe_mm"] == pytest.approx(want, rel=0.02), kind
        assert table["tokenizer_recon"]["eval_set"] == "val"
        hashes |= {r["evaluator_hash"] for r in table.values()}
    assert len(hashes) == 1
    assert [p.name for p in (corpus / "evaluators").iterdir()] == list(hashes)
