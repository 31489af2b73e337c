"""report.md: summary lines first, a legend, then the tables a reader compares rows in.

Every interval has one form, `mean ± h`: h is the 95 % confidence half-width of the mean over
the repeats (caption draws, R-precision pools, KID subsets, Diversity pairs) or, for the
caption metrics, over bootstrap resamples of the clips. A value the same in every repeat has
no `±`. An R@k whose interval lies entirely under chance (k/32) is marked `(below chance)`.
"""
from __future__ import annotations

from pathlib import Path

from clutch_core.eval import metrics as M
from clutch_core.eval import plots

FEW_CLIPS = 100  # below this, the report says so at the top
R3 = "r_precision_top3"

LEGEND = [
    ("R@1, R@2, R@3", "share of texts whose own motion is among the 1, 2, 3 nearest of a pool of 32 motions in the "
                      "evaluator's space (motion-to-text: the caption's own motion)", "higher; chance is k/32, "
                      "real motion (or real captions) is the ceiling"),
    ("FID", "Frechet distance between Gaussians fitted to the real and the row's motion embeddings", "lower (real: 0)"),
    ("KID", "unbiased squared MMD (polynomial kernel, 50 subsets) between real and the row's motion embeddings; "
            "unlike FID unbiased at small sizes", "lower (real: about 0)"),
    ("MM-Dist", "mean distance between a text's embedding and its motion's", "lower"),
    ("Diversity", "mean distance between the embeddings of 300 random pairs of the row's motions", "closer to real"),
    ("MModality", "mean distance between motions sampled for the same text", "higher = more varied samples; "
                  "no ideal value"),
    ("MPJPE, PA-MPJPE", "mean joint position error in mm (PA: after per-frame Procrustes alignment) of the "
                        "tokenizer's reconstruction, or of the teacher-forced codes (tf_mpjpe_mm)", "lower"),
    ("Accel", "acceleration error, mm per frame squared", "lower"),
    ("BLEU-1/4, ROUGE-L, CIDEr, BERTScore", "overlap of the captions with the clip's reference captions "
                                            "(BERTScore: MiniLM, not comparable with published numbers)", "higher"),
]


def ratio_line(task: str, row: dict | None, real: dict | None, key: str = R3, k: int = 3) -> str | None:
    """'text-to-motion R@3 0.109 ± 0.010 = 0.12x real (0.963), 1.2x chance (0.094)'."""
    if not row or row.get(key) is None:
        return None
    chance = k / M.R_POOL
    v = row[key]
    parts = [f"{task} R@{k} {plots.fmt(row, key)}"]
    rel = []
    if real and real.get(key):
        rel.append(f"{v / real[key]:.2f}x real ({real[key]:.3f})")
    rel.append(f"{v / chance:.1f}x chance ({chance:.3f})")
    return parts[0] + " = " + ", ".join(rel)


def summary(table: dict[str, dict], m2t: dict[str, dict] | None) -> list[str]:
    real = table.get("real")
    lines = [ratio_line("text-to-motion (given length)", table.get("clutch"), real),
             ratio_line("text-to-motion (free length, comparable with T2M-GPT / MotionGPT)", table.get("clutch_free"), real),
             ratio_line("motion-to-text", (m2t or {}).get("clutch"), (m2t or {}).get("real"))]
    if m2t and (m2t.get("clutch") or {}).get("empty_hypotheses"):
        lines.append(f"motion-to-text: {m2t['clutch']['empty_hypotheses']} empty captions (scored as saying nothing)")
    recon = table.get("tokenizer_recon")
    if recon and recon.get("mpjpe_mm") is not None:
        lines.append(f"tokenizer reconstruction MPJPE {recon['mpjpe_mm']:.1f} mm")
    return [f"- {x}" for x in lines if x]


def table_markdown(table: dict[str, dict], keys: list[tuple[str, str]]) -> list[str]:
    lines = ["| row | " + " | ".join(n for _, n in keys) + " |", "|---|" + "---|" * len(keys)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(plots.fmt(row, k, flag_chance=True) for k, _ in keys) + " |")
    return lines


