"""The model can follow its text at all: on 32 clips (their first 8 latent steps, 32 motion tokens each) and
text-to-motion alone, the loss falls tenfold and each clip's caption generates that clip's motion (retrieved
among the 32 by its tokens)."""
import numpy as np
import pytest
import torch

from clutch_core.lm.config import preset_config
from tests.fixtures.lm_run import shift_run


@pytest.mark.slow
def test_text_to_motion_overfits_32_clips(tmp_path_factory, tmp_path, one_torch_thread):
    from clutch_core.lm.data import Sampler, collate, load_corpus, tokens_for
    from clutch_core.lm.decode import generate_motion_ids
    from clutch_core.lm.model import base_tokenizer, build_t5
    from clutch_core.lm.tasks import Example, Renderer, templates
    from clutch_core.lm.text import sentinel_ids
    from clutch_core.shift.checkpoint import load_tokenizer
    from clutch_core.training.optim import adamw

    dataset, run = shift_run(tmp_path_factory)
    clips, seen = [], set()
    for c in sorted((c for split in ("train", "val") for c in load_corpus(tokens_for(run, dataset), dataset, split)),
                    key=lambda c: c.clip_id):
        if c.captions[0] not in seen and len(clips) < 32:  # one caption each, no two clips alike
            seen.add(c.captions[0])
            c.captions = c.captions[:1]
            clips.append(c)
    assert len(clips) == 32
    for c in clips:  # short motions: memorising 32 x 32 tokens fits in a few hundred CPU steps
        c.codes, c.presence = c.codes[:8], c.presence[:8]
    _, _, shift_config = load_tokenizer(run)
    cfg = preset_config("tiny", text_vocab=200, d_model=64, d_ff=128, layers=2, heads=4, d_kv=16, dropout=0.0,
                        batch=16, lr=1e-3, buckets=4)
    tok, vocab = base_tokenizer(cfg, shift_config, tmp_path / "tok", [c.captions[0] for c in clips])
    torch.manual_seed(0)
    model = build_t5(cfg, tok, vocab).train()
    r = Renderer(tok, vocab)
    sampler = Sampler(clips, r, sentinel_ids(tok), "pretrain", 0, mixes={"pretrain": {"t2m": 1.0}}, buckets=4)
    opt = adamw(model, cfg.lr, cfg.betas, 0.0)
    first = None
    for step in range(600):
        b = collate(sampler.batch(step, cfg.batch), tok.pad_token_id, 256, 192)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, (step + 1) / 20)
        loss = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or loss.item()
    assert loss.item() < 0.1 * first, (first, loss.item())
    model.eval()
    prompts = [r.render(templates()["t2m"][0]["input"], {"caption": c.captions[0]})[0] for c in clips]
    b = collate([Example(p, [0]) for p in prompts], tok.pad_token_id, 10**6, 1)
    got = generate_motion_ids(model, b["input_ids"], b["attention_mask"], vocab, 36).tolist()
    want = [vocab.encode(c.codes, c.presence) for c in clips]

    def mismatch(a, w):  # token positions that differ (length differences count in full)
        return sum(x != y for x, y in zip(a, w)) + abs(len(w) - len(a[:len(w) + 1]))

    d = np.array([[mismatch(g, w) for w in want] for g in got])
    retrieved = (d.argmin(1) == np.arange(len(clips))).mean()
    assert retrieved >= 0.9, (retrieved, loss.item())
