"""`clutch eval`, `clutch eval captions`, `clutch render`, `clutch browse`."""
from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

from clutch_cli import CliError, add_progress_argument, require_dataset


RUN_OPTIONS = ("dataset", "split", "repeats", "seed", "rows", "retrain_evaluator", "text_encoder", "text_model",
               "glove", "evaluator_epochs", "evaluator", "guidance", "rerank", "final")
CAPTION_OPTIONS = ("refs", "hyps", "bert_model", "bert_layers", "no_bertscore")


def _add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """One parser for both forms, so options may come before or after RUN."""
    from clutch_core.eval.captions import REF_SEPARATOR

    p.add_argument("target", metavar="RUN|captions", help="a run folder, or the word 'captions'")
    add_progress_argument(p)
    p.add_argument("--out", type=Path, default=None,
                   help="RUN form: report folder to write (required); captions form: also write the JSON here")
    r = p.add_argument_group("clutch eval RUN --dataset DATASET --out REPORT")
    r.add_argument("--dataset", type=Path, help="3D-HIW dataset folder (DATASET/shards/*.parquet)")
    r.add_argument("--split", default=None, choices=["train", "val", "test", "all"],
                   help="evaluation clips (default: val; with --final: test, or val+test with a warning when test "
                   "holds fewer than 32 clips; a split given here is used as given, and refused with the counts "
                   "when it is too small; test only with --final)")
    r.add_argument("--final", action="store_true", default=None,
                   help="the final reading: the test split may be read (once per preset and seed, after every "
                   "choice was made on val)")
    r.add_argument("--repeats", type=int, default=None,
                   help="repeats (caption draws, pool shuffles) for the mean and its 95%% interval (default 20)")
    r.add_argument("--seed", type=int, default=None, help="random seed of the repeats (default 0)")
    r.add_argument("--guidance", type=float, default=None, metavar="S",
                   help="classifier-free guidance scale of the language model's decoding in both directions "
                        "(default: the scale the run was trained for, recorded with its model; 1 turns it off)")
    r.add_argument("--rerank", type=int, default=None, metavar="K",
                   help="text-to-motion candidates per caption reranked by the model's own motion-to-text "
                        "(default: the run's, recorded with its model; 1 turns it off)")
    r.add_argument("--rows", nargs="+", default=None, help="only these rows (default: every row the run supports: real, tokenizer_recon, and with a "
                        "trained language model clutch (text-to-motion) and m2t (motion-to-text))")
    r.add_argument("--evaluator", type=Path, default=None, metavar="PATH",
                   help="evaluator folder to use, or to train into when empty (default: DATASET/evaluators/<hash>/, "
                   "one per dataset and settings, shared by every run)")
    r.add_argument("--retrain-evaluator", action="store_true", default=None,
                   help="train the evaluator again even if it exists")
    r.add_argument("--text-encoder", choices=["minilm", "glove"], default=None,
                   help="evaluator text side when training one (default minilm; glove when --glove is given)")
    r.add_argument("--text-model", default=None, help="sentence-transformers folder (default: packaged all-MiniLM-L6-v2)")
    r.add_argument("--glove", default=None, help="GloVe .txt file for the GloVe + BiGRU text encoder")
    r.add_argument("--evaluator-epochs", type=int, default=None, help="evaluator training epochs (default 40)")
    c = p.add_argument_group("clutch eval captions --refs REFS.txt --hyps HYPS.txt")
    c.add_argument("--refs", type=Path, default=None,
                   help=f"references, one line per hypothesis; several on a line separated by '{REF_SEPARATOR.strip()}'")
    c.add_argument("--hyps", type=Path, default=None, help="hypotheses, one caption per line")
    c.add_argument("--bertscore-model", "--bert-model", dest="bert_model", default=None, metavar="PATH",
                   help="local model folder for BERTScore, e.g. a roberta-large download (the literature's: layer 17, "
                   "rescaled with bert-score's baseline, key bertscore_f1). Default: the packaged all-MiniLM-L6-v2, "
                   "key bertscore_f1_minilm (not comparable with published numbers)")
    c.add_argument("--bert-layers", type=int, default=None,
                   help="BERTScore layer (default: bert-score's choice for the model; 6 for MiniLM)")
    c.add_argument("--no-bertscore", action="store_true", default=None, help="skip BERTScore (the slow one)")


def _reject(a, names: tuple[str, ...], form: str) -> None:
    given = [n for n in names if getattr(a, n) is not None]
    if given:
        raise CliError(f"--{given[0].replace('_', '-')} is not an option of `{form}`")


def eval_handler(a) -> int:
    if a.target == "captions":
        _reject(a, RUN_OPTIONS, "clutch eval captions")
        if a.refs is None or a.hyps is None:
            raise CliError("`clutch eval captions` needs --refs REFS.txt and --hyps HYPS.txt")
        return captions_handler(a)
    _reject(a, CAPTION_OPTIONS, "clutch eval RUN")
    if a.dataset is None or a.out is None:
        raise CliError("`clutch eval RUN` needs --dataset DATASET and --out REPORT")
    return run_handler(a)


def check_run(run: Path) -> None:
    """A run folder holds the output of at least one train-clutch stage (RUN/shift/, RUN/pretrain/, ...)."""
    from flows.stages import STAGES

    if not run.is_dir():
        raise CliError(f"RUN {run}: no such folder; train a run with `clutch train DATASET --out {run}`")
    outputs = [n for n in STAGES if n != "tokenize"]  # tokenize writes into the dataset, not the run
    if not any((run / name).is_dir() for name in outputs):
        raise CliError(f"RUN {run}: not a run folder (none of {', '.join(n + '/' for n in outputs)} inside); "
                       f"train one with `clutch train DATASET --out {run}`")


