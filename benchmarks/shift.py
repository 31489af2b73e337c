"""SHIFT benchmarks (results in BENCHMARKS.md, "SHIFT").

quality: SHIFT vs the plain VQ-VAE on one dataset, same preset, at several step counts
         (each longer run continues the shorter one; the learning rate is constant after
         warm-up). Prints a markdown table and writes OUT/quality.json.
    python benchmarks/shift.py quality --dataset D --out OUT --steps 500,2000
    python benchmarks/shift.py quality --synth 1500 --out OUT ...  (writes a synthetic corpus first)

speed:   training clips/s of our SHIFT step vs the step as the authors' release builds it
         (benchmarks/shift_reference.py), paper configuration (width 512, 4096 codes),
         batch 32 x 64 frames, same CPU threads, alternating repeats in one process.
    python benchmarks/shift.py speed --threads 2 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def quality(args) -> None:
    from clutch_core.shift.train import preset_config, train_tokenizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = Path(args.dataset) if args.dataset else out / "synth"
    if args.synth and not (dataset / "shards").is_dir():
        from clutch_core.synth import SynthConfig, write_corpus

        t0 = time.perf_counter()
        write_corpus(dataset, SynthConfig(clips=args.synth, seed=args.seed))
        print(f"synth: {args.synth} clips in {time.perf_counter() - t0:.0f} s", flush=True)
    steps = sorted(int(s) for s in args.steps.split(","))
    rows = []
    for kind in args.tokenizers.split(","):
        for s in steps:
            cfg = preset_config(args.preset, tokenizer=kind, max_steps=s)
            t0 = time.perf_counter()
            m = train_tokenizer(dataset, out / kind, cfg, progress=False)
            shutil.copy(out / kind / "shift" / "metrics.json", out / f"metrics-{kind}-{s}.json")
            rows.append({k: m[k] for k in ("tokenizer", "steps", "val_mpjpe_mm", "val_mpjpe_traj_mm",
                                           "val_mpjpe_pose_mm", "perplexity", "codebook_usage", "val_clips")}
                        | {"seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU x{torch.get_num_threads()} threads"
    (out / "quality.json").write_text(json.dumps({"device": device, "preset": args.preset, "rows": rows}, indent=1))
    print(f"\n{args.preset} preset, {device}, eval split clips: {rows[0]['val_clips']}\n")
    print("| tokenizer | steps | MPJPE mm | traj (wrist) mm | pose (wrist-rel.) mm | perplexity | usage |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ppl = " / ".join(f"{k} {v:.0f}" for k, v in r["perplexity"].items())
        use = " / ".join(f"{v:.0%}" for v in r["codebook_usage"].values())
        print(f"| {r['tokenizer']} | {r['steps']} | {r['val_mpjpe_mm']:.1f} | {r['val_mpjpe_traj_mm']:.1f} | "
              f"{r['val_mpjpe_pose_mm']:.1f} | {ppl} | {use} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--dataset")
    q.add_argument("--synth", type=int, default=0, help="write this many synthetic clips into OUT/synth first")
    q.add_argument("--seed", type=int, default=7)
    q.add_argument("--out", required=True)
    q.add_argument("--steps", default="500,2000")
    q.add_argument("--preset", default="tiny")
    q.add_argument("--tokenizers", default="shift,vqvae")
    q.add_argument("--threads", type=int)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"quality": quality}[args.mode](args)


if __name__ == "__main__":
    main()
