"""Stage 1 of train-clutch: train a motion tokenizer (SHIFT, the plain VQ-VAE, or the RVQ baseline).

One trainer for every tokenizer. Skips itself when RUN/shift/metrics.json records a finished
run of the same settings; otherwise resumes from RUN/shift/checkpoint.safetensors (model, AdamW,
EMA codebooks, RNG, step). The global batch of a step depends only on (seed, step), so an
interrupted and resumed run trains on the same batches as an uninterrupted one.

Several processes: torchrun (clutch_core.training.stage.setup_device), DDP with NCCL on GPUs
and gloo on CPU. `batch` is per process; each rank takes its slice of the global batch, losses
are normalized over all ranks and codebook draws see every rank's latents
(clutch_core.shift.distributed), so N processes at batch B/N follow one process at batch B.
Rank 0 alone writes checkpoints, the logs and the metrics.

Precision: clutch_core.training.precision (the same `amp` meaning as the language model's).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from clutch_core.shift.checkpoint import FORMAT, save_tokenizer
from clutch_core.shift.distributed import global_sum
from clutch_core.shift.model import TokenizerConfig, TokenizerOutput, build_tokenizer
from clutch_core.shift.presets import PRESETS
from clutch_core.training.checkpoint import atomic_write_json, resume_training_state, save_training_state
from clutch_core.training.optim import adamw
from clutch_core.training.precision import TIMED_BATCHES, autocast, resolve_amp
from clutch_core.training.progress import TrainingProgress
from clutch_core.training.schedule import lr_at
from clutch_core.training.stage import is_complete, prepare, setup_device, trim_log
from layout import HAND_DIM, TRAJ_IDX
from layout.run import CHECKPOINT, METRICS, SHIFT_DIR, TOKENIZER_CONFIG, TRAIN_LOG, VAL_LOG

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The trainer's settings; the tokenizer's own settings are its TokenizerConfig, held as is."""

    preset: str = "tiny"
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    batch: int = 32  # windows per step per process (the global batch is batch * world size)
    window: int = 64  # frames per window (multiple of 2**down)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 800
    commit_weight: float = 0.25
    vel_weight: float = 0.5  # velocity loss on the trajectory dims
    ckpt_every: int = 200
    log_every: int = 10
    eval_batch: int = 64
    seed: int = 0
    amp: str = "auto"  # clutch_core.training.precision: auto | bf16 | off

    def identity(self) -> dict[str, Any]:
        """Settings that change the trained model, except max_steps: a finished run can be extended
        (the learning rate is constant after warm-up, so 300 + 700 steps = 1000 steps)."""
        d = dataclasses.asdict(self)
        for k in ("ckpt_every", "log_every", "eval_batch", "amp", "max_steps"):
            d.pop(k)
        d["betas"] = list(d["betas"])
        return d


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """The tokenizer's optimizer as the trainer makes it (AdamW, no decay on vectors, fused). A stable public
    name, with `preset_config`: outside benchmarks import both (docs/shift.md)."""
    return adamw(model, cfg.lr, cfg.betas, cfg.weight_decay)


