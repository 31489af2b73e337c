"""Training commands: train (train-clutch stages), tokenize."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from clutch_cli import CliError

STAGES = ("shift", "tokenize")  # train-clutch stages implemented so far, in order


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train CLUTCH stages on a dataset (stage 1: SHIFT tokenizer; then token extraction)",
        description="Run train-clutch stages in order on DATASET, writing into RUN. Stage 'shift' trains the "
                    "motion tokenizer (SHIFT, or the plain VQ-VAE baseline) and writes RUN/shift/ (model, "
                    "config, checkpoint, metrics.json, train_log.jsonl); stage 'tokenize' writes the tokens "
                    "of every clip to DATASET/tokens/. A finished stage is skipped; an interrupted one resumes "
                    "from its last checkpoint. Several GPUs: torchrun --nproc_per_node=N -m clutch_cli train ...",
        epilog="example: clutch train D --out runs/r1 --stages shift,tokenize --preset tiny --max-steps 500")
    p.add_argument("dataset", type=Path, help="dataset folder (holds shards/)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--stages", default="shift,tokenize",
                   help=f"comma-separated stages, from {', '.join(STAGES)} (default shift,tokenize)")
    p.add_argument("--tokenizer", choices=["shift", "vqvae"], default="shift",
                   help="shift (default) or vqvae (one VQ-VAE over the whole frame, the baseline)")
    p.add_argument("--preset", choices=["tiny", "paper"], default="tiny",
                   help="tiny: CPU-sized, minutes; paper: the paper's scale, for GPUs (default tiny)")
    p.add_argument("--max-steps", type=int, help="training steps (default: the preset's)")
    p.add_argument("--batch", type=int, help="windows per step (default: the preset's)")
    p.add_argument("--ckpt-every", type=int, help="checkpoint every N steps (default: the preset's)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--amp", choices=["auto", "bf16", "off"], help="bf16 autocast: auto = on CUDA only (default); "
                   "bf16 also on CPUs with AMX (about 2x faster when the CPU is not shared, see BENCHMARKS.md)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "tokenize", help="write the motion tokens of every clip of a dataset with a trained tokenizer",
        description="Encode every clip of DATASET with the tokenizer of RUN (RUN/shift/) and write Parquet "
                    "parts to DATASET/tokens/<run name>-<weights hash>/. Clips already tokenized are skipped, "
                    "so an interrupted run continues where it stopped.")
    p.add_argument("run", type=Path, help="run folder (holds shift/model.safetensors)")
    p.add_argument("dataset", type=Path, help="dataset folder (holds shards/)")
    p.add_argument("--chunk", type=int, default=512, help="clips per Parquet part (default 512)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_tokenize)


def parse_stages(text: str | list[str]) -> list[str]:
    """'shift,tokenize' or a list -> validated stages in pipeline order."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in STAGES]
    if unknown or not items:
        raise CliError(f"unknown or no stage(s) {unknown}; available: {', '.join(STAGES)}")
    return [s for s in STAGES if s in items]


def _check_dataset(path: Path) -> None:
    if not (path / "shards").is_dir():
        raise CliError(f"{path}: not a dataset folder (no shards/ inside)")


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _train(args) -> int:
    stages = parse_stages(args.stages)
    _check_dataset(args.dataset)
    _threads(args.threads)
    from clutch_core.shift.tokenize import tokenize_dataset
    from clutch_core.shift.train import preset_config, train_tokenizer

    try:
        cfg = preset_config(args.preset, tokenizer=args.tokenizer, max_steps=args.max_steps, batch=args.batch,
                            ckpt_every=args.ckpt_every, seed=args.seed, amp=args.amp)
        if "shift" in stages:
            m = train_tokenizer(args.dataset, args.out, cfg, progress=not args.no_progress)
            if m:
                print(json.dumps({k: m[k] for k in ("tokenizer", "steps", "val_mpjpe_mm", "val_mpjpe_traj_mm",
                                                    "val_mpjpe_pose_mm", "perplexity")}))
        if "tokenize" in stages and os.environ.get("RANK", "0") == "0":  # one writer under torchrun
            print(json.dumps(tokenize_dataset(args.out, args.dataset, progress=not args.no_progress)))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    return 0


def _tokenize(args) -> int:
    _check_dataset(args.dataset)
    _threads(args.threads)
    from clutch_core.shift.tokenize import tokenize_dataset

    try:
        print(json.dumps(tokenize_dataset(args.run, args.dataset, chunk=args.chunk, progress=not args.no_progress)))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    return 0