def run_handler(a) -> int:
    from clutch_core.eval.evaluator_model import EvaluatorConfig
    from clutch_core.eval.report import ReportConfig, write_report
    from clutch_core.eval.rows import ROWS

    if a.rows:
        from clutch_core.eval.report import LM_ROWS

        unknown = set(a.rows) - set(ROWS) - set(LM_ROWS)
        if unknown:
            raise CliError(f"unknown row(s) {sorted(unknown)}; known: {sorted(ROWS) + list(LM_ROWS)}")
    # every argument checked before anything is created
    from clutch_core.eval.data import TestSplitRefused, check_split

    try:
        check_split(a.split, bool(a.final))
    except TestSplitRefused as e:
        raise CliError(str(e)) from None
    require_dataset(a.dataset, "--dataset")
    check_run(Path(a.target))
    if a.out.exists() and not a.out.is_dir():
        raise CliError(f"--out {a.out}: exists and is not a folder")
    ecfg = EvaluatorConfig(text_encoder=a.text_encoder or ("glove" if a.glove else "minilm"), text_model=a.text_model, glove=a.glove)
    if a.evaluator_epochs:
        ecfg.epochs = a.evaluator_epochs
    if ecfg.text_encoder == "glove" and not a.glove:
        raise CliError("--text-encoder glove needs --glove FILE.txt")
    if a.evaluator is not None and a.evaluator.exists() and not a.evaluator.is_dir():
        raise CliError(f"--evaluator {a.evaluator}: not a folder")
    cfg = ReportConfig(split=a.split, final=bool(a.final), repeats=a.repeats or ReportConfig.repeats, seed=a.seed or 0, rows=a.rows,
                       retrain_evaluator=bool(a.retrain_evaluator), evaluator=ecfg, evaluator_path=a.evaluator,
                       progress=a.progress, guidance=a.guidance, rerank=a.rerank)
    if cfg.repeats < 1:
        raise CliError("--repeats must be at least 1")
    from clutch_core.lm.api import check_guidance

    if a.rerank is not None and a.rerank < 0:
        raise CliError(f"--rerank must be >= 0 (candidates per caption; 0 or 1: off), got {a.rerank}")
    try:
        check_guidance(cfg.guidance)  # before the evaluator trains
    except ValueError as e:
        raise CliError(f"--guidance: {e}") from None
    try:
        table = write_report(Path(a.target), a.dataset, a.out, cfg)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    keys = ("r_precision_top3", "fid", "kid", "mpjpe_mm")
    for name, row in table.items():
        print(f"{name:>16}: " + "  ".join(f"{k}={row[k]:.3f}" for k in keys if row.get(k) is not None))
    print(f"evaluator: {next(iter(table.values()))['evaluator_hash']}")
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
    from clutch_core.usage import check_mano_dir

    check_mano_dir(a.mano_dir)
    cfg = RenderConfig(width=a.size, show_source=not a.no_source, mano_dir=a.mano_dir)
    try:
        if a.motion is not None:
            out = render_motion_file(a.motion, a.out, cfg, caption=a.caption)
        else:
            if not a.clip_id:
                raise CliError("DATASET needs --clip-id ID")
            out = render_clip(require_dataset(a.dataset), a.clip_id, a.out, cfg)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CliError(str(e).strip('"')) from e
    print(out)
    return 0


def browse_handler(a) -> int:
    from clutch_core.render.browse import build_site

    require_dataset(a.dataset)
    try:
        index = build_site(a.dataset, a.out, limit=a.limit, split=a.split, size=a.size, progress=a.progress)
    except (FileNotFoundError, ValueError) as e:
        raise CliError(str(e)) from e
    print(index)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a run (clutch eval RUN ...) or captions (clutch eval captions ...)",
        formatter_class=argparse.RawDescriptionHelpFormatter, usage="clutch eval RUN --dataset DATASET --out REPORT [options]\n"
        "       clutch eval captions --refs REFS.txt --hyps HYPS.txt [options]",
        description="\n\n".join(textwrap.fill(t, 88) for t in (
            "clutch eval RUN: text-to-motion metrics (R-precision, FID, MM-Dist, Diversity, MultiModality) "
            "for real motion and every model the run holds, reconstruction errors of its tokenizer; writes "
            "REPORT/report.md, metrics.json and PNG figures. The evaluator is the dataset's: trained once on "
            "DATASET's train split into DATASET/evaluators/<hash>/ (or --evaluator PATH) and reused by every run; "
            "its hash is in every row. Rows already in REPORT/metrics.json are kept when the same evaluator scored "
            "them, refused otherwise.",
            "clutch eval captions: captioning metrics (BLEU-1/4 nltk, ROUGE-L and CIDEr pycocoevalcap, "
            "BERTScore bert-score); prints JSON with bleu_1, bleu_4, rouge_l, cider and bertscore_f1_minilm "
            "(or bertscore_f1 with --bertscore-model PATH of roberta-large).")),
    )
    _add_eval_arguments(p)
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
    r.add_argument("--mano-dir", default=None,
                   help="folder with MANO_LEFT.pkl / MANO_RIGHT.pkl: draw MANO meshes (from the motion) instead of skeletons")
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
    add_progress_argument(b)
    b.set_defaults(func=browse_handler)


