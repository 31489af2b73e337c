"""SHIFT benchmarks (results in BENCHMARKS.md, "SHIFT").

quality: SHIFT vs the plain VQ-VAE on one dataset, same preset, at several step counts
         (each longer run continues the shorter one; the learning rate is constant after
         warm-up). Prints a markdown table and writes OUT/quality.json.
    python benchmarks/shift.py quality --dataset D --out OUT --steps 500,2000
    python benchmarks/shift.py quality --synth 1500 --out OUT ...  (writes a synthetic corpus first)

speed:   training clips/s of our SHIFT step vs the step as the authors' release builds it
         (benchmarks/shift_reference.py), paper configuration (width 512, 4096 codes),
         batch 32 x 64 frames, same CPU threads, alternating repeats in one process.
    python benchmarks/shift.py speed --threads 2 --bf16 --repeats 3 [--cpu-time] [--profile]
"""
from __future__ import annotations

import argparse
import json
import os
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


def speed(args) -> None:
    import statistics
    import tempfile

    from shift_reference import RefSHIFT, copy_weights  # beside this script
    from clutch_core.shift.data import WindowSampler, fit_stats, load_clips
    from clutch_core.shift.model import SHIFT, TokenizerConfig, TokenizerOutput
    from clutch_core.shift.train import make_optimizer, preset_config, tokenizer_loss

    torch.set_num_threads(args.threads)
    dataset = args.dataset
    if dataset is None:  # a small synthetic corpus: real-looking motion, so losses mean something
        from clutch_core.synth import SynthConfig, write_corpus

        dataset = Path(tempfile.mkdtemp()) / "synth"
        write_corpus(dataset, SynthConfig(clips=60, seed=1))
    clips = load_clips(dataset, "train")
    sampler = WindowSampler(clips.normalized(fit_stats(clips)), window=64, batch=args.batch, seed=0)
    tcfg = preset_config("paper")  # loss weights, optimizer settings
    cfg = TokenizerConfig(kind="shift", width=512, code_dim=512, codes=4096)
    torch.manual_seed(0)
    ours, ref = SHIFT(cfg), RefSHIFT(cfg)
    copy_weights(ours, ref)
    opts = {"ours": make_optimizer(ours, tcfg),  # the trainer's optimizer
            "ref": torch.optim.AdamW(ref.parameters(), lr=tcfg.lr, betas=tcfg.betas)}  # default (foreach) AdamW
    losses: dict[str, list[float]] = {"ours": [], "ref": []}

    def step(kind: str, i: int) -> None:
        x, p = sampler.sample(i)
        if kind == "ours":
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                out = ours(x, p)
        else:
            recon, commit = ref(x)
            out = TokenizerOutput(recon, None, None, commit, {})
        loss, parts = tokenizer_loss(out, x, p, tcfg)
        opts[kind].zero_grad(set_to_none=True)
        loss.backward()
        opts[kind].step()
        losses[kind].append(parts["recon"])

    if args.profile:
        from torch.profiler import profile

        for kind in ("ref", "ours"):
            step(kind, 0)
            with profile() as prof:
                step(kind, 1)
            print(f"--- {kind}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        return
    i = 0
    for _ in range(args.warmup):
        for kind in ("ref", "ours"):
            step(kind, i)
        i += 1
    rates: dict[str, list[float]] = {"ours": [], "ref": []}
    clock = time.process_time if args.cpu_time else time.perf_counter
    for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
        for kind in ("ref", "ours"):
            t0 = clock()
            for k in range(args.steps):
                step(kind, i + k)
            rates[kind].append(args.steps * args.batch / (clock() - t0))
        i += args.steps
    n = args.steps * args.repeats
    fidelity = {}
    if args.bf16:  # our bf16 forward against float32: same weights, one batch
        x, p = sampler.sample(10_000)
        ours.eval()
        with torch.no_grad():
            f32 = ours(x, p)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                b16 = ours(x, p)
        w = p.float().repeat_interleave(99, -1)
        fidelity = {
            "bf16_minus_fp32_over_fp32_error": float(((b16.recon - f32.recon).abs() * w).sum()
                                                     / ((f32.recon - x).abs() * w).sum()),
            "bf16_fp32_token_agreement": float((b16.tokens == f32.tokens).float().mean()),
        }
    result = {
        "threads": args.threads, "batch": args.batch, "window": 64, "bf16": args.bf16,
        "clock": "process CPU time" if args.cpu_time else "wall",
        "load_average_1min_end": os.getloadavg()[0],
        "ref_clips_per_s": rates["ref"], "ours_clips_per_s": rates["ours"],
        "speedup_median": statistics.median(o / r for o, r in zip(rates["ours"], rates["ref"])),
        "ref_recon_loss_last": statistics.mean(losses["ref"][-n // 2:]),
        "ours_recon_loss_last": statistics.mean(losses["ours"][-n // 2:]),
        **fidelity,
    }
    print(json.dumps(result, indent=1))


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
    sp = sub.add_parser("speed")
    sp.add_argument("--dataset", help="clips to draw windows from (default: 60 synthetic clips)")
    sp.add_argument("--threads", type=int, default=2)
    sp.add_argument("--batch", type=int, default=32)
    sp.add_argument("--steps", type=int, default=3, help="timed steps per repeat")
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--warmup", type=int, default=2)
    sp.add_argument("--bf16", action="store_true", help="our step under bf16 autocast (AMX CPUs; quantizer stays float32)")
    sp.add_argument("--cpu-time", action="store_true",
                    help="rate per CPU-second of this process instead of per wall second (robust to other load)")
    sp.add_argument("--profile", action="store_true", help="print where one step of each spends its time")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"quality": quality, "speed": speed}[args.mode](args)


if __name__ == "__main__":
    main()
