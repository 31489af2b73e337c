"""LM stages end to end on a tiny synthetic run: checkpoints, generate/caption, skip, resume, refinement, bad input."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from clutch_core.lm.api import caption, generate
from clutch_core.lm.config import preset_config
from clutch_core.lm.train import run_stage
from tests.fixtures.lm_run import LM_SMALL, copy_run, shift_run


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    """Every test here on one torch thread (conftest.one_torch_thread)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset, run) with pretrain, refine and instruct trained 4 steps each."""
    dataset, base = shift_run(tmp_path_factory)
    run = copy_run(dataset, base, tmp_path_factory.mktemp("lm") / "run")
    cfg = preset_config("tiny", max_steps=4, **LM_SMALL)
    metrics = {s: run_stage(s, dataset, run, cfg, progress=False) for s in ("pretrain", "refine", "instruct")}
    return dataset, run, cfg, metrics


def test_stages_write_loadable_checkpoints_and_metrics(trained):
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    dataset, run, cfg, metrics = trained
    for stage in ("pretrain", "refine", "instruct"):
        m = json.loads((run / stage / "metrics.json").read_text())
        assert m["steps"] == 4 and m["stage"] == stage
        for k in ("val_ce", "val_motion_token_acc", "val_tf_mpjpe_mm", "train_tokens_per_s"):
            assert math.isfinite(m[k]), k
        model = T5ForConditionalGeneration.from_pretrained(run / stage / "model")
        tok = AutoTokenizer.from_pretrained(run / stage / "model")
        assert model.get_input_embeddings().num_embeddings == len(tok)
        assert tok.convert_tokens_to_ids("<som>") == json.loads((run / stage / "model" / "motion_vocab.json").read_text())["vocab"]["base"]
    assert metrics["refine"]["init"].startswith("pretrain:") and metrics["instruct"]["init"].startswith("refine:")
    log = [json.loads(x) for x in (run / "refine" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all("geo_l1" in r for r in log if r["geo_factor"] > 0)
    # refine and instruct fine-tune at their own rate, without a warm-up; pretrain warms up to lr
    assert cfg.finetune_lr is not None and cfg.finetune_lr != cfg.lr
    assert {r["lr"] for r in log} == {cfg.finetune_lr}
    pre = [json.loads(x)["lr"] for x in (run / "pretrain" / "train_log.jsonl").read_text().splitlines()]
    assert pre == pytest.approx([cfg.lr * k / cfg.warmup_steps for k in (1, 2)] + [cfg.lr] * 2)
    # finished: skipped, nothing rewritten
    mtime = (run / "instruct" / "metrics.json").stat().st_mtime_ns
    assert run_stage("instruct", dataset, run, cfg, progress=False) == metrics["instruct"]
    assert (run / "instruct" / "metrics.json").stat().st_mtime_ns == mtime


def test_generate_returns_finite_motion_with_presence_and_length(trained):
    _, run, _, _ = trained
    out = generate(run, ["The left hand waves.", "The right hand lifts the cup."], seconds=2)
    assert len(out) == 2 and all(len(o) == 1 for o in out)
    for (m, p), in out:
        assert abs(m.shape[0] - 30) <= 4 and m.shape[1] == 198 and np.isfinite(m).all()
        assert p.shape == (m.shape[0], 2) and p.dtype == bool
    free = generate(run, "The left hand waves.", samples=3, seed=1, top_k=20)
    assert len(free) == 1 and len(free[0]) == 3
    for m, p in free[0]:
        assert 4 <= m.shape[0] <= 144 and m.shape[0] % 4 == 0 and np.isfinite(m).all()
    again = generate(run, "The left hand waves.", samples=3, seed=1, top_k=20)
    assert all(np.array_equal(a.motion, b.motion) for a, b in zip(free[0], again[0]))  # seeded


def test_rerank_returns_the_candidate_its_own_motion_to_text_scores_highest(trained, monkeypatch):
    from clutch_core.lm import rerank

    _, run, _, _ = trained
    seen = {}
    real = rerank.caption_log_likelihood

    def spy(model, renderer, motion_ids, texts, batch_size=32):
        s = real(model, renderer, motion_ids, texts, batch_size)
        seen.update(ids=motion_ids, texts=texts, scores=s)
        return s

    monkeypatch.setattr(rerank, "caption_log_likelihood", spy)
    text = "The left hand waves."
    (best,), = generate(run, text, seconds=2, rerank=4, seed=3)
    # the candidates: the greedy motion, then what sampling draws from the same seed
    greedy = generate(run, text, seconds=2, rerank=1)[0][0]
    sampled = generate(run, text, seconds=2, samples=3, seed=3, rerank=1)[0]
    cands = [greedy, *sampled]
    assert seen["texts"] == [text] * 4 and len(seen["ids"]) == 4
    j = int(np.argmax(seen["scores"]))
    assert np.array_equal(best.motion, cands[j].motion) and np.array_equal(best.presence, cands[j].presence)
    assert generate(run, text, seconds=2, rerank=4, seed=3)[0][0].motion.tobytes() == best.motion.tobytes()  # seeded
    with pytest.raises(ValueError, match="rerank"):
        generate(run, text, rerank=-2)


def test_the_rerank_score_is_the_captions_teacher_forced_log_likelihood(trained):
    from clutch_core.lm.api import load_run_lm
    from clutch_core.lm.rerank import caption_log_likelihood
    from clutch_core.lm.tasks import Renderer, templates

    _, run, _, _ = trained
    lm = load_run_lm(run)
    r = Renderer(lm.tokenizer, lm.vocab)
    rng = np.random.default_rng(0)
    motions = [lm.vocab.encode(rng.integers(0, 16, (n, 4)), np.ones((n, 2), bool)) for n in (2, 5, 3)]
    texts = ["The left hand waves.", "Both hands lift the cup slowly and put it down.", "The right hand points."]
    batched = caption_log_likelihood(lm.model, r, motions, texts, batch_size=3)
    tmpl = templates()["m2t"][0]
    for m, t, got in zip(motions, texts, batched):
        inp = torch.tensor([r.render(tmpl["input"], {"motion": m})[0]])
        lab = torch.tensor([r.render(tmpl["output"], {"caption": t})[0]])
        with torch.no_grad():
            loss = lm.model(input_ids=inp, attention_mask=torch.ones_like(inp), labels=lab).loss  # mean over tokens
        assert got == pytest.approx(-float(loss) * lab.shape[1], rel=1e-4, abs=1e-4)  # padding changes nothing


def test_caption_rerank_keeps_the_candidate_both_directions_score_highest(trained, monkeypatch):
    from clutch_core.lm import rerank
    from storage.reader import ClipReader

    dataset, run, _, _ = trained
    row = ClipReader(dataset).read_rows(split="val", columns=["motion", "presence"])[0]
    seen = {}
    real_m, real_c = rerank.motion_log_likelihood, rerank.caption_log_likelihood

    def spy_m(model, renderer, texts, motion_ids, seconds, batch_size=32):
        seen["texts"], seen["seconds"] = list(texts), list(seconds)
        seen["m"] = real_m(model, renderer, texts, motion_ids, seconds, batch_size)
        return seen["m"]

    def spy_c(model, renderer, motion_ids, texts, batch_size=32):
        seen["c"] = real_c(model, renderer, motion_ids, texts, batch_size)
        return seen["c"]

    monkeypatch.setattr(rerank, "motion_log_likelihood", spy_m)
    monkeypatch.setattr(rerank, "caption_log_likelihood", spy_c)
    best = caption(run, row["motion"], row["presence"], max_length=12, rerank=3, seed=1)
    assert len(seen["texts"]) == 3 and seen["texts"][0] == caption(run, row["motion"], row["presence"], max_length=12,
                                                                   rerank=1)  # the greedy caption is a candidate
    assert seen["seconds"] == [pytest.approx(len(row["motion"]) / 15)] * 3
    total = seen["m"] + seen["c"]
    assert best == seen["texts"][int(np.argmax(total))]


def test_best_of_keeps_each_groups_best_and_the_earlier_of_a_tie():
    from clutch_core.lm.rerank import best_of

    scores = np.array([1.0, 3.0, 3.0, 0.0, -1.0, -2.0, -0.5, -3.0])  # two groups of 4
    assert best_of(scores, 2, 1).tolist() == [[1], [6]]
    assert best_of(scores, 2, 2).tolist() == [[1, 2], [6, 4]]


def test_caption_returns_a_non_empty_string(trained):
    dataset, run, _, _ = trained
    from storage.reader import ClipReader

    row = ClipReader(dataset).read_rows(split="val", columns=["motion", "presence"])[0]
    for beams in (1, 3):
        text = caption(run, row["motion"], row["presence"], num_beams=beams, max_length=12)
        assert isinstance(text, str) and text.strip()


def test_resumed_stage_equals_uninterrupted(trained, tmp_path):
    from safetensors.torch import load_file

    dataset, base, _, _ = trained
    cfg = preset_config("tiny", max_steps=4, **LM_SMALL)
    runs = {}
    for name in ("a", "b"):
        run = copy_run(dataset, base, tmp_path / name)
        run_stage("pretrain", dataset, run, cfg, progress=False)
        runs[name] = run
    def weights(run, stage):
        return load_file(run / stage / "model" / "model.safetensors")

    wa, wb = weights(runs["a"], "pretrain"), weights(runs["b"], "pretrain")
    assert [k for k in wa if not torch.equal(wa[k], wb[k])] == []  # same start
    run_stage("refine", dataset, runs["a"], cfg, progress=False)
    partial = run_stage("refine", dataset, runs["b"], cfg, progress=False, stop_after=2)  # killed after step 2
    assert partial["complete"] is False and not (runs["b"] / "refine" / "metrics.json").exists()
    m = run_stage("refine", dataset, runs["b"], cfg, progress=False)
    assert m["steps_this_run"] == 2 and m["steps"] == 4
    wa, wb = weights(runs["a"], "refine"), weights(runs["b"], "refine")
    assert wa.keys() == wb.keys() and [k for k in wa if not torch.equal(wa[k], wb[k])] == []


def test_refinement_loss_reaches_the_lm_and_lowers_decoded_error(trained):
    from clutch_core.lm.data import Sampler, collate, load_corpus, tokens_for
    from clutch_core.lm.geometry import codebooks, gather_motion_logits, geometric_loss, soft_decode, step_presence
    from clutch_core.lm.model import load_lm
    from clutch_core.lm.tasks import Renderer
    from clutch_core.lm.text import sentinel_ids
    from clutch_core.lm.train import valid_only, motion_targets
    from clutch_core.shift.checkpoint import load_tokenizer
    from clutch_core.shift.data import load_clips

    dataset, run, cfg, _ = trained
    model, tok, vocab, _ = load_lm(run / "pretrain" / "model")
    shift, stats, _ = load_tokenizer(run)
    shift.requires_grad_(False)  # as the refine stage: SHIFT is frozen
    clips = load_corpus(tokens_for(run, dataset), dataset, "train")
    frames = load_clips(dataset, "train", [c.clip_id for c in clips]).normalized(stats)
    where = {c: i for i, c in enumerate(frames.clip_ids)}
    sampler = Sampler(clips, Renderer(tok, vocab), sentinel_ids(tok), "refine", 0)
    rng = np.random.default_rng(0)
    one_hand = [i for i, c in enumerate(clips) if (c.presence.sum(1) == 1).any()]  # steps with one hand only
    assert one_hand, "the fixture corpus has one-hand clips"
    batch = collate([sampler.example(rng, "t2m", i=one_hand[0])] + [sampler.example(rng, "t2m") for _ in range(3)],
                    tok.pad_token_id, 256, 192)
    t = valid_only(motion_targets(batch, clips, frames, where, vocab))
    presence = step_presence(t)

    def geo():
        torch.manual_seed(0)  # same Gumbel noise for every evaluation
        o = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        pred = soft_decode(gather_motion_logits(o.logits, t), shift, vocab, 0.5, presence)
        l1, joint = geometric_loss(pred, t, stats)
        return l1 + 10 * joint

    model.train()
    loss = geo()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0  # differentiable back to the LM
    # the soft decode of one-hot weights is SHIFT's own decode of those codes, one-hand steps included
    gt_codes = torch.stack([batch["labels"][t.rows].gather(1, t.positions[..., k]) - vocab.stream_range(k)[0]
                            for k in range(4)], -1).clamp_min(0)  # <absent> positions: any code
    assert (presence.sum(-1) == 1).any()
    vec = torch.stack([cb[gt_codes[..., k]] for k, cb in enumerate(codebooks(shift, vocab))], 2)
    torch.testing.assert_close(shift.decode_vectors(vec, presence), shift.decode(gt_codes, presence), rtol=1e-4, atol=1e-4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.eval()
    with torch.no_grad():
        before = float(geo())
    for _ in range(30):
        opt.zero_grad()
        geo().backward()
        opt.step()
    with torch.no_grad():
        after = float(geo())
    with torch.no_grad():
        l1, joint = geometric_loss(shift.decode(gt_codes, presence), t, stats)
    floor = float(l1 + 10 * joint)  # the true codes' error: what SHIFT itself allows
    assert after - floor < 0.7 * (before - floor), (before, after, floor)


def test_bad_inputs_raise_clear_errors(trained, tmp_path):
    dataset, run, _, _ = trained
    with pytest.raises(ValueError, match="empty text"):
        generate(run, ["  "])
    with pytest.raises(ValueError, match="longer than"):
        generate(run, ["the left hand waves " * 200])
    with pytest.raises(ValueError, match="seconds"):
        generate(run, ["waves"], seconds=30)
    with pytest.raises(ValueError, match=r"\[T, 198\]"):
        caption(run, np.zeros((10, 99), np.float32))
    bad = np.zeros((10, 198), np.float32)
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        caption(run, bad)
    with pytest.raises(ValueError, match="presence"):
        caption(run, np.zeros((10, 198), np.float32), np.ones((9, 2), bool))
    bare = tmp_path / "bare"
    (bare / "shift").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"pretrain.*clutch train DATASET --out .* --stages pretrain"):
        generate(bare, ["waves"])
    # a run whose SHIFT differs from the one the LM was trained on
    import shutil
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoint.safetensors"))
    from safetensors.torch import load_file, save_file
    w = load_file(other / "shift" / "model.safetensors")
    k = next(k for k in w if k.endswith("codebook"))
    w[k] = w[k] + 1.0
    save_file(w, other / "shift" / "model.safetensors")
    with pytest.raises(ValueError, match="mismatch"):
        generate(other, ["waves"])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["vqvae", "rvq"])
def test_whole_frame_tokenizers_work_through_the_lm_stages_and_keep_one_hand_clips_one_handed(kind, tmp_path,
                                                                                             tmp_path_factory):
    """The baselines' LM path: pretrain trains, generate decodes, and a one-hand clip's tokens decode one-handed."""
    from clutch_core.lm.api import codes_to_motion, load_run_lm
    from clutch_core.lm.data import load_corpus, tokens_for
    from clutch_core.shift.tokenize import tokenize_dataset
    from clutch_core.shift.train import preset_config as shift_config, train_tokenizer
    from tests.fixtures.shift_data import SMALL, small_dataset

    dataset = small_dataset(tmp_path_factory)
    run = tmp_path / kind
    train_tokenizer(dataset, run, shift_config("tiny", tokenizer=kind, max_steps=3, **SMALL), progress=False)
    tokenize_dataset(run, dataset, progress=False)
    m = run_stage("pretrain", dataset, run, preset_config("tiny", max_steps=2, **LM_SMALL), progress=False)
    assert m["steps"] == 2 and math.isfinite(m["val_ce"])
    (motion, presence), = generate(run, "The left hand waves.", seconds=2)[0]
    assert motion.shape == (30, 198) and np.isfinite(motion).all() and presence.shape == (30, 2)
    lm = load_run_lm(run)
    clip = next(c for c in load_corpus(tokens_for(run, dataset), dataset, "train") if not c.presence[:, 1].any())
    codes, pres = lm.vocab.decode(lm.vocab.encode(clip.codes, clip.presence))
    assert not pres[:, 1].any() and (pres[:, 0] == clip.presence[:, 0]).all()  # no ghost right hand
    assert not codes_to_motion(lm, codes, pres).presence[:, 1].any()


def test_finetune_lr_is_a_setting_of_the_later_stages_only():
    """A pretrain stage finished before finetune_lr existed, or under another finetune_lr, is still the same
    stage (skipped, resumable); refine and instruct are retrained when it changes."""
    a, b = preset_config("tiny", finetune_lr=1e-4), preset_config("tiny", finetune_lr=3e-4)
    assert a.identity("pretrain") == b.identity("pretrain") and "finetune_lr" not in a.identity("pretrain")
    assert a.identity("refine") != b.identity("refine") and a.identity("instruct") != b.identity("instruct")
    assert (a.stage_lr("pretrain"), a.stage_lr("refine"), a.stage_lr("instruct")) == (a.lr, 1e-4, 1e-4)
    assert dataclasses.replace(a, finetune_lr=None).stage_lr("refine") == a.lr  # the paper preset's: one lr
