"""Stage 1 of train-clutch: train a motion tokenizer (SHIFT or the plain VQ-VAE baseline).

One trainer for both tokenizers. Skips itself when RUN/shift/metrics.json records a
finished run of the same settings; otherwise resumes from RUN/shift/checkpoint.safetensors
(model, AdamW, EMA codebooks, RNG, step). Batches depend only on (seed, rank, step), so an
interrupted and resumed run trains on the same batches as an uninterrupted one.

GPUs: bf16 autocast; several GPUs through torchrun (WORLD_SIZE / LOCAL_RANK are read
from the environment, DDP with NCCL). The CPU path needs neither.
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

from clutch_core.shift.checkpoint import (CHECKPOINT, CONFIG, atomic_write_bytes, atomic_write_json,
                                          resume_training_state, save_tokenizer, save_training_state)
from clutch_core.shift.model import TokenizerConfig, TokenizerOutput, build_tokenizer
from layout import HAND_DIM, TRAJ_IDX

log = logging.getLogger(__name__)
STAGE_DIR = "shift"
METRICS = "metrics.json"
TRAIN_LOG = "train_log.jsonl"


@dataclass
class TrainConfig:
    """The trainer's settings; the tokenizer's own settings are its TokenizerConfig, held as is."""

    preset: str = "tiny"
    tokenizer: TokenizerConfig = dataclasses.field(default_factory=TokenizerConfig)
    batch: int = 32  # windows per step (per GPU under DDP)
    window: int = 64  # frames per window (multiple of 2**down)
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_steps: int = 2000
    commit_weight: float = 0.25
    vel_weight: float = 0.5  # velocity loss on the trajectory dims
    ckpt_every: int = 200
    log_every: int = 10
    eval_batch: int = 64
    seed: int = 0
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | off

    def identity(self) -> dict[str, Any]:
        """Settings that change the trained model, except max_steps: a finished run can be extended
        (the learning rate is constant after warm-up, so 300 + 700 steps = 1000 steps)."""
        d = dataclasses.asdict(self)
        for k in ("ckpt_every", "log_every", "eval_batch", "amp", "max_steps"):
            d.pop(k)
        d["betas"] = list(d["betas"])
        return d


PRESETS: dict[str, dict[str, Any]] = {
    # CPU, minutes: small nets, small codebooks
    "tiny": dict(width=128, code_dim=128, codes=512, batch=32, window=64, lr=5e-4, warmup_steps=100,
                 max_steps=2000, ckpt_every=200),
    # The authors' SHIFT (GPU). Source of each value: their released configs
    # release_checkpoints/20_07_..._cb4K_d064_decomp_{hp,traj}_down02/input_train_config.yaml
    # in github.com/bala1144/CLUTCH:
    #   width 512, depth 3, growth 3, down 2   <- motion_vae: width, depth, dilation_growth_rate, down_t
    #   codes 4096, code_dim 64                <- code_num, code_dim (= output_emb_width 64)
    #   commit_weight 0.25                     <- LOSS.LAMBDA_COMMIT
    #   vel_weight 1.0                         <- LOSS.LAMBDA_VELOCITY of the trajectory model (ours
    #                                             applies velocity only to the trajectory dims)
    #   lr 2e-4, betas (0.9, 0.99), wd 0       <- TRAIN.OPTIM
    #   batch 512                              <- TRAIN.BATCH_SIZE
    # Ours, not theirs: window 64 frames (they sample up to max_frames 144 at 15 fps), warm-up
    # 1000 steps, max_steps 300k (they train 2000 epochs), mu 0.99 (T2M-GPT's EMA decay).
    "paper": dict(width=512, depth=3, growth=3, down=2, code_dim=64, codes=4096, commit_weight=0.25,
                  vel_weight=1.0, batch=512, window=64, lr=2e-4, betas=(0.9, 0.99), weight_decay=0.0,
                  warmup_steps=1000, max_steps=300_000, ckpt_every=2000, log_every=50),
}


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


def stage_dir(run: str | os.PathLike) -> Path:
    return Path(run) / STAGE_DIR


def is_complete(run: str | os.PathLike, cfg: TrainConfig) -> bool:
    """True when RUN/shift holds a finished run of exactly these settings."""
    p = stage_dir(run) / METRICS
    if not p.exists() or not (stage_dir(run) / CONFIG).exists():
        return False
    m = json.loads(p.read_text())
    return m.get("train_config") == cfg.identity() and m.get("steps") == cfg.max_steps


def tokenizer_loss(out: TokenizerOutput, x: torch.Tensor, presence: torch.Tensor, cfg: TrainConfig):
    """Smooth-L1 reconstruction + velocity loss on the trajectory + commitment, over present hand-frames only.

    x [B, T, 198] normalized target; presence [B, T, 2]. Returns (total, parts dict of floats).
    """
    w = presence.float().repeat_interleave(HAND_DIM, dim=-1)  # [B, T, 198]
    rec = (F.smooth_l1_loss(out.recon.float(), x, reduction="none") * w).sum() / w.sum().clamp_min(1.0)
    traj = torch.tensor([*TRAJ_IDX, *(i + HAND_DIM for i in TRAJ_IDX)], device=x.device)
    vr, vx = out.recon.float()[..., traj].diff(dim=1), x[..., traj].diff(dim=1)  # [B, T-1, 18]
    wv = (w[:, 1:] * w[:, :-1])[..., traj]  # both frames present
    vel = (F.smooth_l1_loss(vr, vx, reduction="none") * wv).sum() / wv.sum().clamp_min(1.0)
    total = rec + cfg.vel_weight * vel + cfg.commit_weight * out.commit
    parts = torch.stack([total, rec, vel, out.commit]).detach().tolist()
    return total, dict(zip(("loss", "recon", "vel", "commit"), parts))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW, no weight decay on biases; the fused kernel (one pass over the parameters instead
    of ~10 elementwise passes: a large share of a CPU step, see BENCHMARKS.md "SHIFT")."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas, fused=True)


def _lr(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def _setup_device() -> tuple[torch.device, int, int]:
    """(device, rank, world size); initializes torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def _autocast(cfg: TrainConfig, device: torch.device):
    on = cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint being resumed (they will be produced again)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    atomic_write_bytes(path, "".join(ln + "\n" for ln in keep).encode())


