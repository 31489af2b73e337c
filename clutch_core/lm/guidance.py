"""Classifier-free guidance for the language model's decoding (text-to-motion and motion-to-text).

A model trained with a share of examples whose condition is left out (LMConfig.uncond: the
caption of a text-to-motion prompt, the motion of a motion-to-text prompt) predicts both
p(token | condition, prefix) and p(token | prefix). Decoding with scale s >= 1 uses

    score = log p(token | prefix) + s * (log p(token | condition, prefix) - log p(token | prefix))

which is the conditional model at s = 1 and leans further on what the condition changes
above it (Ho & Salimans 2022 for diffusion; Sanchez et al. 2023 for language models; MoMask
uses it for text-to-motion). The structural choices of text-to-motion (is a hand present, does
the motion end) stay the conditional model's: guidance's ratio summed over hundreds of codes is
heavy-tailed and would flip them (clutch_core.lm.decode). Both prompts share one batch: rows [0, B) conditional,
[B, 2B) unconditional; the encoder runs once, the decoder step by step with its cache, and
both halves always continue with the same token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def guided_generate(model, cond: tuple[torch.Tensor, torch.Tensor], uncond: tuple[torch.Tensor, torch.Tensor],
                    processors, max_new_tokens: int, eos: int, scale: float, do_sample: bool = False) -> torch.Tensor:
    """cond / uncond: (input_ids [B, L], attention_mask [B, L]) -> ids [B, 1 + n] (decoder start first),
    rows padded with `pad` after their eos, as transformers' generate() returns them."""
    b = cond[0].shape[0]
    ids, mask = _stack(cond, uncond, model.config.pad_token_id)
    enc = model.get_encoder()(input_ids=ids, attention_mask=mask)
    start, pad = model.config.decoder_start_token_id, model.config.pad_token_id
    out = torch.full((b, 1), start, dtype=torch.long, device=ids.device)
    done = torch.zeros(b, dtype=torch.bool, device=ids.device)
    past = None
    for _ in range(max_new_tokens):
        step_ids = torch.cat([out, out]) if past is None else torch.cat([out[:, -1:], out[:, -1:]])
        o = model(encoder_outputs=enc, attention_mask=mask, decoder_input_ids=step_ids, cache=past, use_cache=True)
        past = o.cache
        lp = F.log_softmax(o.logits[:, -1].float(), -1)
        scores = lp[b:] + scale * (lp[:b] - lp[b:])
        for p in processors:
            if hasattr(p, "decide_on"):  # MotionConstraint: presence and end decided by the conditional model
                p.decide_on = lp[:b]
        scores = processors(out, scores)
        nxt = torch.multinomial(F.softmax(scores, -1), 1)[:, 0] if do_sample else scores.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        out = torch.cat([out, nxt[:, None]], 1)
        done |= nxt == eos
        if bool(done.all()):
            break
    return out


def _stack(cond, uncond, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both prompt batches in one, padded to the longer."""
    n = max(cond[0].shape[1], uncond[0].shape[1])
    grow = lambda t, v: F.pad(t, (0, n - t.shape[1]), value=v)  # noqa: E731
    return torch.cat([grow(cond[0], pad), grow(uncond[0], pad)]), torch.cat([grow(cond[1], 0), grow(uncond[1], 0)])
