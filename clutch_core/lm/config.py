"""The language-model stages' settings: one typed config, three presets.

`tiny`: a T5 built from a config (random weights) with a BPE text tokenizer trained
on the dataset's captions: runs on a CPU in minutes with nothing downloaded. `small`:
the same model trained longer (under an hour on a CPU).
`paper`: flan-t5-base from `base` (a folder, or the hub id google/flan-t5-base, which is
downloaded only because it is named), AdamW 2e-4 betas (0.9, 0.99) as the authors.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from layout.run import LM_STAGES as STAGES  # pretrain, refine, instruct


@dataclass
class LMConfig:
    preset: str = "tiny"
    base: Optional[str] = None  # path or hub id of a T5 (paper: google/flan-t5-base); None: built from the fields below
    text_vocab: int = 800  # size of the BPE tokenizer trained on the captions and templates (tiny; fewer when the words run out)
    d_model: int = 192
    d_ff: int = 512
    layers: int = 3  # encoder and decoder layers each
    heads: int = 4
    d_kv: int = 48
    dropout: float = 0.1
    rel_buckets: int = 32  # T5 relative-position buckets (half exact, half log-spaced up to rel_max_distance)
    rel_max_distance: int = 128
    batch: int = 16
    lr: float = 5e-4
    finetune_lr: Optional[float] = None  # refine's and instruct's learning rate (None: lr); they start from a trained model
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 30  # the first stage's (pretrain's); later stages start from a trained model
    pretrain_steps: int = 640
    refine_steps: int = 60
    instruct_steps: int = 60
    max_steps: Optional[int] = None  # caps every stage (--max-steps)
    task_mix: Optional[dict[str, dict[str, float]]] = None  # per stage, overrides clutch_core.lm.data.MIXTURES
    uncond: float = 0.0  # share of t2m / m2t examples trained without their text / motion (guided decoding)
    guidance: float = 1.0  # decoding's default guidance scale, recorded with the model when uncond > 0
    rerank: int = 1  # decoding's default text-to-motion candidates per text, reranked by the model's own m2t (lm.rerank)
    forced_in_loss: bool = False  # True: also train the <absent> tokens decoding forces (lm.data.forced_tokens)
    decoder_dropout: float = 0.0  # share of the decoder's input tokens hidden while training (it must read the encoder)
    code_init: bool = False  # embed motion codes along their SHIFT codebook's principal directions (fresh models)
    buckets: int = 0  # > 0: each batch is one task on clips of one of this many length buckets (less padding)
    noise_density: float = 0.15
    mean_span: float = 3.0
    max_input: int = 256  # tokens
    max_target: int = 192
    max_text_tokens: int = 224  # longest prompt text accepted by generate(): what training saw in full (max_input less the template)
    # geometric refinement (docs/lm.md, "Geometric refinement", says why these defaults)
    geo_weight: float = 1.0  # lambda on smooth-L1 of decoded motion (normalized space)
    joint_weight: float = 10.0  # on mean joint distance in metres (1 cm -> 0.1)
    tau: float = 1.0  # Gumbel-softmax temperature at the start of refine ...
    tau_end: float = 0.5  # ... annealed linearly to this at its end
    straight_through: bool = False
    geo_ramp: float = 0.2  # share of refine steps over which lambda ramps up from 0
    ckpt_every: int = 100
    log_every: int = 10
    eval_clips: int = 64  # validation clips for the stage metrics
    seed: int = 0
    amp: str = "auto"  # clutch_core.training.precision: auto | bf16 | off

    def steps(self, stage: str) -> int:
        n = getattr(self, f"{stage}_steps")
        return min(n, self.max_steps) if self.max_steps is not None else n

    def stage_lr(self, stage: str) -> float:
        return self.lr if stage == "pretrain" or self.finetune_lr is None else self.finetune_lr

    def identity(self, stage: str) -> dict[str, Any]:
        """Settings that change the stage's trained weights (not the step cap: a finished stage can be extended)."""
        d = dataclasses.asdict(self)
        for k in ("ckpt_every", "log_every", "eval_clips", "amp", "max_steps", "max_text_tokens", "guidance", "rerank",
                  *(f"{s}_steps" for s in STAGES)):
            d.pop(k)
        if stage == "pretrain":
            d.pop("finetune_lr")
        if stage != "refine":
            for k in ("geo_weight", "joint_weight", "tau", "tau_end", "straight_through", "geo_ramp"):
                d.pop(k)
        d["betas"] = list(d["betas"])
        d["stage"] = stage
        return d


# A T5 trained from scratch on a CPU follows its text only with this recipe (docs/lm.md, "Why the recipe",
# has the measurements): lr 5e-4 (1e-3 and above: the decoder learns the motion alone and ignores the
# encoder) and 1e-4 for refine and instruct (at 5e-4 they undo part of what pretrain learnt), text-to-motion
# and motion-to-text only in pretrain (span corruption spends steps a small corpus cannot afford), length
# buckets, code embeddings from the SHIFT codebooks, 10 % unconditional examples for classifier-free
# guidance at 4, and no loss on the <absent> tokens decoding forces. Decoding keeps the best of 8 candidates by
# the model's own motion-to-text (rerank 8: val free-length t2m R@3 0.41 -> 0.50, 3 seeds, BENCHMARKS.md).
_CPU_RECIPE = dict(d_model=192, d_ff=512, layers=3, heads=4, d_kv=48, batch=16, lr=5e-4, finetune_lr=1e-4,
                   warmup_steps=30, buckets=8, code_init=True, uncond=0.1, guidance=4.0, rerank=8,
                   task_mix={"pretrain": {"t2m": 0.5, "t2m_seconds": 0.2, "m2t": 0.3}})

PRESETS: dict[str, dict[str, Any]] = {
    # every tiny stage together: 20 minutes on a quiet 2-core CPU (BENCHMARKS.md, "LM"); with fewer pretrain
    # steps the model does not follow its text. More steps: the small preset, or --lm-steps (--max-steps only caps)
    "tiny": dict(_CPU_RECIPE, pretrain_steps=640, refine_steps=60, instruct_steps=60),
    # the same model trained 3.75x as long: every default stage within 45 minutes on that CPU
    "small": dict(_CPU_RECIPE, pretrain_steps=2400, refine_steps=200, instruct_steps=200, ckpt_every=200),
    "paper": dict(base="google/flan-t5-base", batch=32, lr=2e-4, warmup_steps=1000, pretrain_steps=100_000,
                  refine_steps=20_000, instruct_steps=20_000, ckpt_every=1000, log_every=50, max_input=320,
                  max_target=256, max_text_tokens=128),
}


def preset_config(preset: str = "tiny", **overrides: Any) -> LMConfig:
    """An LMConfig from a preset with overrides (None values ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(LMConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - fields)
    if unknown:
        raise ValueError(f"unknown language-model setting(s) {unknown}")
    cfg = LMConfig(preset=preset, **{**PRESETS[preset], **given})
    if cfg.max_steps is not None and cfg.max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {cfg.max_steps}")
    return cfg
