"""Guided decoding: the conditional model exactly at scale 1, the guided scores beyond it, constraints kept."""
import numpy as np
import torch
from transformers import LogitsProcessorList, T5Config, T5ForConditionalGeneration

from clutch_core.lm.decode import MotionConstraint, generate_motion_ids
from clutch_core.lm.guidance import guided_generate
from clutch_core.lm.vocab import MotionVocab

VOCAB = MotionVocab(40, ("left_traj", "left_pose", "right_traj", "right_pose"), (("traj", 16), ("pose", 16)), 4)


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=VOCAB.size, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1,
                   num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return T5ForConditionalGeneration(cfg).eval()


def _prompts():
    g = torch.Generator().manual_seed(1)
    cond = torch.randint(3, 40, (3, 7), generator=g)
    uncond = torch.randint(3, 40, (3, 4), generator=g)
    return (cond, torch.ones_like(cond)), (uncond, torch.ones_like(uncond))


def test_scale_1_is_the_conditional_model_step_for_step(one_torch_thread):
    model = _model()
    cond, uncond = _prompts()
    plain = generate_motion_ids(model, *cond, VOCAB, max_steps=5)
    procs = LogitsProcessorList([MotionConstraint(VOCAB, VOCAB.size, 5, greedy_presence=True)])
    guided = guided_generate(model, cond, uncond, procs, 2 + 4 * 5, VOCAB.eom, 1.0)[:, 1:]
    assert guided.tolist() == plain[:, :guided.shape[1]].tolist()


def test_the_first_token_follows_the_guided_scores(one_torch_thread):
    model = _model(3)
    cond, uncond = _prompts()
    scale = 3.0
    with torch.no_grad():
        start = torch.zeros(3, 1, dtype=torch.long)
        lp = [torch.log_softmax(model(input_ids=i, attention_mask=m, decoder_input_ids=start).logits[:, -1], -1)
              for i, m in (cond, uncond)]
    want = (lp[1] + scale * (lp[0] - lp[1])).argmax(-1)
    out = guided_generate(model, cond, uncond, LogitsProcessorList(), 1, eos=-1, scale=scale)
    assert out[:, 1].tolist() == want.tolist()


def test_guided_motion_is_well_formed_at_any_scale(one_torch_thread):
    model = _model(5)
    cond, uncond = _prompts()
    for scale in (0.5, 2.0, 5.0):
        ids = generate_motion_ids(model, *cond, VOCAB, max_steps=4, steps=[2, 3, 4], uncond=uncond, guidance=scale)
        for row, n in zip(ids.tolist(), (2, 3, 4)):
            codes, pres = VOCAB.decode(row)
            assert codes.shape == (n, 4) and pres.shape == (n, 2)
            assert row[0] == VOCAB.som and row[1 + 4 * n] == VOCAB.eom