def preset_config(preset: str = "tiny", **overrides: Any) -> TrainConfig:
    """A TrainConfig from a preset, with overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    tok_fields = {f.name for f in dataclasses.fields(TokenizerConfig)} - {"kind"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(given.get("tokenizer"), str):  # the kind, as the CLI and the flow name it
        given["kind"] = given.pop("tokenizer")
    unknown = sorted(set(given) - fields - tok_fields - {"kind"})
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}")
    merged = {**PRESETS[preset], **given}  # presets are flat: tokenizer fields go to the TokenizerConfig
    tok = TokenizerConfig(**{k: merged.pop(k) for k in list(merged) if k in tok_fields or k == "kind"})
    cfg = TrainConfig(preset=preset, tokenizer=tok, **merged)
    if cfg.window % tok.stride:
        raise ValueError(f"window {cfg.window} must be a multiple of {tok.stride}")
    return cfg


def tokenizer_loss(out: TokenizerOutput, x: torch.Tensor, presence: torch.Tensor, cfg: TrainConfig):
    """Smooth-L1 reconstruction + velocity loss on the trajectory + commitment, over present hand-frames only.

    x [B, T, 198] normalized target; presence [B, T, 2]. Returns (total, parts dict of floats).
    Under torchrun every mean divides by the count of all ranks, so `total` is this rank's share
    of the loss one process would compute on the global batch (backpropagate total * world size:
    DDP averages gradients); `parts` are the global values, summed over ranks.
    """
    w = presence.float().repeat_interleave(HAND_DIM, dim=-1)  # [B, T, 198]
    rec = (F.smooth_l1_loss(out.recon.float(), x, reduction="none") * w).sum() / global_sum(w.sum()).clamp_min(1.0)
    traj = torch.tensor([*TRAJ_IDX, *(i + HAND_DIM for i in TRAJ_IDX)], device=x.device)
    vr, vx = out.recon.float()[..., traj].diff(dim=1), x[..., traj].diff(dim=1)  # [B, T-1, 18]
    wv = (w[:, 1:] * w[:, :-1])[..., traj]  # both frames present
    vel = (F.smooth_l1_loss(vr, vx, reduction="none") * wv).sum() / global_sum(wv.sum()).clamp_min(1.0)
    total = rec + cfg.vel_weight * vel + cfg.commit_weight * out.commit
    parts = global_sum(torch.stack([total, rec, vel, out.commit])).tolist()
    return total, dict(zip(("loss", "recon", "vel", "commit"), parts))


@dataclass
class _Run:
    """What the loop needs, set up once (fresh or resumed)."""

    out: Path
    device: torch.device
    rank: int
    world: int
    model: torch.nn.Module  # the tokenizer
    net: torch.nn.Module  # the tokenizer, or its DDP wrapper
    opt: torch.optim.Optimizer
    sampler: Any  # clutch_core.shift.data.WindowSampler
    stats: Any  # MotionStats
    step: int
    meta: dict[str, Any]  # checkpoint metadata
    val: Any  # val probe clips, or None
    use_bf16: bool = False


def train_tokenizer(dataset: str | os.PathLike, run: str | os.PathLike, cfg: TrainConfig,
                    progress: bool = True) -> dict[str, Any]:
    """Train (or finish, or skip) the tokenizer of RUN on DATASET; returns the metrics dict."""
    out = Path(run) / SHIFT_DIR
    if is_complete(out, cfg.identity(), cfg.max_steps, TOKENIZER_CONFIG):
        log.info("shift: %s already holds a finished run of these settings; skipping", out)
        return json.loads((out / METRICS).read_text())
    r = _setup(dataset, out, cfg)
    t0, start = time.perf_counter(), r.step
    _loop(r, cfg, progress)
    seconds = time.perf_counter() - t0
    if r.world > 1:
        torch.distributed.barrier()
    if r.rank != 0:
        return {}
    metrics = _finish(dataset, r, cfg)
    metrics.update(amp=r.meta["amp"][1], train_seconds_this_run=seconds, steps_this_run=r.step - start,
                   train_clips_per_s=(r.step - start) * cfg.batch * r.world / max(seconds, 1e-9))
    atomic_write_json(out / METRICS, metrics)
    log.info("shift: val MPJPE %.2f mm (traj %.2f, pose %.2f) -> %s", metrics["val_mpjpe_mm"],
             metrics["val_mpjpe_traj_mm"], metrics["val_mpjpe_pose_mm"], out / METRICS)
    return metrics


def _setup(dataset, out: Path, cfg: TrainConfig) -> _Run:
    """Device, data, model, optimizer; the checkpoint's state when there is one; the precision."""
    from clutch_core.shift.data import WindowSampler, fit_stats, load_clips

    device, rank, world = setup_device()
    prepare(out, clean=rank == 0)
    torch.manual_seed(cfg.seed)
    train = load_clips(dataset, "train")
    if len(train) == 0:
        raise ValueError(f"{dataset}: no clips in the train split")
    model = build_tokenizer(cfg.tokenizer).to(device)  # on its device before the optimizer state is loaded
    opt = make_optimizer(model, cfg)
    meta = resume_training_state(out / CHECKPOINT, model, opt)  # None: no good checkpoint
    step, resumed_amp = 0, None
    if meta is not None:
        step, stats, resumed_amp = _check_resume(out / CHECKPOINT, meta, cfg)
    else:
        stats = fit_stats(train)
    if rank == 0:
        trim_log(out / TRAIN_LOG, step)
        trim_log(out / VAL_LOG, step)
    model.train()
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = WindowSampler(train.normalized(stats), cfg.window, cfg.batch, cfg.seed, rank, world)
    meta = {"train_config": cfg.identity(), "stats": stats.to_dict()}
    r = _Run(out, device, rank, world, model, net, opt, sampler, stats, step, meta,
             _val_probe(dataset) if rank == 0 else None)
    r.use_bf16, reason = _precision(r, cfg, resumed_amp)
    r.meta["amp"] = [r.use_bf16, reason]
    log.info("shift: %s", reason)
    return r


def _check_resume(ckpt: Path, meta: dict, cfg: TrainConfig):
    """(step, stats, precision) of a checkpoint of these settings; ValueError for another run's."""
    from clutch_core.hands.motion import MotionStats

    if meta.get("train_config") != cfg.identity():
        raise ValueError(f"{ckpt}: checkpoint of other settings ({meta.get('train_config')}); "
                         f"use another --out or delete it")
    step = int(meta["step"])
    if step > cfg.max_steps:
        raise ValueError(f"{ckpt}: checkpoint is at step {step}, past max_steps={cfg.max_steps}")
    log.info("shift: resuming from %s at step %d", ckpt, step)
    return step, MotionStats.from_dict(meta["stats"]), (tuple(meta["amp"]) if meta.get("amp") else None)


