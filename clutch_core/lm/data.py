"""The language model's corpus: motion tokens of a run (DATASET/tokens/...) joined with captions.

Batches depend only on (seed, stage, step): a resumed stage trains on exactly the
batches an uninterrupted one would have.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clutch_core.lm.tasks import Example, Renderer, corruption_example, task_example, templates
from clutch_core.lm.vocab import MotionVocab

STAGE_SALT = {"pretrain": 1, "refine": 2, "instruct": 3, "eval": 4}


@dataclass
class Clip:
    clip_id: str
    codes: np.ndarray  # [S, n_streams] int64
    presence: np.ndarray  # [S, 2] bool (latent steps)
    num_frames: int
    captions: list[str]


def load_corpus(tokens: str | os.PathLike, dataset: str | os.PathLike, split: str) -> list[Clip]:
    """Clips of one split that have both tokens and at least one caption."""
    from clutch_core.shift.tokenize import read_tokens
    from storage.reader import ClipReader

    t = read_tokens(tokens)
    if t.num_rows == 0:
        raise FileNotFoundError(f"{tokens}: no token parts (run `clutch train DATASET --out RUN --stages tokenize`)")
    rows = [r for r in t.to_pylist() if r["split"] == split]
    if not rows:
        return []
    reader = ClipReader(dataset, threads=1)
    caps = reader.read_table([r["clip_id"] for r in rows], columns=["clip_id", "captions"]).to_pylist()
    out = []
    for r, c in zip(rows, caps):
        texts = [x["text"] for x in c["captions"] if x["text"].strip()]
        if not texts:
            continue
        s = r["num_steps"]
        out.append(Clip(r["clip_id"], np.asarray(r["tokens"], np.int64).reshape(s, -1),
                        np.asarray(r["presence_steps"], bool).reshape(s, 2), int(r["num_frames"]), texts))
    return out


def step_rng(seed: int, stage: str, step: int) -> np.random.Generator:
    return np.random.default_rng([seed, STAGE_SALT[stage], step])


# Task mixtures (share of a batch) per stage. pretrain: 2/5 span corruption (half text, half
# motion) and 3/5 templated tasks, as the authors' recipe; refine: text-to-motion (where the
# geometric loss applies) kept with motion-to-text so captioning is not forgotten; instruct:
# instruction wordings plus the plain ones (the plain templates stay what inference uses).
MIXTURES: dict[str, dict[str, float]] = {
    "pretrain": {"span_text": 0.2, "span_motion": 0.2, "t2m": 0.2, "t2m_seconds": 0.1, "m2t": 0.2, "h2h": 0.1},
    "refine": {"t2m": 0.45, "t2m_seconds": 0.25, "m2t": 0.3},
    "instruct": {"instruct_t2m": 0.25, "instruct_m2t": 0.25, "instruct_h2h": 0.1, "t2m": 0.1, "t2m_seconds": 0.1,
                 "m2t": 0.2},
}


UNCONDITIONAL = ("t2m", "t2m_seconds", "m2t")  # tasks trained also without their condition (Sampler.uncond)


def mixture(stage: str, vocab: MotionVocab, mixes: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """The stage's task shares (`mixes` overrides MIXTURES per stage); hand-to-hand needs per-hand streams
    (not a whole-frame baseline)."""
    m = (mixes or {}).get(stage) or MIXTURES[stage]
    unknown = sorted(set(m) - {*templates(), "span_text", "span_motion"})
    if unknown:
        raise ValueError(f"task mix of {stage}: unknown task(s) {unknown}")
    m = {k: v for k, v in m.items() if not (k.endswith("h2h") and vocab.whole_frame)}
    total = sum(m.values())
    return {k: v / total for k, v in m.items()}


class Sampler:
    """Examples for (stage, step): clip, task, template, caption and noise all drawn from step_rng.

    With `buckets` > 0 a batch is one task on clips of similar length (the step draws the task, then
    a clip, then the rest of the batch among the clips of that clip's length bucket): a batch pads
    to its longest example, and a text-to-motion example is long where a motion-to-text one is short
    (and the other way round in the encoder), so mixed batches are mostly padding. Every clip and
    task keeps its share over the steps."""

    def __init__(self, clips: list[Clip], renderer: Renderer, sentinels: list[int], stage: str, seed: int,
                 density: float = 0.15, mean_span: float = 3.0, mixes: dict | None = None, buckets: int = 0,
                 uncond: float = 0.0):
        if not clips:
            raise ValueError("no training clips with tokens and captions")
        self.clips, self.r, self.sentinels, self.stage, self.seed = clips, renderer, sentinels, stage, seed
        self.density, self.mean_span = density, mean_span
        self.mix = mixture(stage, renderer.vocab, mixes)
        self.motion_sentinels = [renderer.vocab.mask(i) for i in range(renderer.vocab.masks)]
        self._tasks, self._p = list(self.mix), np.array(list(self.mix.values()))
        order = np.argsort([c.codes.shape[0] for c in clips], kind="stable")
        k = max(1, min(buckets, len(clips)))
        self._bucket_of = np.empty(len(clips), int)
        self._bucket_of[order] = np.arange(len(clips)) * k // len(clips)  # equal-count length buckets
        self._members = [np.flatnonzero(self._bucket_of == b) for b in range(k)]
        self._bucketed = buckets > 0
        self.uncond = uncond  # share of t2m / m2t examples whose condition (text / motion) is left out

    def example(self, rng: np.random.Generator, task: str | None = None, i: int | None = None) -> Example:
        i = int(rng.integers(len(self.clips))) if i is None else i
        c = self.clips[i]
        task = task or str(rng.choice(self._tasks, p=self._p))
        caption = c.captions[int(rng.integers(len(c.captions)))]
        if task == "span_text":
            ex = corruption_example(self.r.text(caption), self.sentinels, self.r, rng, self.density, self.mean_span)
        elif task == "span_motion":
            ex = corruption_example(self.r.vocab.encode(c.codes, c.presence), self.motion_sentinels, self.r, rng,
                                    self.density, self.mean_span)
        else:
            options = templates()[task]
            codes, presence = c.codes, c.presence
            if self.uncond > 0 and task in UNCONDITIONAL and rng.random() < self.uncond:  # for guided decoding
                if task == "m2t":
                    codes, presence = codes[:0], presence[:0]
                else:
                    caption = ""
            ex = task_example(task, options[int(rng.integers(len(options)))], self.r, codes, presence, caption,
                              c.num_frames, rng)
        ex.clip = i
        return ex

    def batch(self, step: int, size: int) -> list[Example]:
        rng = step_rng(self.seed, self.stage, step)
        if not self._bucketed:
            return [self.example(rng) for _ in range(size)]
        task = str(rng.choice(self._tasks, p=self._p))
        members = self._members[self._bucket_of[int(rng.integers(len(self.clips)))]]
        return [self.example(rng, task, int(members[rng.integers(len(members))])) for _ in range(size)]


def collate(examples: list[Example], pad: int, max_input: int, max_target: int) -> dict[str, torch.Tensor]:
    """Pad to the batch's longest (inputs truncated to max_input keeping </s>; targets to max_target)."""
    inputs = [e.input_ids[:max_input - 1] + e.input_ids[-1:] if len(e.input_ids) > max_input else e.input_ids
              for e in examples]
    labels = [e.labels[:max_target] for e in examples]
    li, lt = max(map(len, inputs)), max(map(len, labels))
    ids = torch.full((len(examples), li), pad, dtype=torch.long)
    att = torch.zeros((len(examples), li), dtype=torch.long)
    lab = torch.full((len(examples), lt), -100, dtype=torch.long)
    for b, (x, y) in enumerate(zip(inputs, labels)):
        ids[b, :len(x)], att[b, :len(x)], lab[b, :len(y)] = torch.tensor(x), 1, torch.tensor(y)
    return {"input_ids": ids, "attention_mask": att, "labels": lab,
            "motion_at": torch.tensor([e.motion_at for e in examples]), "clip": torch.tensor([e.clip for e in examples])}


def forced_tokens(labels: torch.Tensor, vocab: MotionVocab) -> torch.Tensor:
    """labels [B, L] -> [B, L] bool: the <absent> tokens that copy their step's leading stream (a hand's pose
    after its absent trajectory; a code after an absent or other-hand `hands` token). Decoding forces these,
    so they carry no information; trained, they would teach <absent> as the most frequent token of all."""
    n = vocab.n_streams
    is_som = labels == vocab.som
    som_at = is_som.int().argmax(1)  # [B] first <som> (t2m targets: index 0)
    idx = torch.arange(labels.shape[1], device=labels.device)[None] - som_at[:, None] - 1  # [B, L] motion index
    follower = torch.tensor([vocab.hand_leader(k) is not None for k in range(n)], device=labels.device)
    spans = ((labels >= vocab.mask(0)) & (labels <= vocab.mask(vocab.masks - 1))).any(1, keepdim=True)
    inside = is_som.any(1, keepdim=True) & ~spans & (idx >= 0)  # span-corruption targets: no step grid
    return inside & follower[idx.clamp_min(0) % n] & (labels == vocab.absent)


def tokens_for(run: str | os.PathLike, dataset: str | os.PathLike) -> Path:
    """The tokens folder of RUN's tokenizer in DATASET (must exist and be complete)."""
    from clutch_core.shift.tokenize import tokens_dir

    d = tokens_dir(run, dataset)
    if not (d / "tokenizer.json").exists():
        raise FileNotFoundError(f"{d}: no motion tokens of this run's tokenizer "
                                f"(run `clutch train {dataset} --out {run} --stages tokenize`)")
    return d