M2T_COLUMNS = [("r_precision_top1", "R@1"), ("r_precision_top2", "R@2"), (R3, "R@3"), ("bleu_1", "BLEU-1"),
               ("bleu_4", "BLEU-4"), ("rouge_l", "ROUGE-L"), ("cider", "CIDEr")]


def m2t_markdown(m2t: dict[str, dict]) -> list[str]:
    cols = [c for c in M2T_COLUMNS if any(c[0] in r for r in m2t.values())]
    cols += [(k, "BERTScore (" + k[len("bertscore_f1_"):] + ")" if k != "bertscore_f1" else "BERTScore")
             for k in sorted({k for r in m2t.values() for k in r if k.startswith("bertscore_f1") and not k.endswith("_ci95")})]
    stage = next(iter(m2t.values())).get("stage")
    return ["## Motion-to-text", "",
            f"Captions of the evaluation clips' motion (stage `{stage}`), against two baselines: the train split's "
            "most frequent caption, and the caption of the nearest train motion in the evaluator's space (an upper "
            "reference on template captions). R-precision: the caption among pools of 32 real motions, through the "
            "same evaluator. Also in `m2t_metrics.json`.", "", *table_markdown(m2t, cols), ""]


def _decoding_line(table: dict[str, dict]) -> list[str]:
    row = table.get("clutch") or table.get("clutch_free")
    if not row or row.get("guidance") is None:
        return []
    g = row["guidance"]
    how = "off" if g == 1 else f"scale {g:g}"
    k = int(row.get("rerank") or 1)
    dec = "greedy decoding" if k <= 1 else f"the best of {k} candidates (greedy + sampled) by the model's own motion-to-text"
    return [f"- language model: stage `{row.get('stage')}`, {dec}, classifier-free guidance {how} "
            "(`clutch eval --guidance S --rerank K` to score another)"]


def report_markdown(run, dataset, eval_set: str, n: int, repeats: int, table: dict[str, dict],
                    m2t: dict[str, dict] | None, figs: dict[str, Path], ev_hash: str) -> str:
    lines = ["# CLUTCH evaluation report", "", *summary(table, m2t), ""]
    if n < FEW_CLIPS:
        lines += [f"> **Only {n} evaluation clips** (fewer than {FEW_CLIPS}): FID, KID and R-precision are noisy "
                  f"at this size; compare runs on a larger evaluation set before drawing conclusions.", ""]
    if eval_set == "val+test":
        lines += ["> The test split holds fewer than 32 clips: this report scores val+test instead.", ""]
    lines += [f"- run: `{run}`", f"- dataset: `{dataset}`", f"- evaluator: `{ev_hash}` (every row below was scored by it)",
              *_decoding_line(table),
              f"- evaluation set: {eval_set} ({n} clips); {repeats} repeats; `± h`: 95 % interval of the mean "
              "(over repeats; caption metrics: over bootstrap resamples of the clips); no `±`: the same in every "
              "repeat", "", "## Text-to-motion and reconstruction", "",
              "Rows: `real` (the clips), `tokenizer_recon` (encoded and decoded by the run's tokenizer), `clutch` "
              "(generated at each clip's length), `clutch_free` (generated, the model ends it: the row comparable "
              "with the literature), `nearest_caption_motion` (the train motion whose caption is nearest by TF-IDF), "
              "`random_train_motion` (a random train motion of the clip's length), `chance`.", "",
              *table_markdown(table, plots.table_columns(table)), ""]
    extra = sorted({k for r in table.values() for k in r if k.startswith("codebook_used_")})
    if extra:
        lines += ["Fraction of codes used on the evaluation set: " + ", ".join(
            f"{k[len('codebook_used_'):]} {r[k]:.2f} ({name})" for name, r in table.items() for k in extra if k in r), ""]
    if m2t:
        lines += m2t_markdown(m2t)
    lines += ["## Legend", "", "| metric | what it measures | better |", "|---|---|---|",
              *(f"| {a} | {b} | {c} |" for a, b, c in LEGEND), ""]
    for title, p in figs.items():
        lines += [f"## {title}", "", f"![{title}]({Path(p).name})", ""]
    return "\n".join(lines)
