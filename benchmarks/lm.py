"""Language-model benchmarks (results in BENCHMARKS.md, "LM").

prepare: a `clutch synth` corpus, SHIFT (tiny preset) and its tokens, the LM stages of one
         run, and the refinement ablation: from that run's pretrain checkpoint, `refine`
         with the geometric loss on and with cross-entropy only (geo_weight 0,
         joint_weight 0), same steps, several seeds. Quality only, nothing timed.
    python benchmarks/lm.py prepare --out OUT --synth 1200 --seed 0 --shift-steps 600 --seeds 0,1,2

quality: `evaluate_lm` of OUT/run (text-to-motion rows, motion-to-text table) and the
         ablation table (teacher-forced MPJPE, FID/KID and R@3 of generated motion,
         mean and spread over seeds). Prints Markdown tables, writes OUT/quality*.json.
    python benchmarks/lm.py quality --out OUT [--repeats 5] [--mm-texts 32]

curve:   the learning curve of a preset's pretrain stage: train it in segments of --every
         steps (a stage extended by a higher step cap resumes from its checkpoint: the same
         weights as one run), score each segment's end (text-to-motion and motion-to-text R@3,
         FID, KID, one evaluator), write RUN/eval/learning_curve.json and .png. RUN needs its
         shift and tokenize stages (`clutch train D --out RUN --preset small --stages shift,tokenize`).
    python benchmarks/lm.py curve --dataset D --run RUN --preset small --every 400 [--repeats 5]

speed:   LM training tokens/s and peak memory (tiny preset, CPU), generation latency per
         clip at batch 1 and 32, the share of generation time spent in the constrained
         decoding LogitsProcessor, and on CUDA a flan-t5-base-shaped model (config only,
         random weights) in bf16. Run it on a quiet machine. Prints a Markdown table.
    python benchmarks/lm.py speed --out OUT [--threads 2]

recipe-speed: pretrain tokens/s (inputs + targets, padding not counted) of the recipe before
         this one (no length buckets, span corruption in the mix, every target in the loss)
         against the tiny preset's, each in float32 and bf16: every (recipe, precision) in its
         own process, in alternating rounds, from the SHIFT and tokens of RUN (a run with its
         shift and tokenize stages done). Run it on a quiet machine.
    python benchmarks/lm.py recipe-speed --dataset D --run RUN [--steps 60] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("pretrain", "refine", "instruct")


def lm_config(args, **over):
    from clutch_core.lm.config import preset_config

    extra = json.loads(args.lm) if getattr(args, "lm", None) else {}
    return preset_config("tiny", **{**extra, **over})


def ablation_runs(out: Path, seeds: list[int]) -> dict[str, Path]:
    """name -> run folder of the refinement ablation ("geo-s0" is the main run's own refine)."""
    runs = {}
    for s in seeds:
        runs[f"geo-s{s}"] = out / "run" if s == seeds[0] else out / "ablation" / f"geo-s{s}"
        runs[f"ce-s{s}"] = out / "ablation" / f"ce-s{s}"
    return runs


def fork_run(src: Path, dest: Path, dataset: Path) -> None:
    """A run holding src's SHIFT, pretrain stage and a copy of its tokens (named after dest)."""
    from clutch_core.shift.tokenize import tokens_dir

    if (dest / "pretrain" / "metrics.json").exists():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("shift", "pretrain"):
        shutil.rmtree(dest / part, ignore_errors=True)
        shutil.copytree(src / part, dest / part)
    tok = tokens_dir(dest, dataset)
    if not tok.exists():
        shutil.copytree(tokens_dir(src, dataset), tok)


def claim(run: Path) -> bool:
    """True for the one process that may train this ablation run (several `prepare` may share the work)."""
    run.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(run / ".bench-claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return (run / "refine" / "metrics.json").exists()


def prepare(args) -> None:
    from clutch_core.lm.train import run_stage
    from clutch_core.shift.tokenize import tokenize_dataset
    from clutch_core.shift.train import preset_config as shift_config, train_tokenizer

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset = out / "synth"
    if not (dataset / "shards").is_dir():
        from clutch_core.synth import SynthConfig, write_corpus

        write_corpus(dataset, SynthConfig(clips=args.synth, seed=args.seed))
        print(f"synth: {args.synth} clips (seed {args.seed})", flush=True)
    run = out / "run"
    m = train_tokenizer(dataset, run, shift_config("tiny", max_steps=args.shift_steps), progress=False)
    print(f"shift: {m['steps']} steps, val MPJPE {m['val_mpjpe_mm']:.1f} mm", flush=True)
    tokenize_dataset(run, dataset, progress=False)
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = lm_config(args, seed=seeds[0])
    times = {}
    for stage in ("pretrain", "refine"):
        if args.ablation_only and stage == "refine":
            break
        t0 = time.perf_counter()
        m = run_stage(stage, dataset, run, cfg, progress=False)
        times[stage] = time.perf_counter() - t0
        print(f"{stage}: {m['steps']} steps, val CE {m['val_ce']:.3f}, tf MPJPE {m['val_tf_mpjpe_mm']:.1f} mm",
              flush=True)
    names = list(ablation_runs(out, seeds).items())
    for name, r in (reversed(names) if args.reverse else names):
        if r == run or not claim(r):
            continue
        kind, seed = name.split("-s")
        fork_run(run, r, dataset)
        over = dict(seed=int(seed)) if kind == "geo" else dict(seed=int(seed), geo_weight=0.0, joint_weight=0.0)
        m = run_stage("refine", dataset, r, lm_config(args, **over), progress=False)
        print(f"ablation {name}: tf MPJPE {m['val_tf_mpjpe_mm']:.1f} mm, val CE {m['val_ce']:.3f}", flush=True)
    if args.ablation_only:
        return
    t0 = time.perf_counter()
    m = run_stage("instruct", dataset, run, cfg, progress=False)
    times["instruct"] = time.perf_counter() - t0
    print(f"instruct: {m['steps']} steps, val CE {m['val_ce']:.3f}", flush=True)
    (out / "prepare.json").write_text(json.dumps({"synth": args.synth, "seed": args.seed,
                                                  "shift_steps": args.shift_steps, "seeds": seeds,
                                                  "stage_seconds": times}, indent=1))


# ------------------------------------------------------------------------------ quality


def fmt(row: dict, key: str, digits: int = 3) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    ci = row.get(f"{key}_ci95")
    return f"{v:.{digits}f}" + (f" ± {ci:.{digits}f}" if ci else "")


def t2m_markdown(rep: dict) -> str:
    cols = [("r_precision_top1", "R@1"), ("r_precision_top2", "R@2"), ("r_precision_top3", "R@3"), ("fid", "FID"),
            ("kid", "KID"), ("mm_dist", "MM-Dist"), ("diversity", "Diversity"), ("multimodality", "MultiModality")]
    lines = ["| text-to-motion | " + " | ".join(c for _, c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name in ("real", "clutch", "chance"):
        row = rep["t2m"][name]
        cells = []
        for k, _ in cols:
            cell = fmt(row, k)
            if k == "kid" and "kid_lo" in row:
                cell += f" [{row['kid_lo']:.3f}, {row['kid_hi']:.3f}]"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def m2t_markdown(rep: dict) -> str:
    bk = rep.get("bertscore_key") or "bertscore"
    cols = [("r_precision_top3", "R@3"), ("bleu_1", "BLEU-1"), ("bleu_4", "BLEU-4"), ("rouge_l", "ROUGE-L"),
            ("cider", "CIDEr"), (bk, bk)]
    lines = ["| motion-to-text | " + " | ".join(c for _, c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name in ("clutch", "most_frequent_caption", "nearest_training_motion", "real"):
        lines.append(f"| {name} | " + " | ".join(fmt(rep["m2t"][name], k) for k, _ in cols) + " |")
    return "\n".join(lines)


def spread(vals: list[float]) -> str:
    mean = statistics.fmean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{mean:.3f} ± {sd:.3f}"


def ablation_markdown(rows: dict[str, dict]) -> str:
    cols = [("tf_mpjpe_mm", "teacher-forced MPJPE mm"), ("fid", "FID"), ("kid", "KID"),
            ("r_precision_top3", "R@3"), ("tf_ce", "teacher-forced CE")]
    lines = ["| refine | seeds | " + " | ".join(c for _, c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    for kind, label in (("geo", "geometric loss on (refine)"), ("ce", "cross-entropy only")):
        rs = [r for n, r in rows.items() if n.startswith(kind + "-")]
        if rs:
            lines.append(f"| {label} | {len(rs)} | " + " | ".join(spread([r[k] for r in rs]) for k, _ in cols) + " |")
    lines.append("")
    lines.append("| run | " + " | ".join(c for _, c in cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    for n, r in rows.items():
        lines.append(f"| {n} | " + " | ".join(f"{r[k]:.3f}" for k, _ in cols) + " |")
    return "\n".join(lines)


def quality(args) -> None:
    from clutch_core.lm.evaluate import LMEvalConfig, evaluate_lm

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset = out / "synth"
    prep = json.loads((out / "prepare.json").read_text()) if (out / "prepare.json").exists() else {}
    seeds = prep.get("seeds", [0, 1, 2])
    base = dict(repeats=args.repeats, mm_texts=args.mm_texts, mm_generations=args.mm_generations, split=args.split,
                final=args.final)
    result = {"prepare": prep}
    if not args.skip_main:
        rep = evaluate_lm(out / "run", dataset, LMEvalConfig(**base), progress=False)
        result["main"] = rep
        print(f"\n{rep['stage']} stage, evaluation set {rep['eval_set']} ({rep['n_clips']} clips), "
              f"evaluator {rep['evaluator_hash']}, {args.repeats} repeats\n")
        print(t2m_markdown(rep) + "\n\n" + m2t_markdown(rep), flush=True)
    rows = {}
    for name, r in ablation_runs(out, seeds).items():
        if args.skip_ablation or not (r / "refine" / "metrics.json").exists():
            continue
        rep = evaluate_lm(r, dataset, LMEvalConfig(**{**base, "mm_texts": 2, "mm_generations": 2}, stage="refine",
                                                   parts=("t2m",)), progress=False)
        rows[name] = rep["t2m"]["clutch"]
        print(name, json.dumps({k: rows[name][k] for k in ("tf_mpjpe_mm", "fid", "kid", "r_precision_top3")}),
              flush=True)
    result["ablation"] = rows
    if rows:
        print("\n" + ablation_markdown(rows), flush=True)
    name = "quality" + ("-ablation" if args.skip_main else "") + ("-main" if args.skip_ablation else "")
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))


# -------------------------------------------------------------------------------- speed


def train_speed(args) -> None:
    """(child process) one stage's tokens/s and the process's peak resident memory, as JSON."""
    from clutch_core.lm.train import run_stage

    torch.set_num_threads(args.threads)
    run = Path(args.run)
    cfg = lm_config(args, max_steps=args.steps, ckpt_every=10**9, eval_clips=8)
    m = run_stage(args.stage, Path(args.dataset), run, cfg, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"stage": args.stage, "steps": m["steps_this_run"], "tokens_per_s": m["train_tokens_per_s"],
                      "s_per_step": m["train_seconds_this_run"] / max(m["steps_this_run"], 1), "peak_rss_mb": peak_mb}))


class ProcessorClock:
    """Wall time spent inside MotionConstraint.__call__ while it is installed."""

    def __init__(self):
        from clutch_core.lm.decode import MotionConstraint

        self.cls, self.orig, self.seconds = MotionConstraint, MotionConstraint.__call__, 0.0

    def __enter__(self):
        orig = self.orig

        def timed(proc, input_ids, scores):
            t0 = time.perf_counter()
            r = orig(proc, input_ids, scores)
            if r.is_cuda:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - t0
            return r

        self.cls.__call__ = timed
        return self

    def __exit__(self, *exc):
        self.cls.__call__ = self.orig


def generation_speed(run: Path, dataset: Path, device: str, repeats: int) -> list[dict]:
    """Per-clip latency of text-to-motion at batch 1 and 32 (clip lengths of the val split), and the
    processor's share of it."""
    from clutch_core.eval.data import eval_clips
    from clutch_core.lm.api import generate

    clips, _ = eval_clips(dataset, "val")
    clips = clips[:32]
    texts = [c["captions"][0]["text"] for c in clips]
    secs = [c["num_frames"] / 15 for c in clips]
    generate(run, texts[:2], seconds=secs[:2], device=device)  # load and warm up
    rows = []
    for batch, n in ((1, 8), (32, 32)):
        times, share = [], []
        for _ in range(repeats):
            with ProcessorClock() as clock:
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                generate(run, texts[:n], seconds=secs[:n], batch_size=batch, device=device)
                if device == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
            times.append(dt / n)
            share.append(clock.seconds / dt)
        rows.append({"what": f"generation, batch {batch}", "device": device, "ms_per_clip": 1000 * statistics.median(times),
                     "processor_share": statistics.median(share)})
    return rows


def gpu_flan_t5_base(repeats: int) -> list[dict]:
    """flan-t5-base's shape (config only, random weights) in bf16 on CUDA: train tokens/s, peak memory,
    constrained generation latency at batch 1 and 32 and the processor's share."""
    from transformers import T5Config, T5ForConditionalGeneration

    from clutch_core.lm.decode import generate_motion_ids
    from clutch_core.lm.vocab import MotionVocab

    vocab = MotionVocab(32100, ("left_traj", "left_pose", "right_traj", "right_pose"),
                        (("traj", 4096), ("pose", 4096)), 4)
    cfg = T5Config(vocab_size=vocab.size, d_model=768, d_ff=2048, d_kv=64, num_layers=12, num_decoder_layers=12,
                   num_heads=12, feed_forward_proj="gated-gelu", tie_word_embeddings=False, pad_token_id=0,
                   eos_token_id=1, decoder_start_token_id=0)
    model = T5ForConditionalGeneration(cfg).to("cuda", torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    b, li, lt = 32, 256, 192
    x = torch.randint(2, 32000, (b, li), device="cuda")
    y = torch.randint(vocab.motion_start, vocab.size, (b, lt), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(3 + repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    rows = [{"what": "flan-t5-base shape, training (batch 32 x 256 in / 192 out)", "device": torch.cuda.get_device_name(),
             "tokens_per_s": b * (li + lt) / statistics.median(times),
             "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20}]
    model.eval()
    for batch in (1, 32):
        ids = x[:batch, :32]
        mask = torch.ones_like(ids)
        generate_motion_ids(model, ids, mask, vocab, 36, 30)  # warm up
        ts, share = [], []
        for _ in range(repeats):
            with ProcessorClock() as clock:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                generate_motion_ids(model, ids, mask, vocab, 36, 30)  # 30 steps = 120 frames
                torch.cuda.synchronize()
                dt = time.perf_counter() - t0
            ts.append(dt / batch)
            share.append(clock.seconds / dt)
        rows.append({"what": f"flan-t5-base shape, generation of 120 frames, batch {batch}",
                     "device": torch.cuda.get_device_name(), "ms_per_clip": 1000 * statistics.median(ts),
                     "processor_share": statistics.median(share)})
    return rows


def speed(args) -> None:
    import subprocess

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dataset, run = out / "synth", out / "run"
    rows = []
    for stage in ("pretrain", "refine"):
        scratch = out / "speed" / stage
        shutil.rmtree(scratch, ignore_errors=True)
        fork_run(run, scratch, dataset)
        if stage == "pretrain":
            shutil.rmtree(scratch / "pretrain")
            shutil.copytree(run / "pretrain" / "text_tokenizer", scratch / "pretrain" / "text_tokenizer")
        cmd = [sys.executable, __file__, "_train", "--dataset", str(dataset), "--run", str(scratch), "--stage", stage,
               "--steps", str(args.train_steps), "--threads", str(args.threads)] + (["--lm", args.lm] if args.lm else [])
        res = subprocess.run(cmd, check=True, capture_output=True, text=True,
                             env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        r = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append({"what": f"tiny preset, {stage} training ({r['steps']} steps)", "device": f"CPU x{args.threads}",
                     "tokens_per_s": r["tokens_per_s"], "peak_mem_mb": r["peak_rss_mb"]})
    rows += generation_speed(run, dataset, "cpu", args.repeats)
    if torch.cuda.is_available():
        rows += gpu_flan_t5_base(args.repeats)
    (out / "speed.json").write_text(json.dumps(rows, indent=1))
    print("| what | device | train tokens/s | peak memory MiB | ms per clip | constrained-decoding share |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        tps = f"{r['tokens_per_s']:.0f}" if "tokens_per_s" in r else "-"
        mem = f"{r['peak_mem_mb']:.0f}" if "peak_mem_mb" in r else "-"
        ms = f"{r['ms_per_clip']:.1f}" if "ms_per_clip" in r else "-"
        share = f"{100 * r['processor_share']:.1f} %" if "processor_share" in r else "-"
        print(f"| {r['what']} | {r['device']} | {tps} | {mem} | {ms} | {share} |")


OLD_RECIPE = dict(buckets=0, code_init=False, uncond=0.0, forced_in_loss=True, lr=1e-3,
                  task_mix={"pretrain": {"span_text": 0.2, "span_motion": 0.2, "t2m": 0.2, "t2m_seconds": 0.1,
                                         "m2t": 0.2, "h2h": 0.1}})  # the tiny preset before the new recipe


def recipe_speed(args) -> None:
    import subprocess

    rows = []
    for rnd in range(args.rounds):
        for recipe in ("before", "tiny"):
            for amp in ("off", "bf16"):
                cmd = [sys.executable, __file__, "_recipe", "--dataset", args.dataset, "--run", args.run,
                       "--recipe", recipe, "--amp", amp, "--steps", str(args.steps), "--seed", str(rnd),
                       "--threads", str(args.threads)]
                res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
    print("| recipe | precision | tokens/s per round | mean | val CE |")
    print("|---|---|---|---|---|")
    for recipe in ("before", "tiny"):
        for amp in ("off", "bf16"):
            rs = [r for r in rows if r["recipe"] == recipe and r["amp"] == amp]
            tps = [r["tokens_per_s"] for r in rs]
            print(f"| {recipe} | {'float32' if amp == 'off' else 'bf16'} | {', '.join(f'{t:.0f}' for t in tps)} | "
                  f"{statistics.mean(tps):.0f} | {', '.join(format(r['val_ce'], '.3f') for r in rs)} |")


def recipe_train(args) -> None:
    """One pretrain of --steps in a fresh run beside RUN (its SHIFT and tokens); prints tokens/s."""
    from clutch_core.lm.config import preset_config
    from clutch_core.lm.train import run_stage
    from clutch_core.shift.tokenize import tokens_dir

    torch.set_num_threads(args.threads)
    src, dataset = Path(args.run), Path(args.dataset)
    run = src.parent / f"{src.name}-speed-{args.recipe}-{args.amp}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    shutil.copytree(src / "shift", run / "shift")
    link = tokens_dir(run, dataset)  # in the dataset's tokens folder: removed with the run below
    if link.is_symlink():
        link.unlink()
    os.symlink(tokens_dir(src, dataset).resolve(), link)
    over = OLD_RECIPE if args.recipe == "before" else {}
    m = run_stage("pretrain", dataset, run, preset_config("tiny", **over, amp=args.amp, pretrain_steps=args.steps,
                                                          seed=args.seed), progress=False)
    shutil.rmtree(run)
    link.unlink()
    print(json.dumps({"recipe": args.recipe, "amp": args.amp, "seed": args.seed, "steps": args.steps,
                      "tokens_per_s": m["train_tokens_per_s"], "train_s": m["train_seconds_this_run"],
                      "val_ce": m["val_ce"]}))


def curve(args) -> None:
    from clutch_core.lm.config import preset_config
    from clutch_core.lm.evaluate import LMEvalConfig, evaluate_lm
    from clutch_core.lm.train import run_stage

    torch.set_num_threads(args.threads)
    run, dataset = Path(args.run), Path(args.dataset)
    out = run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    total = preset_config(args.preset).pretrain_steps
    guidance = preset_config(args.preset).guidance  # every point decoded alike, whatever a checkpoint recorded
    points = json.loads((out / "learning_curve.json").read_text()) if (out / "learning_curve.json").exists() else []
    done = {p["step"] for p in points}
    for cap in [*range(args.every, total, args.every), total]:
        t0 = time.time()
        run_stage("pretrain", dataset, run, preset_config(args.preset, max_steps=cap), progress=False)
        if cap in done:
            continue
        t1 = time.time()
        rep = evaluate_lm(run, dataset, LMEvalConfig(stage="pretrain", repeats=args.repeats, mm_texts=2,
                                                     mm_generations=2, caption_boot=10, guidance=guidance,
                                                     split=args.split, final=args.final))
        g, c = rep["t2m"]["clutch"], rep["m2t"]["clutch"]
        points.append({"step": cap, "guidance": guidance, "t2m_r3": g["r_precision_top3"], "t2m_r3_ci95": g.get("r_precision_top3_ci95"),
                       "fid": g["fid"], "kid": g["kid"], "m2t_r3": c["r_precision_top3"],
                       "real_t2m_r3": rep["t2m"]["real"]["r_precision_top3"],
                       "real_m2t_r3": rep["m2t"]["real"]["r_precision_top3"],
                       "train_s": round(t1 - t0, 1), "eval_s": round(time.time() - t1, 1)})
        print(json.dumps(points[-1]), flush=True)
        (out / "learning_curve.json").write_text(json.dumps(points, indent=1))
    plot_curve(points, out / "learning_curve.png", args.preset)


def plot_curve(points: list[dict], path: Path, preset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(steps, [p["t2m_r3"] for p in points], "o-", label="text-to-motion R@3")
    a.plot(steps, [p["m2t_r3"] for p in points], "s-", label="motion-to-text R@3")
    a.axhline(points[-1]["real_t2m_r3"], ls="--", c="grey", lw=1, label="real motion")
    a.axhline(3 / 32, ls=":", c="k", lw=1, label="chance (3/32)")
    a.set(xlabel="pretrain step", ylabel="R@3 (higher is better)", ylim=(0, 1), title=f"{preset}: retrieval")
    a.legend(fontsize=8)
    b.plot(steps, [p["fid"] for p in points], "o-", c="C3", label="FID")
    b.set(xlabel="pretrain step", ylabel="FID (lower is better)", title=f"{preset}: realism")
    k = b.twinx()
    k.plot(steps, [p["kid"] for p in points], "s--", c="C4", label="KID")
    k.set_ylabel("KID (lower is better)")
    b.legend(handles=b.get_lines() + k.get_lines(), fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def decoding(args) -> None:
    """Decoding settings swept on trained runs, no retraining: each (run, guidance, rerank) scored by the
    dataset's evaluator on the split given (val by default), one JSON line each (and --json-out)."""
    from clutch_core.lm.evaluate import LMEvalConfig, evaluate_lm

    torch.set_num_threads(args.threads)
    rows = []
    for run in args.runs.split(","):
        for g in [float(x) for x in args.guidance.split(",")] if args.guidance else [None]:
            for k in [int(x) for x in args.rerank.split(",")]:
                t0 = time.time()
                rep = evaluate_lm(Path(run), Path(args.dataset), LMEvalConfig(
                    repeats=args.repeats, mm_texts=2, mm_generations=2, caption_boot=10, guidance=g, rerank=k,
                    caption_rerank=k,
                    split=args.split, final=args.final, parts=tuple(args.parts.split(","))))
                row = {"run": run, "guidance": rep["guidance"], "rerank": k, "eval_set": rep["eval_set"],
                       "seconds": round(time.time() - t0, 1)}
                if "t2m" in rep:
                    t = rep["t2m"]
                    row.update(given_r3=t["clutch"]["r_precision_top3"], free_r3=t["clutch_free"]["r_precision_top3"],
                               given_fid=t["clutch"]["fid"], free_fid=t["clutch_free"]["fid"],
                               nearest_r3=t["nearest_caption_motion"]["r_precision_top3"],
                               real_r3=t["real"]["r_precision_top3"])
                if "m2t" in rep:
                    c = rep["m2t"]
                    row.update(m2t_r3=c["clutch"]["r_precision_top3"], bleu_4=c["clutch"]["bleu_4"],
                               rouge_l=c["clutch"]["rouge_l"])
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=1))


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """--split (default val) and --final: every sweep here is scored on val; test only when told --final."""
    p.add_argument("--split", choices=["train", "val", "test", "all"], default=None,
                   help="evaluation clips (default: val; test only with --final)")
    p.add_argument("--final", action="store_true", help="the final reading: the test split may be read")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare")
    pr.add_argument("--out", required=True)
    pr.add_argument("--synth", type=int, default=1200)
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--shift-steps", type=int, default=600)
    pr.add_argument("--seeds", default="0,1,2")
    pr.add_argument("--lm", help="JSON of LMConfig overrides, e.g. '{\"pretrain_steps\": 800}'")
    pr.add_argument("--threads", type=int, default=1)
    pr.add_argument("--ablation-only", action="store_true",
                    help="only the ablation runs (pretrain must be done), e.g. in a second process")
    pr.add_argument("--reverse", action="store_true", help="ablation runs in reverse order")
    q = sub.add_parser("quality")
    q.add_argument("--out", required=True)
    q.add_argument("--repeats", type=int, default=10)
    q.add_argument("--mm-texts", type=int, default=32)
    q.add_argument("--mm-generations", type=int, default=10)
    q.add_argument("--skip-main", action="store_true", help="only the refinement ablation")
    q.add_argument("--skip-ablation", action="store_true", help="only the main run")
    q.add_argument("--threads", type=int, default=1)
    add_split_arguments(q)
    sp = sub.add_parser("speed")
    sp.add_argument("--out", required=True, help="the folder `prepare` wrote")
    sp.add_argument("--train-steps", type=int, default=30)
    sp.add_argument("--repeats", type=int, default=3)
    sp.add_argument("--lm", help="JSON of LMConfig overrides")
    sp.add_argument("--threads", type=int, default=2)
    cu = sub.add_parser("curve")
    cu.add_argument("--dataset", required=True)
    cu.add_argument("--run", required=True, help="a run folder with its shift and tokenize stages done")
    cu.add_argument("--preset", default="small")
    cu.add_argument("--every", type=int, default=400)
    cu.add_argument("--repeats", type=int, default=5)
    cu.add_argument("--threads", type=int, default=2)
    add_split_arguments(cu)
    rs = sub.add_parser("recipe-speed")
    rs.add_argument("--dataset", required=True)
    rs.add_argument("--run", required=True, help="a run folder with its shift and tokenize stages done")
    rs.add_argument("--steps", type=int, default=60)
    rs.add_argument("--rounds", type=int, default=2)
    rs.add_argument("--threads", type=int, default=2)
    de = sub.add_parser("decoding", help="sweep decoding settings (guidance, rerank) on trained runs")
    de.add_argument("--dataset", required=True)
    de.add_argument("--runs", required=True, help="comma-separated run folders (their LM stages trained)")
    de.add_argument("--rerank", default="1", help="comma-separated candidates per text (1: no rerank)")
    de.add_argument("--guidance", help="comma-separated guidance scales (default: each run's own)")
    de.add_argument("--parts", default="t2m", help="t2m, m2t or t2m,m2t")
    de.add_argument("--repeats", type=int, default=5)
    de.add_argument("--threads", type=int, default=2)
    de.add_argument("--json-out")
    add_split_arguments(de)
    rt = sub.add_parser("_recipe", help=argparse.SUPPRESS)
    for a in ("--dataset", "--run", "--recipe", "--amp"):
        rt.add_argument(a, required=True)
    rt.add_argument("--steps", type=int, required=True)
    rt.add_argument("--seed", type=int, default=0)
    rt.add_argument("--threads", type=int, default=2)
    tr = sub.add_parser("_train", help=argparse.SUPPRESS)
    for a in ("--dataset", "--run", "--stage"):
        tr.add_argument(a, required=True)
    tr.add_argument("--steps", type=int, required=True)
    tr.add_argument("--threads", type=int, default=2)
    tr.add_argument("--lm")
    args = p.parse_args(argv)
    if hasattr(args, "final"):  # tuning reads val; test once, at the end, when told
        from clutch_core.eval.data import TestSplitRefused, check_split

        try:
            check_split(args.split, args.final)
        except TestSplitRefused as e:
            p.error(str(e))
    {"prepare": prepare, "quality": quality, "speed": speed, "curve": curve, "_train": train_speed,
     "recipe-speed": recipe_speed, "_recipe": recipe_train,
     "decoding": decoding}[args.cmd](args)


if __name__ == "__main__":
    main()
