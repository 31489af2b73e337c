"""SHIFT benchmarks (results in BENCHMARKS.md, "SHIFT").

quality: SHIFT vs the plain VQ-VAE on one dataset, same preset, at several step counts
         (each longer run continues the shorter one; the learning rate is constant after
         warm-up). Prints a markdown table and writes OUT/quality.json.
    python benchmarks/shift.py quality --dataset D --out OUT --steps 500,2000
    python benchmarks/shift.py quality --synth 1500 --out OUT ...  (writes a synthetic corpus first)

speed:   training clips/s of the authors' released SHIFT step (their modules, loaded from
         --authors-repo, float32) vs ours in float32, bf16 and the default (amp=auto), paper
         configuration (width 512, depth 3, 4096 codes of dim 64), batch 32 x 64 frames, same
         threads, alternating repeats in one process; FLOPs per step and % of float32 peak.
         Without --authors-repo the baseline is benchmarks/shift_reference.py (labelled fallback).
    python benchmarks/shift.py speed --authors-repo ~/src/CLUTCH --threads 2 --repeats 3 [--cpu-time]
amp-quality: val MPJPE after the same steps, --amp off vs --amp bf16 (quality only).
    python benchmarks/shift.py amp-quality --out /tmp/ampq --steps 300 --threads 1
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


def cpu_facts() -> dict:
    """CPU model, native bf16 support and load average, as every speed table states them."""
    from clutch_core.training.precision import cpu_has_native_bf16

    model = "unknown"
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "native_bf16": cpu_has_native_bf16(), "load_avg_1min": os.getloadavg()[0]}


def step_flops(model_step) -> float:
    """FLOPs of one training step (forward + backward), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model_step()
    return float(fc.get_total_flops())


