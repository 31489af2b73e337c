"""Language-model commands: `clutch generate` (text -> motion) and `clutch caption` (motion -> text).

Both read the newest finished language-model stage of RUN (instruct, else refine, else
pretrain) and the run's tokenizer (RUN/shift/). Bad input (empty or over-long text, a motion
file of the wrong shape or with non-finite values, a run with no trained language model, a
tokenizer/LM mismatch) is a usage error: exit 2 with a message naming the file or argument.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


from clutch_cli import CliError, require_dataset

OUT_KINDS = (".npz", ".parquet", ".mp4")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate hand motion from text with a trained CLUTCH run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Text -> motion with the language model of RUN, decoded to the 198-number frames through "
                    "the run's SHIFT tokenizer. --out decides the format: .npz (arrays motion [T, 198], presence "
                    "[T, 2], caption), .parquet (one row per text and sample: text, sample, seed, num_frames, "
                    "motion, presence) or .mp4 (rendered skeleton video with the text as subtitle). Several TEXTs "
                    "or --samples N > 1: .npz and .mp4 get one file each (NAME_0.npz, NAME_1.npz, ...; "
                    "NAME_<text>_<sample> for both).\n\n"
                    "Decoding: greedy by default (the most likely motion: the same output for the same text, "
                    "whatever the seed). --sample, --samples N > 1, --temperature, --top-k or --seed switch to "
                    "sampling, which the seed makes repeatable.",
        epilog='examples: clutch generate runs/r1 "the left hand waves" --out wave.npz --seconds 2\n'
               '          clutch generate runs/r1 "the left hand waves" --out wave.npz --samples 3 --seed 1')
    p.add_argument("run", type=Path, help="run folder (after `clutch train ... --stages ...,pretrain,...`)")
    p.add_argument("text", nargs="+", help="what the hands should do (several texts: one motion each)")
    p.add_argument("--out", type=Path, required=True, help=f"output file: {', '.join(OUT_KINDS)}")
    p.add_argument("--seconds", type=float, help="length in seconds (0 < S <= 9.6); default: the model ends it")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--samples", type=int, default=1, help="motions per text (default 1; more means sampling)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0; implies sampling)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens (default: all; implies sampling)")
    p.add_argument("--seed", type=int, help="random seed of the sampling (default 0; implies sampling)")
    p.add_argument("--guidance", type=float,
                   help="classifier-free guidance scale: how much the text outweighs the model's text-free guess "
                        "(default: the one the run was trained for, see docs/lm.md; 1: none)")
    p.add_argument("--rerank", type=int, metavar="K",
                   help="draw K candidate motions per text (the greedy one or the samples asked for, plus sampled "
                        "ones) and keep those the model's own motion-to-text reads back as the text (default: the "
                        "run's, see docs/lm.md; 1: off)")
    p.add_argument("--stage", choices=["pretrain", "refine", "instruct"],
                   help="language-model stage to use (default: the newest finished one)")
    p.set_defaults(func=_generate)

    c = sub.add_parser(
        "caption", help="describe hand motion in words with a trained CLUTCH run",
        description="Motion -> text with the language model of RUN. The motion is a file (.npz with motion "
                    "[T, 198] and optional presence [T, 2], or .npy [T, 198]) or a clip of a dataset. Prints "
                    "the caption.",
        epilog="examples: clutch caption runs/r1 --motion wave.npz\n"
               "          clutch caption runs/r1 --dataset D --clip-id CLIP")
    c.add_argument("run", type=Path, help="run folder")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--motion", type=Path, help="motion file (.npz or .npy)")
    src.add_argument("--dataset", type=Path, help="dataset folder (with --clip-id)")
    c.add_argument("--clip-id", help="clip of --dataset to describe")
    c.add_argument("--beams", type=int, default=1, help="beam search width (default 1: greedy)")
    c.add_argument("--max-length", type=int, default=48, help="longest caption in tokens (default 48)")
    c.add_argument("--guidance", type=float,
                   help="classifier-free guidance scale: how much the motion outweighs the model's motion-free guess "
                        "(default: the one the run was trained for; 1: none)")
    c.add_argument("--rerank", type=int, default=1, metavar="K",
                   help="draw K captions (the greedy one and K-1 sampled) and keep the one under which the model's own "
                        "text-to-motion finds the motion most likely (default 1: off; it lowered R@3 on the tiny runs)")
    c.add_argument("--stage", choices=["pretrain", "refine", "instruct"],
                   help="language-model stage to use (default: the newest finished one)")
    c.set_defaults(func=_caption)


def _generate(a) -> int:
    from clutch_core.lm.api import generate, generation_warnings
    from clutch_core.usage import check_generate, check_run

    check_run(a.run)
    kind = a.out.suffix.lower()
    if kind not in OUT_KINDS:
        raise CliError(f"--out {a.out}: the name must end in one of {', '.join(OUT_KINDS)}")
    for text in a.text:
        check_generate(a.run, text, a.seconds, a.samples, a.stage)
    sample = a.sample or a.samples > 1 or a.temperature is not None or a.top_k is not None or a.seed is not None
    seed, temperature = a.seed or 0, 1.0 if a.temperature is None else a.temperature
    print("decoding: " + (f"sampling (temperature {temperature:g}, top-k {a.top_k or 'all'}, seed {seed})"
                          if sample else "greedy (--sample or --seed to sample)"), file=sys.stderr)
    try:
        motions = generate(a.run, a.text, seconds=a.seconds, samples=a.samples, seed=seed, do_sample=sample,
                           temperature=temperature, top_k=a.top_k, stage=a.stage, guidance=a.guidance,
                           rerank=a.rerank)
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    for w in generation_warnings(a.text, motions):
        print(f"clutch generate: warning: {w}", file=sys.stderr)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if kind == ".parquet":
        _write_parquet(a.out, a.text, seed, motions)
    for (text, m, name) in _outputs(a.out, a.text, motions):
        if kind == ".npz":
            from clutch_core.render.render import save_motion_file

            save_motion_file(name, m.motion, m.presence, text)
        elif kind == ".mp4":
            from clutch_core.render.render import compose_frames, motion_joints, write_video

            write_video(compose_frames(motion_joints(m.motion), m.presence, text), name)
        print(f"{name}: {m.motion.shape[0]} frames ({m.motion.shape[0] / 15:.2f} s), "
              f"hands present {m.presence.mean(0).round(2).tolist()} (left, right)")
    return 0


def _outputs(out: Path, texts: list[str], motions: list[list]):
    """(text, motion, file name) per generated motion: OUT itself, or OUT_<i> / OUT_<text>_<sample>."""
    many_t, many_s = len(texts) > 1, len(motions[0]) > 1
    for i, (text, ms) in enumerate(zip(texts, motions)):
        for k, m in enumerate(ms):
            tag = "_".join(str(x) for x, many in ((i, many_t), (k, many_s)) if many)
            name = out if out.suffix == ".parquet" or not tag else out.with_name(f"{out.stem}_{tag}{out.suffix}")
            yield text, m, name


def _write_parquet(path: Path, texts: list[str], seed: int, motions: list[list]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from layout import FRAME_DIM

    rows = [(t, k, m) for t, ms in zip(texts, motions) for k, m in enumerate(ms)]
    frame = pa.list_(pa.float32(), FRAME_DIM)
    table = pa.table({
        "text": pa.array([t for t, _, _ in rows]),
        "sample": pa.array([k for _, k, _ in rows], pa.int32()),
        "seed": pa.array([seed] * len(rows), pa.int64()),
        "num_frames": pa.array([m.motion.shape[0] for _, _, m in rows], pa.int32()),
        "motion": pa.array([list(m.motion) for _, _, m in rows], pa.list_(frame)),
        "presence": pa.array([m.presence.tolist() for _, _, m in rows], pa.list_(pa.list_(pa.bool_(), 2))),
    })
    pq.write_table(table, path)


def _caption(a) -> int:
    from clutch_core.lm.api import caption
    from clutch_core.usage import check_run

    check_run(a.run)
    if a.motion is not None:
        from clutch_core.render.render import load_motion_file

        try:
            motion, presence, _ = load_motion_file(a.motion)
        except (ValueError, FileNotFoundError, OSError) as e:
            raise CliError(f"--motion {e}") from None
    else:
        if not a.clip_id:
            raise CliError("--dataset needs --clip-id CLIP")
        require_dataset(a.dataset, "--dataset")
        from storage.reader import ClipReader

        try:
            rows = ClipReader(a.dataset).read_rows([a.clip_id])
        except KeyError:
            rows = []
        if not rows:
            raise CliError(f"--clip-id {a.clip_id}: no such clip in {a.dataset}")
        motion, presence = rows[0]["motion"], rows[0]["presence"]
    try:
        print(caption(a.run, motion, presence, num_beams=a.beams, max_length=a.max_length, stage=a.stage,
                      guidance=a.guidance, rerank=a.rerank))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    return 0
