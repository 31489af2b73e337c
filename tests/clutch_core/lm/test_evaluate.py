"""evaluate_lm on a tiny trained run: every row and key, finite values in range, baselines computed."""
import math

import numpy as np
import pytest
import torch

from clutch_core.eval.captions import CaptionConfig
from clutch_core.eval.evaluator_model import EvaluatorConfig
from clutch_core.lm.config import preset_config
from clutch_core.lm.evaluate import LMEvalConfig, evaluate_lm
from clutch_core.lm.train import run_stage
from tests.fixtures.lm_run import LM_SMALL, copy_run, shift_run

T2M_KEYS = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "fid", "kid", "kid_lo", "kid_hi",
            "mm_dist", "diversity")
M2T_ROWS = ("clutch", "most_frequent_caption", "nearest_training_motion")
TEXT_KEYS = ("bleu_1", "bleu_4", "rouge_l", "cider", "bertscore_f1_minilm")


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    dataset, base = shift_run(tmp_path_factory)
    run = copy_run(dataset, base, tmp_path_factory.mktemp("lm_eval") / "run")
    run_stage("pretrain", dataset, run, preset_config("tiny", max_steps=4, max_text_tokens=200, **LM_SMALL),
              progress=False)  # this tokenizer is tiny: captions run long in tokens
    cfg = LMEvalConfig(split="all", repeats=2, mm_texts=4, mm_generations=3, max_caption_tokens=8, caption_boot=10,
                       evaluator=EvaluatorConfig(epochs=60, hidden=64, dim=64),
                       evaluator_path=tmp_path_factory.mktemp("evaluator") / "ev",
                       captions=CaptionConfig(bert_batch_size=16))
    return dataset, run, evaluate_lm(run, dataset, cfg), cfg


def _finite(row, keys):
    for k in keys:
        assert k in row, k
        assert isinstance(row[k], float) and math.isfinite(row[k]), (k, row[k])


def test_text_to_motion_rows(report):
    _, _, out, _ = report
    assert out["stage"] == "pretrain" and len(out["evaluator_hash"]) == 12
    real, gen, chance = out["t2m"]["real"], out["t2m"]["clutch"], out["t2m"]["chance"]
    for row in (real, gen):
        _finite(row, T2M_KEYS)
        r = [row[f"r_precision_top{k}"] for k in (1, 2, 3)]
        assert 0 <= r[0] <= r[1] <= r[2] <= 1
        assert row["fid"] >= 0 and row["kid_lo"] <= row["kid"] <= row["kid_hi"] and row["diversity"] > 0
    _finite(gen, ("multimodality", "tf_mpjpe_mm", "tf_ce"))
    assert gen["multimodality"] >= 0 and gen["tf_mpjpe_mm"] > 0
    assert real["fid"] < 1e-6  # the real row against itself
    assert chance["r_precision_top3"] == pytest.approx(3 / 32)
    assert real["r_precision_top3"] > 2 * chance["r_precision_top3"]  # the evaluator tells captions apart
    for name in ("clutch_free", "nearest_caption_motion", "random_train_motion"):
        _finite(out["t2m"][name], T2M_KEYS)
    # the eval set is every clip here, so the TF-IDF baseline finds each clip's own caption among the train clips
    assert out["t2m"]["nearest_caption_motion"]["r_precision_top3"] > out["t2m"]["random_train_motion"]["r_precision_top3"]


def test_degenerate_inputs_score_at_chance(report):
    """A generator that ignores the text, or captions shuffled between clips, must score R@k about k/32."""
    from clutch_core.eval import metrics as M
    from clutch_core.eval.data import eval_clips
    from clutch_core.eval.evaluator_model import Evaluator
    from clutch_core.eval.rows import EvalContext, RowSource
    from clutch_core.eval.t2m import score_row
    from clutch_core.lm.evaluate import caption_r_precision

    dataset, _, out, cfg = report
    clips, _ = eval_clips(dataset, "all")
    ctx = EvalContext(run=None, clips=clips * 8, evaluator=Evaluator.load(cfg.evaluator_path), repeats=20)
    real_emb = ctx.evaluator.encode_motion(*ctx.real)
    one = clips[0]
    constant = RowSource(sample=lambda r, texts: ([one["motion"]] * len(texts), [one["presence"]] * len(texts)))
    row = score_row(ctx, constant, real_emb)
    for k in (1, 2, 3):
        assert abs(row[f"r_precision_top{k}"] - k / M.R_POOL) <= max(3 * row[f"r_precision_top{k}_ci95"], 1e-9)
    shuffled = [c["captions"][0]["text"] for c in np.random.default_rng(0).permutation(ctx.clips)]
    r3 = caption_r_precision(ctx, shuffled, real_emb)
    assert abs(r3["r_precision_top3"] - 3 / M.R_POOL) < 0.06


