"""`clutch eval`, `clutch eval captions`, `clutch render`, `clutch browse`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from clutch_core.cli import CliError


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clutch eval",
        description="Evaluate a training run: text-to-motion metrics (R-precision, FID, MM-Dist, Diversity, "
        "MultiModality) for real motion and every model the run holds, reconstruction errors of its "
        "tokenizer, report.md + metrics.json + PNG figures. Trains the evaluator on DATASET's train split "
        "when RUN/evaluator/ does not exist yet, and saves it there.",
    )
    p.add_argument("run", type=Path, help="run folder (RUN/shift/, RUN/evaluator/ ... are used when present)")
    p.add_argument("--dataset", type=Path, required=True, help="3D-HIW dataset folder (DATASET/shards/*.parquet)")
    p.add_argument("--out", type=Path, required=True, help="report folder to write")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"],
                   help="evaluation clips (default test; falls back to val+test, then all, below 32 clips)")
    p.add_argument("--repeats", type=int, default=20, help="repeats for mean and 95%% CI (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", nargs="+", default=None, help="only these rows (default: every row the run supports)")
    p.add_argument("--retrain-evaluator", action="store_true", help="train a new evaluator even if RUN/evaluator/ exists")
    p.add_argument("--text-encoder", choices=["minilm", "glove"], default=None,
                   help="evaluator text side when training one (default minilm; glove when --glove is given)")
    p.add_argument("--text-model", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--glove", default=None, help="GloVe .txt file for the GloVe + BiGRU text encoder")
    p.add_argument("--evaluator-epochs", type=int, default=None, help="evaluator training epochs (default 40)")
    return p


def _captions_parser() -> argparse.ArgumentParser:
    from clutch_core.eval.captions import REF_SEPARATOR

    p = argparse.ArgumentParser(
        prog="clutch eval captions",
        description="Captioning metrics (BLEU-1/4 nltk, ROUGE-L rouge-score, CIDEr pycocoevalcap, BERTScore "
        "bert-score with the offline MiniLM) of HYPS against REFS; prints JSON with bleu_1, bleu_4, rouge_l, "
        "cider, bertscore_f1.",
    )
    p.add_argument("--refs", type=Path, required=True,
                   help=f"references, one line per hypothesis; several references on a line separated by '{REF_SEPARATOR.strip()}'")
    p.add_argument("--hyps", type=Path, required=True, help="hypotheses, one caption per line")
    p.add_argument("--bert-model", default=None, help="local model folder for BERTScore (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--bert-layers", type=int, default=None, help="BERTScore layer (default 6)")
    p.add_argument("--no-bertscore", action="store_true", help="skip BERTScore (the slow one)")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    return p


def eval_handler(args) -> int:
    if args.target == "captions":
        return captions_handler(_captions_parser().parse_args(args.rest))
    return run_handler(_run_parser().parse_args([args.target, *args.rest]))


def run_handler(a) -> int:
    from clutch_core.eval.evaluator import EvaluatorConfig
    from clutch_core.eval.report import ReportConfig, write_report
    from clutch_core.eval.rows import ROWS

    if a.rows:
        unknown = set(a.rows) - set(ROWS)
        if unknown:
            raise CliError(f"unknown row(s) {sorted(unknown)}; known: {sorted(ROWS)}")
    ecfg = EvaluatorConfig(text_encoder=a.text_encoder or ("glove" if a.glove else "minilm"), text_model=a.text_model, glove=a.glove)
    if a.evaluator_epochs:
        ecfg.epochs = a.evaluator_epochs
    if ecfg.text_encoder == "glove" and not a.glove:
        raise CliError("--text-encoder glove needs --glove FILE.txt")
    cfg = ReportConfig(split=a.split, repeats=a.repeats, seed=a.seed, rows=a.rows,
                       retrain_evaluator=a.retrain_evaluator, evaluator=ecfg)
    try:
        table = write_report(a.run, a.dataset, a.out, cfg)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    keys = ("r_precision_top3", "fid", "mpjpe_mm")
    for name, row in table.items():
        print(f"{name:>16}: " + "  ".join(f"{k}={row[k]:.3f}" for k in keys if k in row))
    print(f"report: {a.out / 'report.md'}")
    return 0


def captions_handler(a) -> int:
    from clutch_core.eval.captions import CaptionConfig, caption_metrics, read_caption_files

    try:
        refs, hyps = read_caption_files(a.refs, a.hyps)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    cfg = CaptionConfig(bert_model=a.bert_model, with_bertscore=not a.no_bertscore)
    if a.bert_layers:
        cfg.bert_layers = a.bert_layers
    if cfg.bert_model and not Path(cfg.bert_model).is_dir():
        raise CliError(f"--bert-model {cfg.bert_model}: no such folder")
    out = json.dumps(caption_metrics(refs, hyps, cfg), indent=1)
    print(out)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(out + "\n")
    return 0


def render_handler(a) -> int:
    from clutch_core.render.render import RenderConfig, render_clip, render_motion_file

    if (a.dataset is None) == (a.motion is None):
        raise CliError("give either DATASET --clip-id ID or --motion FILE")
    cfg = RenderConfig(width=a.size, show_source=not a.no_source)
    try:
        if a.motion is not None:
            out = render_motion_file(a.motion, a.out, cfg, caption=a.caption)
        else:
            if not a.clip_id:
                raise CliError("DATASET needs --clip-id ID")
            out = render_clip(a.dataset, a.clip_id, a.out, cfg)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CliError(str(e).strip('"')) from e
    print(out)
    return 0


def browse_handler(a) -> int:
    from clutch_core.render.browse import build_site

    try:
        index = build_site(a.dataset, a.out, limit=a.limit, split=a.split, size=a.size)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    print(index)
    return 0


def register(sub) -> None:
    run_help = _run_parser().format_help()
    cap_help = _captions_parser().format_help()
    p = sub.add_parser(
        "eval", help="evaluate a run (clutch eval RUN ...) or captions (clutch eval captions ...)",
        description="Two forms:\n\n" + run_help + "\n" + cap_help,
        formatter_class=argparse.RawDescriptionHelpFormatter, usage="clutch eval RUN --dataset D --out REPORT [...]\n"
        "       clutch eval captions --refs REFS.txt --hyps HYPS.txt [...]",
    )
    p.add_argument("target", metavar="RUN|captions", help="a run folder, or the word 'captions'")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=eval_handler)

    r = sub.add_parser(
        "render", help="render a clip or a motion file to MP4/GIF",
        description="Left: source video frames with the 2D keypoints (when the source video is readable); "
        "right: both 3D hands (fixed camera, ground grid, left blue / right orange); caption as subtitle. "
        "Output format from the suffix: .mp4 (PyAV, libx264 or mpeg4) or .gif (Pillow).",
    )
    r.add_argument("dataset", type=Path, nargs="?", help="dataset folder (with --clip-id)")
    r.add_argument("--clip-id", help="clip to render")
    r.add_argument("--motion", type=Path, help=".npy [T,198] or .npz with 'motion' [T,198] and optional 'presence' [T,2]")
    r.add_argument("--caption", default=None, help="subtitle for --motion (default: none, or 'caption' in the .npz)")
    r.add_argument("--out", type=Path, required=True, help="clip.mp4 or clip.gif")
    r.add_argument("--size", type=int, default=480, help="panel height in pixels (default 480)")
    r.add_argument("--no-source", action="store_true", help="only the 3D panel, even when the video is readable")
    r.set_defaults(func=render_handler)

    b = sub.add_parser(
        "browse", help="write a static HTML browser of a dataset",
        description="SITE/index.html: clip GIFs with their captions by source, filters by caption source and "
        "word; plain JavaScript, no network. Open it with any browser (file:// works).",
    )
    b.add_argument("dataset", type=Path, help="dataset folder")
    b.add_argument("--out", type=Path, required=True, help="site folder to write")
    b.add_argument("--limit", type=int, default=50, help="clips to include (default 50)")
    b.add_argument("--split", choices=["train", "val", "test"], default=None, help="only this split")
    b.add_argument("--size", type=int, default=160, help="GIF panel height (default 160)")
    b.set_defaults(func=browse_handler)