def speed(args) -> None:
    """Clips/s of one SHIFT training step: the authors' release (float32) against ours (float32,
    bf16, and the default amp=auto), paper configuration, batch x 64 frames, alternating repeats."""
    import statistics
    import tempfile

    import torch.nn.functional as F

    from clutch_core.shift.data import WindowSampler, fit_stats, load_clips
    from clutch_core.shift.model import SHIFT
    from clutch_core.shift.train import make_optimizer, preset_config, tokenizer_loss
    from clutch_core.training.precision import resolve_amp

    torch.set_num_threads(args.threads)
    dataset = args.dataset
    if dataset is None:  # a small synthetic corpus: real-looking motion, so losses mean something
        from clutch_core.synth import SynthConfig, write_corpus

        dataset = Path(tempfile.mkdtemp()) / "synth"
        write_corpus(dataset, SynthConfig(clips=60, seed=1))
    clips = load_clips(dataset, "train")
    sampler = WindowSampler(clips.normalized(fit_stats(clips)), window=64, batch=args.batch, seed=0)
    tcfg = preset_config("paper", batch=args.batch)
    tok = tcfg.tokenizer
    torch.manual_seed(0)
    steps: dict = {}
    losses: dict[str, list[float]] = {}
    ours = SHIFT(tok).train()
    opt = make_optimizer(ours, tcfg)

    def ours_step(bf16: bool):
        def run(x, p):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = ours(x, p)
            loss, parts = tokenizer_loss(out, x, p, tcfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return parts["recon"]
        return run

    if args.authors_repo:
        from authors_shift import authors_models, load_authors_vqvae  # beside this script

        base = "authors"
        traj, hp = authors_models(load_authors_vqvae(args.authors_repo), tok.width, tok.depth, tok.growth,
                                  tok.down, tok.code_dim, tok.codes)
        their_opt = torch.optim.AdamW([*traj.parameters(), *hp.parameters()], lr=tcfg.lr, betas=tcfg.betas)

        def base_step(x, p):  # as released: both models, float32, default AdamW; the same loss terms
            w = p.float().repeat_interleave(99, -1)
            total = 0.0
            for m in (traj, hp):
                out, commit = m(x)[:2]
                rec = (F.smooth_l1_loss(out, x, reduction="none") * w).sum() / w.sum().clamp_min(1.0)
                total = total + rec + tcfg.commit_weight * commit
            their_opt.zero_grad(set_to_none=True)
            total.backward()
            their_opt.step()
            return float(rec.detach())
    else:  # labelled fallback: the rebuilt reference (4 passes per step, not the authors' 2)
        from shift_reference import RefSHIFT, copy_weights  # beside this script
        from clutch_core.shift.model import TokenizerOutput

        base = "rebuilt reference (fallback, not the authors' code)"
        ref = RefSHIFT(tok)
        copy_weights(ours, ref)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=tcfg.lr, betas=tcfg.betas)

        def base_step(x, p):
            recon, commit = ref(x)
            loss, parts = tokenizer_loss(TokenizerOutput(recon, None, None, commit, {}), x, p, tcfg)
            ref_opt.zero_grad(set_to_none=True)
            loss.backward()
            ref_opt.step()
            return parts["recon"]

    x0, p0 = sampler.sample(0)
    def probe():
        out = ours(x0, p0)
        return out.recon.float().square().mean() + out.commit

    auto_bf16, auto_why = resolve_amp(tcfg.amp, torch.device("cpu"), ours, probe, ("benchmark", tuple(x0.shape)))
    steps = {base: base_step, "ours float32 (--amp off)": ours_step(False), "ours bf16 (--amp bf16)": ours_step(True),
             f"ours default (amp=auto -> {'bf16' if auto_bf16 else 'float32'})": ours_step(auto_bf16)}
    flops = {k: step_flops(lambda k=k: steps[k](x0, p0)) for k in steps}
    losses = {k: [] for k in steps}
    i = 1
    for _ in range(args.warmup):
        for k, fn in steps.items():
            losses[k].append(fn(*sampler.sample(i)))
        i += 1
    rates: dict[str, list[float]] = {k: [] for k in steps}
    clock = time.process_time if args.cpu_time else time.perf_counter
    for _ in range(args.repeats):  # alternate, so load from other processes hits all alike
        for k, fn in steps.items():
            t0 = clock()
            for j in range(args.steps):
                losses[k].append(fn(*sampler.sample(i + j)))
            rates[k].append(args.steps * args.batch / (clock() - t0))
        i += args.steps
    facts = cpu_facts()
    peak = args.threads * args.peak_gflops_per_thread * 1e9
    base_rate = statistics.median(rates[base])
    print(f"\nSHIFT training step, paper configuration (width {tok.width}, depth {tok.depth}, {tok.codes} codes "
          f"of dim {tok.code_dim}), batch {args.batch} x 64 frames, {args.threads} threads, "
          f"{'CPU' if args.cpu_time else 'wall'} clock, median of {args.repeats} x {args.steps} steps\n"
          f"CPU: {facts['cpu']}; native bf16: {facts['native_bf16']}; load average (1 min) at end: "
          f"{facts['load_avg_1min']:.2f}; {auto_why}\n"
          f"float32 peak assumed {args.peak_gflops_per_thread:.0f} GFLOP/s per thread (--peak-gflops-per-thread)\n")
    print("| step | clips/s | x baseline | GFLOP per step | % of float32 peak | recon loss (last) |")
    print("|---|---|---|---|---|---|")
    for k in steps:
        r = statistics.median(rates[k])
        sec = args.batch / r
        print(f"| {k} | {r:.2f} | {r / base_rate:.2f} | {flops[k] / 1e9:.0f} | {100 * flops[k] / sec / peak:.0f} % | "
              f"{statistics.mean(losses[k][-args.steps:]):.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"facts": facts, "rates": rates, "flops": flops, "amp": auto_why,
                                               "threads": args.threads, "batch": args.batch}, indent=1))


