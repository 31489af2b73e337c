"""Sampled rerank: of K motions drawn for a text, keep the ones the model's own motion-to-text reads back as it;
of K captions drawn for a motion, the one under which its own text-to-motion finds the motion most likely.

CLUTCH writes motion from text and text from motion with one network, so it can check its
own text-to-motion: each candidate m_k of a caption c is scored by log p(c | m_k), the
caption's log-likelihood under the motion-to-text prompt with m_k as its motion, teacher
forced in one batched forward pass. The caption's prior p(c) is the same for every
candidate of one text, so this ranks them exactly as their pointwise mutual information
with c would, without the unconditional pass. The candidates are the greedy motion (or the
samples asked for) plus sampled ones; ties keep the earlier candidate, so the greedy motion
wins a tie. No evaluator and no data outside the model is consulted.

Captions the other way round: each candidate caption c_k of a motion m is scored by
log p(m | c_k) under the text-to-motion prompt that says m's length (the <absent> tokens that
decoding forces left out, as in training) plus log p(c_k | m): the first alone is the
pointwise mutual information of c_k with m up to the caption's own prior, and favours rare
wordings; the sum keeps the caption fluent.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clutch_core.lm.tasks import Renderer, templates


@torch.no_grad()
def caption_log_likelihood(model, renderer: Renderer, motion_ids: Sequence[Sequence[int]], texts: Sequence[str],
                           batch_size: int = 32) -> np.ndarray:
    """motion_ids[i] (<som> .. <eom>) and texts[i] -> [N] sum of log p(text_i tokens + </s> | m2t prompt of motion i)."""
    from clutch_core.lm.data import collate
    from clutch_core.lm.tasks import Example

    if len(motion_ids) != len(texts):
        raise ValueError(f"{len(motion_ids)} motions for {len(texts)} texts")
    tmpl = templates()["m2t"][0]
    dev = next(model.parameters()).device
    pad = renderer.tok.pad_token_id
    out = np.empty(len(texts), dtype=np.float64)
    for k in range(0, len(texts), batch_size):
        ex = [Example(renderer.render(tmpl["input"], {"motion": list(m)})[0],
                      renderer.render(tmpl["output"], {"caption": t.strip()})[0])
              for m, t in zip(motion_ids[k:k + batch_size], texts[k:k + batch_size])]
        b = collate(ex, pad, 10**6, 10**6)
        labels = b["labels"].to(dev)  # [B, L], -100 after each caption
        logits = model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                       labels=labels).logits  # [B, L, V]
        lp = F.log_softmax(logits.float(), -1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]  # [B, L]
        out[k:k + len(ex)] = (lp * (labels >= 0)).sum(1).cpu().numpy()
    return out


@torch.no_grad()
def motion_log_likelihood(model, renderer: Renderer, texts: Sequence[str], motion_ids: Sequence[Sequence[int]],
                          seconds: Sequence[float], batch_size: int = 32) -> np.ndarray:
    """texts[i], motion_ids[i] (<som> .. <eom>), seconds[i] -> [N] sum of log p(motion tokens | t2m prompt of
    text i saying its seconds), over the tokens the model decides (lm.data.forced_tokens left out)."""
    from clutch_core.lm.data import collate, forced_tokens
    from clutch_core.lm.tasks import Example, seconds_text

    tmpl = templates()["t2m_seconds"][0]
    dev = next(model.parameters()).device
    out = np.empty(len(texts), dtype=np.float64)
    for k in range(0, len(texts), batch_size):
        ex = [Example(renderer.render(tmpl["input"], {"caption": t.strip(), "seconds": seconds_text(s)})[0],
                      renderer.render(tmpl["output"], {"motion": list(m)})[0])
              for t, m, s in zip(texts[k:k + batch_size], motion_ids[k:k + batch_size], seconds[k:k + batch_size])]
        b = collate(ex, renderer.tok.pad_token_id, 10**6, 10**6)
        labels = b["labels"].to(dev)
        logits = model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev),
                       labels=labels).logits
        lp = F.log_softmax(logits.float(), -1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]
        keep = (labels >= 0) & ~forced_tokens(labels, renderer.vocab)
        out[k:k + len(ex)] = (lp * keep).sum(1).cpu().numpy()
    return out


def best_of(scores: np.ndarray, groups: int, keep: int) -> np.ndarray:
    """scores [groups * K] (K candidates per group, in order) -> [groups, keep] indices into the flat list
    of each group's `keep` best, best first; a tie keeps the earlier candidate."""
    s = scores.reshape(groups, -1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :keep]  # [groups, keep]
    return order + np.arange(groups)[:, None] * s.shape[1]
