"""Decoding: constrained text-to-motion and text-only motion-to-text, on transformers' generate().

Text-to-motion is forced to be well-formed by a LogitsProcessor: the first token is
<som>; then whole latent steps, each stream drawing only its own codebook's tokens or
<absent> (a hand's pose is <absent> exactly when its trajectory is); <eom> only at a step
boundary, after at least one step, and at `steps` when a length is asked (one for the
batch, or one per row: evaluation asks each clip's own length); <eom> is forced at the
longest clip (MAX_FRAMES). Temperature and top-k run after the constraint, on the
allowed tokens only. All rows of a batch are at the same position, so the mask is one
of a few precomputed rows per step: its cost does not grow with the batch.

Greedy decoding decides a hand's presence by its total probability: at a hand's first
stream, <absent> (one token) is compared with the summed probability of the codebook's
codes (hundreds of tokens), then the best code is taken if present. Comparing <absent>
with the single best code instead makes an undertrained model write every hand absent.
The end of a free-length motion is decided the same way: at a step boundary, <eom> is
compared with the summed probability of starting another step.
"""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from clutch_core.lm.vocab import MotionVocab


class MotionConstraint(LogitsProcessor):
    def __init__(self, vocab: MotionVocab, size: int, max_steps: int, steps: int | Sequence[int] | None = None,
                 greedy_presence: bool = False):
        self.v, self.max_steps, self.greedy_presence = vocab, max_steps, greedy_presence
        # latent steps to write: None (the model's <eom>), or [1] / [B] (per row)
        self.steps = None if steps is None else torch.as_tensor(steps, dtype=torch.long).reshape(-1)
        n = vocab.n_streams

        def row(*ids_or_ranges) -> torch.Tensor:
            m = torch.zeros(size, dtype=torch.bool)
            for x in ids_or_ranges:
                if isinstance(x, tuple):
                    m[x[0]:x[1]] = True
                else:
                    m[x] = True
            return m

        self.som, self.eom = row(vocab.som), row(vocab.eom)
        self.codes = [row(vocab.stream_range(k)) for k in range(n)]
        self.codes_or_absent = [row(vocab.stream_range(k), vocab.absent) for k in range(n)]
        self.absent = row(vocab.absent)
        self.leader = [vocab.hand_leader(k) for k in range(n)]
        # guided decoding sets this to the conditional model's log-probabilities [B, V] before each call: the
        # presence and end decisions are the conditional model's (guidance's ratio summed over hundreds of
        # codes is heavy-tailed), the codes themselves are chosen on the guided scores
        self.decide_on: torch.Tensor | None = None

    def allowed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids [B, L] (decoder start first) -> allowed next tokens [B, V] (or [1, V], broadcast)."""
        j = input_ids.shape[1] - 2  # motion tokens emitted so far (-1: <som> is next)
        if j < 0:
            return self.som[None]
        n = self.v.n_streams
        k, step = j % n, j // n
        if k == 0:
            if step >= self.max_steps:
                return self.eom[None]
            if self.steps is not None:
                done = (step >= self.steps.to(input_ids.device))[:, None]  # [B or 1, 1]
                return torch.where(done, self.eom[None], self.codes_or_absent[0][None])
            return (self.codes_or_absent[0] | self.eom)[None] if step >= 1 else self.codes_or_absent[0][None]
        lead = self.leader[k]
        if lead is None:
            return self.codes_or_absent[k][None]
        was_absent = (input_ids[:, -(k - lead)] == self.v.absent)[:, None]  # [B, 1]
        return torch.where(was_absent, self.absent[None], self.codes[k][None])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        allowed = self.allowed(input_ids).to(scores.device)
        finished = (input_ids == self.v.eom).any(1, keepdim=True)  # generate() pads these rows anyway
        if self.greedy_presence:
            basis = scores if self.decide_on is None else self.decide_on
            scores = self.end_by_mass(input_ids, scores, allowed, basis)
            scores = self.presence_by_mass(input_ids, scores, basis)
        return scores.masked_fill(~(allowed | finished), float("-inf"))

    def end_by_mass(self, input_ids: torch.Tensor, scores: torch.Tensor, allowed: torch.Tensor,
                    basis: torch.Tensor) -> torch.Tensor:
        """Where both <eom> and another step are allowed: keep <eom> alone, or forbid it, whichever holds
        more probability in `basis` (<eom> against the summed probability of the next step's first tokens)."""
        j = input_ids.shape[1] - 2
        if j < 0 or j % self.v.n_streams or not bool(allowed[..., self.v.eom].any()):
            return scores
        go = allowed & ~self.eom.to(allowed.device)[None]  # [B or 1, V]
        more = torch.logsumexp(basis.float().masked_fill(~go, float("-inf")), -1)  # [B]
        end = (basis[:, self.v.eom].float() >= more) & allowed[..., self.v.eom]  # [B]
        scores = scores.masked_fill(end[:, None] & go, float("-inf"))  # ending: only <eom> is left
        scores[:, self.v.eom] = scores[:, self.v.eom].masked_fill(~end, float("-inf"))
        return scores

    def presence_by_mass(self, input_ids: torch.Tensor, scores: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        """At a hand's first stream: keep <absent> or the codes, whichever holds more probability in `basis`."""
        j = input_ids.shape[1] - 2
        k = j % self.v.n_streams
        if j < 0 or self.leader[k] is not None:
            return scores
        a, b = self.v.stream_range(k)
        codes = torch.logsumexp(basis[:, a:b].float(), -1)  # [B]
        absent = basis[:, self.v.absent].float() >= codes  # [B]
        scores = scores.clone()
        scores[:, a:b] = scores[:, a:b].masked_fill(absent[:, None], float("-inf"))
        scores[:, self.v.absent] = scores[:, self.v.absent].masked_fill(~absent, float("-inf"))
        return scores


class TextOnly(LogitsProcessor):
    """Motion-to-text: no motion token, sentinel or padding in a caption, and not empty (no </s> first)."""

    def __init__(self, vocab: MotionVocab, banned: list[int], eos: int):
        self.start, self.banned, self.eos = vocab.motion_start, torch.tensor(banned, dtype=torch.long), eos

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, self.start:] = float("-inf")
        scores[:, self.banned.to(scores.device)] = float("-inf")
        if input_ids.shape[1] == 1:
            scores[:, self.eos] = float("-inf")
        return scores


def sampling_processors(temperature: float, top_k: int | None) -> list[LogitsProcessor]:
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper

    out: list[LogitsProcessor] = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k))
    return out