def amp_quality(args) -> None:
    """val MPJPE after the same steps on the same data, float32 against bf16 (quality, not speed)."""
    from clutch_core.shift.train import preset_config, train_tokenizer

    out = Path(args.out)
    dataset = Path(args.dataset) if args.dataset else out / "synth"
    if not args.dataset and not (dataset / "shards").is_dir():
        from clutch_core.synth import SynthConfig, write_corpus

        write_corpus(dataset, SynthConfig(clips=args.synth, seed=args.seed))
    rows, curves = {}, {}
    for amp in ("off", "bf16"):
        cfg = preset_config(args.preset, max_steps=args.steps, amp=amp, batch=args.batch, seed=args.seed,
                            ckpt_every=args.val_every)
        rows[amp] = train_tokenizer(dataset, out / f"amp-{amp}", cfg, progress=False)
        log = (out / f"amp-{amp}" / "shift" / "val_log.jsonl").read_text().splitlines()
        curves[amp] = {int(d["step"]): float(d["val_mpjpe_mm"]) for d in map(json.loads, log)}
    f, b = rows["off"]["val_mpjpe_mm"], rows["bf16"]["val_mpjpe_mm"]
    print(f"\n{args.preset} preset, {args.steps} steps, batch {args.batch}, seed {args.seed}, eval split "
          f"{rows['off']['eval_split']} ({rows['off'].get('val_clips')} clips)\n")
    print("| amp | val MPJPE mm | traj mm | pose mm | train clips/s |\n|---|---|---|---|---|")
    for amp, m in rows.items():
        print(f"| {amp} | {m['val_mpjpe_mm']:.2f} | {m['val_mpjpe_traj_mm']:.2f} | {m['val_mpjpe_pose_mm']:.2f} | "
              f"{m['train_clips_per_s']:.1f} |")
    steps = sorted(set(curves["off"]) & set(curves["bf16"]))
    print("\nval MPJPE (mm) at each evaluation:\n\n| step | " + " | ".join(map(str, steps)) + " |")
    print("|---|" + "---|" * len(steps))
    for amp in ("off", "bf16"):
        print(f"| {amp} | " + " | ".join(f"{curves[amp][k]:.2f}" for k in steps) + " |")
    last = steps[-3:]
    mf = sum(curves["off"][k] for k in last) / len(last)
    mb = sum(curves["bf16"][k] for k in last) / len(last)
    print(f"\nbf16 / float32 val MPJPE at step {args.steps}: {b / f:.4f} ({100 * (b / f - 1):+.2f} %); "
          f"mean of the last {len(last)} evaluations: {mb:.2f} / {mf:.2f} = {mb / mf:.4f} ({100 * (mb / mf - 1):+.2f} %)")


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
    sp.add_argument("--authors-repo", help="a clone of github.com/bala1144/CLUTCH: the baseline is their released "
                                           "modules (without it: the rebuilt reference, a labelled fallback)")
    sp.add_argument("--peak-gflops-per-thread", type=float, default=96.0,
                    help="float32 peak of one thread (default: 3.0 GHz x 32 FLOP/cycle, two 256-bit FMA pipes)")
    sp.add_argument("--json", help="also write the numbers here")
    sp.add_argument("--cpu-time", action="store_true",
                    help="rate per CPU-second of this process instead of per wall second (robust to other load)")
    aq = sub.add_parser("amp-quality")
    aq.add_argument("--dataset")
    aq.add_argument("--synth", type=int, default=600)
    aq.add_argument("--seed", type=int, default=7)
    aq.add_argument("--out", required=True)
    aq.add_argument("--steps", type=int, default=300)
    aq.add_argument("--batch", type=int, default=32)
    aq.add_argument("--preset", default="tiny")
    aq.add_argument("--threads", type=int)
    aq.add_argument("--val-every", type=int, default=50, help="val MPJPE every this many steps (a checkpoint each)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {"quality": quality, "speed": speed, "amp-quality": amp_quality}[args.mode](args)


if __name__ == "__main__":
    main()