def _precision(r: _Run, cfg: TrainConfig, resumed: tuple | None) -> tuple[bool, str]:
    """The run's precision: the one it started with when resumed under auto; under torchrun, rank 0's."""
    if resumed is not None and cfg.amp == "auto":
        use_bf16, reason = resumed
    else:
        batches = [tuple(t.to(r.device) for t in r.sampler.sample(r.step + i)) for i in range(TIMED_BATCHES + 1)]

        def step(i: int):
            out = r.model(*batches[i])
            return out.recon.float().square().mean() + out.commit

        key = (json.dumps(dataclasses.asdict(cfg.tokenizer), sort_keys=True), tuple(batches[0][0].shape))
        use_bf16, reason = resolve_amp(cfg.amp, r.device, r.model, step, key)
    if r.world > 1:  # a measured choice may differ between ranks: all take rank 0's
        choice = [use_bf16, reason]
        torch.distributed.broadcast_object_list(choice, 0)
        use_bf16, reason = choice
    return use_bf16, reason


def _loop(r: _Run, cfg: TrainConfig, progress: bool) -> None:
    """Train from r.step to cfg.max_steps: log every log_every steps, validate and checkpoint every ckpt_every."""
    report = TrainingProgress("shift", cfg.max_steps, r.step, bar=progress and r.rank == 0, report=r.rank == 0)
    with open(r.out / TRAIN_LOG, "a") as logf:
        while r.step < cfg.max_steps:
            x, p = (t.to(r.device, non_blocking=True) for t in r.sampler.sample(r.step))
            lr = lr_at(cfg.lr, cfg.warmup_steps, r.step)
            for g in r.opt.param_groups:
                g["lr"] = lr
            with autocast(r.use_bf16, r.device):
                out = r.net(x, p)
            loss, parts = tokenizer_loss(out, x, p, cfg)
            r.opt.zero_grad(set_to_none=True)
            (loss * r.world).backward()
            r.opt.step()
            r.step += 1
            report.step(r.step, parts["loss"])
            if r.rank == 0 and (r.step % cfg.log_every == 0 or r.step == cfg.max_steps):
                ppl = {k: round(float(v), 2) for k, v in out.perplexity.items()}
                logf.write(json.dumps({"step": r.step, **parts, "perplexity": ppl, "lr": lr}) + "\n")
                logf.flush()
            if r.rank == 0 and (r.step % cfg.ckpt_every == 0 or r.step == cfg.max_steps):
                _log_val(r, cfg)  # before the save: RNG as after it
                save_training_state(r.out / CHECKPOINT, r.step, r.model, r.opt, r.meta, FORMAT)
    report.close()


VAL_PROBE_CLIPS = 256


def _val_probe(dataset):
    """Up to VAL_PROBE_CLIPS val clips (None when the split is empty), scored at every checkpoint."""
    from storage.reader import ClipReader

    from clutch_core.shift.data import load_clips

    ids = ClipReader(dataset, threads=1).clip_ids("val")[:VAL_PROBE_CLIPS]
    return load_clips(dataset, clip_ids=ids) if ids else None


def _log_val(r: _Run, cfg: TrainConfig) -> None:
    """One val_log.jsonl line {"step", "val_mpjpe_mm"}: the report plots it next to the training loss."""
    if r.val is None:
        return
    from clutch_core.shift.evaluate import evaluate

    r.model.eval()
    with torch.no_grad():
        m = evaluate(r.model, r.stats, r.val, cfg.eval_batch, r.device)
    r.model.train()
    with open(r.out / VAL_LOG, "a") as f:
        f.write(json.dumps({"step": r.step, "val_mpjpe_mm": m["val_mpjpe_mm"]}) + "\n")


def _finish(dataset, r: _Run, cfg: TrainConfig) -> dict[str, Any]:
    """Save the tokenizer, evaluate it on val (test, then train, when a split is empty)."""
    from clutch_core.shift.data import load_clips
    from clutch_core.shift.evaluate import evaluate

    save_tokenizer(r.out, r.model, r.stats, {"steps": cfg.max_steps, "train_config": cfg.identity()})
    for split in ("val", "test", "train"):
        clips = load_clips(dataset, split)
        if len(clips):
            break
    m = evaluate(r.model, r.stats, clips, cfg.eval_batch, r.device)
    return {"tokenizer": cfg.tokenizer.kind, "preset": cfg.preset, "steps": cfg.max_steps, "eval_split": split,
            **m, "train_config": cfg.identity()}