@torch.no_grad()
def generate_motion_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: MotionVocab,
                        max_steps: int, steps: int | Sequence[int] | None = None, do_sample: bool = False, temperature: float = 1.0,
                        top_k: int | None = None, uncond: tuple | None = None, guidance: float = 1.0) -> torch.Tensor:
    """Batched constrained text-to-motion -> generated ids [B, L] (starting with <som>). With `uncond`
    (input_ids, attention_mask of the prompts without their caption) and guidance != 1: guided decoding
    (clutch_core.lm.guidance)."""
    from transformers import GenerationConfig

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    size = model.get_output_embeddings().weight.shape[0]
    procs = LogitsProcessorList([MotionConstraint(vocab, size, max_steps, steps, greedy_presence=not do_sample),
                                 *(sampling_processors(temperature, top_k) if do_sample else [])])
    if uncond is not None and guidance != 1.0:
        from clutch_core.lm.guidance import guided_generate

        out = guided_generate(model, (input_ids, attention_mask), uncond, procs, 2 + vocab.n_streams * max_steps,
                              vocab.eom, guidance, do_sample)
        return out[:, 1:]
    warp = dict(top_k=0, top_p=1.0, temperature=1.0) if do_sample else {}  # ours run after the constraint
    gc = GenerationConfig(do_sample=do_sample, num_beams=1, **warp,
                          max_new_tokens=2 + vocab.n_streams * max_steps, eos_token_id=vocab.eom,
                          pad_token_id=model.config.pad_token_id,
                          decoder_start_token_id=model.config.decoder_start_token_id)
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=gc,
                         logits_processor=procs)
    return out[:, 1:]  # drop the decoder start token


@torch.no_grad()
def generate_text_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: MotionVocab,
                      banned: list[int], num_beams: int = 1, max_new_tokens: int = 48, uncond: tuple | None = None,
                      guidance: float = 1.0, do_sample: bool = False) -> torch.Tensor:
    """Motion-to-text, greedy (num_beams 1), sampled or beam search -> ids [B, L]. Greedy or sampled with
    `uncond` (the prompts without their motion) and guidance != 1: guided decoding (clutch_core.lm.guidance)."""
    from transformers import GenerationConfig

    if uncond is not None and guidance != 1.0 and num_beams == 1:
        from clutch_core.lm.guidance import guided_generate

        procs = LogitsProcessorList([TextOnly(vocab, banned, model.config.eos_token_id)])
        return guided_generate(model, (input_ids, attention_mask), uncond, procs, max_new_tokens,
                               model.config.eos_token_id, guidance, do_sample)

    warp = dict(top_k=0, top_p=1.0, temperature=1.0) if do_sample else {}
    gc = GenerationConfig(do_sample=do_sample, num_beams=num_beams, max_new_tokens=max_new_tokens, **warp,
                          eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id,
                          decoder_start_token_id=model.config.decoder_start_token_id)
    return model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=gc,
                          logits_processor=LogitsProcessorList([TextOnly(vocab, banned, model.config.eos_token_id)]))