def train_tokenizer(dataset: str | os.PathLike, run: str | os.PathLike, cfg: TrainConfig,
                    progress: bool = True) -> dict[str, Any]:
    """Train (or finish, or skip) the tokenizer of RUN on DATASET; returns the metrics dict."""
    from clutch_core.hands.motion import MotionStats
    from clutch_core.shift.data import WindowSampler, fit_stats, load_clips

    out_dir = stage_dir(run)
    if is_complete(run, cfg):
        log.info("shift: %s already holds a finished run of these settings; skipping", out_dir)
        return json.loads((out_dir / METRICS).read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    device, rank, world = _setup_device()
    if rank == 0:
        for stale in out_dir.glob(".*.tmp-*"):  # a write cut short by a kill
            stale.unlink(missing_ok=True)
    torch.manual_seed(cfg.seed)
    train = load_clips(dataset, "train")
    if len(train) == 0:
        raise ValueError(f"{dataset}: no clips in the train split")

    model = build_tokenizer(cfg.tokenizer)
    ckpt = out_dir / CHECKPOINT
    step = 0
    model.to(device)  # before loading: optimizer state follows the parameters' device
    opt = make_optimizer(model, cfg)
    meta = resume_training_state(ckpt, model, opt)  # None: no good checkpoint (damaged ones set aside)
    if meta is not None:
        if meta.get("train_config") != cfg.identity():
            raise ValueError(f"{ckpt}: checkpoint of other settings ({meta.get('train_config')}); "
                             f"use another --out or delete it")
        step, stats = int(meta["step"]), MotionStats.from_dict(meta["stats"])
        if step > cfg.max_steps:
            raise ValueError(f"{ckpt}: checkpoint is at step {step}, past max_steps={cfg.max_steps}")
        log.info("shift: resuming from %s at step %d", ckpt, step)
    else:
        stats = fit_stats(train)
    if rank == 0:
        _trim_log(out_dir / TRAIN_LOG, step)
    model.train()
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    sampler = WindowSampler(train.normalized(stats), cfg.window, cfg.batch, cfg.seed, rank)
    meta = {"train_config": cfg.identity(), "stats": stats.to_dict()}

    t0, start_step = time.perf_counter(), step
    bar = _progress(progress and rank == 0, cfg.max_steps, step)
    with open(out_dir / TRAIN_LOG, "a") as logf:
        while step < cfg.max_steps:
            x, p = sampler.sample(step)
            x, p = x.to(device, non_blocking=True), p.to(device, non_blocking=True)
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            with _autocast(cfg, device):
                out = net(x, p)
            loss, parts = tokenizer_loss(out, x, p, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.4f}")
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.max_steps):
                ppl = {k: round(float(v), 2) for k, v in out.perplexity.items()}
                logf.write(json.dumps({"step": step, **parts, "perplexity": ppl, "lr": _lr(cfg, step - 1)}) + "\n")
                logf.flush()
            if rank == 0 and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
                save_training_state(ckpt, step, model, opt, meta)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - t0
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return {}
    metrics = _finish(dataset, out_dir, model, stats, cfg, device)
    metrics.update(train_seconds_this_run=seconds, steps_this_run=step - start_step,
                   train_clips_per_s=(step - start_step) * cfg.batch * world / max(seconds, 1e-9))
    atomic_write_json(out_dir / METRICS, metrics)
    log.info("shift: val MPJPE %.2f mm (traj %.2f, pose %.2f) -> %s", metrics["val_mpjpe_mm"],
             metrics["val_mpjpe_traj_mm"], metrics["val_mpjpe_pose_mm"], out_dir / METRICS)
    return metrics


def _finish(dataset, out_dir: Path, model, stats, cfg: TrainConfig, device) -> dict[str, Any]:
    """Save the tokenizer, evaluate it on val (test, then train, when a split is empty)."""
    from clutch_core.shift.data import load_clips
    from clutch_core.shift.evaluate import evaluate

    save_tokenizer(out_dir, model, stats, {"steps": cfg.max_steps, "train_config": cfg.identity()})
    for split in ("val", "test", "train"):
        clips = load_clips(dataset, split)
        if len(clips):
            break
    m = evaluate(model, stats, clips, cfg.eval_batch, device)
    return {"tokenizer": cfg.tokenizer.kind, "preset": cfg.preset, "steps": cfg.max_steps, "eval_split": split,
            **m, "train_config": cfg.identity()}


def _progress(on: bool, total: int, initial: int):
    if not on:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="shift", unit="step", dynamic_ncols=True)
