"""Language-model commands: `clutch generate` (text -> motion) and `clutch caption` (motion -> text).

Both read the newest finished language-model stage of RUN (instruct, else refine, else
pretrain) and the run's tokenizer (RUN/shift/). Bad input (empty or over-long text, a motion
file of the wrong shape or with non-finite values, a run with no trained language model, a
tokenizer/LM mismatch) is a usage error: exit 2 with a message naming the file or argument.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from clutch_cli import CliError

OUT_KINDS = (".npz", ".parquet", ".mp4")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate", help="generate hand motion from text with a trained CLUTCH run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Text -> motion with the language model of RUN, decoded to the 198-number frames through "
                    "the run's SHIFT tokenizer. --out decides the format: .npz (arrays motion [T, 198], presence "
                    "[T, 2], caption), .parquet (one row per sample: text, sample, seed, num_frames, motion, "
                    "presence) or .mp4 (rendered skeleton video with the text as subtitle). With --samples N > 1, "
                    ".npz and .mp4 get one file per sample (NAME_0.npz, NAME_1.npz, ...).",
        epilog='example: clutch generate runs/r1 "the left hand waves" --out wave.npz --seconds 2')
    p.add_argument("run", type=Path, help="run folder (after `clutch train ... --stages ...,pretrain,...`)")
    p.add_argument("text", help="what the hands should do")
    p.add_argument("--out", type=Path, required=True, help=f"output file: {', '.join(OUT_KINDS)}")
    p.add_argument("--seconds", type=float, help="length in seconds (0 < S <= 9.6); default: the model ends it")
    p.add_argument("--samples", type=int, default=1, help="motions to sample (default 1: greedy decoding)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (with --samples > 1)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens (default: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
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
    c.add_argument("--stage", choices=["pretrain", "refine", "instruct"],
                   help="language-model stage to use (default: the newest finished one)")
    c.set_defaults(func=_caption)


def _generate(a) -> int:
    from clutch_core.lm.api import generate
    from clutch_core.usage import check_generate, check_run

    check_run(a.run)
    kind = a.out.suffix.lower()
    if kind not in OUT_KINDS:
        raise CliError(f"--out {a.out}: the name must end in one of {', '.join(OUT_KINDS)}")
    try:
        check_generate(a.run, a.text, a.seconds, a.samples, a.stage)
        motions = generate(a.run, [a.text], seconds=a.seconds, samples=a.samples, seed=a.seed,
                           temperature=a.temperature, top_k=a.top_k, stage=a.stage)[0]
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    a.out.parent.mkdir(parents=True, exist_ok=True)
    names = [a.out] if len(motions) == 1 else [a.out.with_name(f"{a.out.stem}_{k}{a.out.suffix}")
                                               for k in range(len(motions))]
    if kind == ".parquet":
        _write_parquet(a.out, a.text, a.seed, motions)
        names = [a.out]
    else:
        for m, name in zip(motions, names):
            if kind == ".npz":
                from clutch_core.render.render import save_motion_file

                save_motion_file(name, m.motion, m.presence, a.text)
            else:
                from clutch_core.render.render import compose_frames, motion_joints, write_video

                write_video(compose_frames(motion_joints(m.motion), m.presence, a.text), name)
    for m, name in zip(motions, names if kind != ".parquet" else [a.out] * len(motions)):
        print(f"{name}: {m.motion.shape[0]} frames ({m.motion.shape[0] / 15:.2f} s), "
              f"hands present {m.presence.mean(0).round(2).tolist()} (left, right)")
    return 0


def _write_parquet(path: Path, text: str, seed: int, motions) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from layout import FRAME_DIM

    frame = pa.list_(pa.float32(), FRAME_DIM)
    table = pa.table({
        "text": pa.array([text] * len(motions)),
        "sample": pa.array(range(len(motions)), pa.int32()),
        "seed": pa.array([seed] * len(motions), pa.int64()),
        "num_frames": pa.array([m.motion.shape[0] for m in motions], pa.int32()),
        "motion": pa.array([list(m.motion) for m in motions], pa.list_(frame)),
        "presence": pa.array([m.presence.tolist() for m in motions], pa.list_(pa.list_(pa.bool_(), 2))),
    })
    pq.write_table(table, path)


def _caption(a) -> int:
    from clutch_core.lm.api import caption
    from clutch_core.usage import check_dataset, check_run

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
        check_dataset(a.dataset)
        from storage.reader import ClipReader

        try:
            rows = ClipReader(a.dataset).read_rows([a.clip_id])
        except KeyError:
            rows = []
        if not rows:
            raise CliError(f"--clip-id {a.clip_id}: no such clip in {a.dataset}")
        motion, presence = rows[0]["motion"], rows[0]["presence"]
    try:
        print(caption(a.run, motion, presence, num_beams=a.beams, max_length=a.max_length, stage=a.stage))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None
    return 0