def test_motion_to_text_table_and_baselines(report):
    _, _, out, _ = report
    table = out["m2t"]
    assert out["bertscore_key"] == "bertscore_f1_minilm"
    for name in M2T_ROWS:
        _finite(table[name], (*TEXT_KEYS, "r_precision_top1", "r_precision_top3"))
        for k in ("bleu_1", "bleu_4", "rouge_l", "r_precision_top3"):
            assert 0 <= table[name][k] <= 1, (name, k)
    _finite(table["real"], ("r_precision_top3",))
    assert len(out["captions"]) == out["n_clips"] and all(c.strip() for c in out["captions"])
    # the evaluation set holds training clips here (40-clip corpus): their nearest training motion is
    # themselves, so that baseline must beat a constant caption
    assert out["eval_set"] == "all"
    assert table["nearest_training_motion"]["bleu_4"] > table["most_frequent_caption"]["bleu_4"]


def test_generation_has_each_clips_length(report):
    from clutch_core.lm.api import generate

    _, run, _, _ = report
    out = generate(run, ["The left hand waves.", "The right hand stays still."], seconds=[1.0, 56 / 15])
    assert [o[0].motion.shape[0] for o in out] == [15, 56]
    assert all(np.isfinite(o[0].motion).all() and o[0].presence.shape == (len(o[0].motion), 2) for o in out)
    with pytest.raises(ValueError, match="seconds"):
        generate(run, ["a", "b"], seconds=[1.0])


def test_bad_parts_rejected(report):
    dataset, run, _, cfg = report
    with pytest.raises(ValueError, match="parts"):
        evaluate_lm(run, dataset, LMEvalConfig(parts=("t2m", "bleu"), evaluator_path=cfg.evaluator_path))


def test_greedy_ends_a_free_length_motion_by_total_probability():
    """At a step boundary <eom> is weighed against every way of going on, as presence is decided."""
    from clutch_core.lm.decode import MotionConstraint
    from clutch_core.lm.vocab import MotionVocab

    v = MotionVocab(100, ("left_traj", "left_pose", "right_traj", "right_pose"), (("traj", 512), ("pose", 512)), 4)
    step = [v.stream_range(0)[0], v.stream_range(1)[0], v.absent, v.absent]
    ids = torch.tensor([[0, v.som, *step], [0, v.som, *step]])  # one step written: <eom> is allowed next
    scores = torch.zeros(2, v.size)
    scores[:, v.eom] = torch.tensor([2.0, 8.0])  # row 0: going on holds 513 e^0 > e^2; row 1: e^8 > 513
    out = MotionConstraint(v, v.size, 36, greedy_presence=True)(ids, scores.clone()).argmax(-1)
    assert int(out[0]) != v.eom and int(out[1]) == v.eom
    assert int(MotionConstraint(v, v.size, 36)(ids, scores.clone()).argmax(-1)[0]) == v.eom  # best single token


def test_greedy_decides_presence_by_total_probability():
    """One <absent> token against 512 codes: greedy must weigh all the codes, not only the best one."""
    from clutch_core.lm.decode import MotionConstraint
    from clutch_core.lm.vocab import MotionVocab

    v = MotionVocab(100, ("left_traj", "left_pose", "right_traj", "right_pose"), (("traj", 512), ("pose", 512)), 4)
    ids = torch.tensor([[0, v.som], [0, v.som]])  # decoder start, <som>: the left hand's trajectory is next
    scores = torch.zeros(2, v.size)
    scores[:, v.absent] = torch.tensor([1.0, 8.0])  # row 0: codes hold 512 e^0 > e^1; row 1: e^8 > 512
    out = MotionConstraint(v, v.size, 36, greedy_presence=True)(ids, scores.clone()).argmax(-1)
    a, b = v.stream_range(0)
    assert a <= int(out[0]) < b and int(out[1]) == v.absent
    plain = MotionConstraint(v, v.size, 36)(ids, scores.clone()).argmax(-1)
    assert int(plain[0]) == v.absent  # the single best code loses to <absent>
