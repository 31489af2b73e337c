"""Captioning metrics: known orderings, agreement with the reference packages, the CLI."""
import json

import pytest

from clutch_cli import main
from clutch_core.eval import captions as C

REFS = [
    ["a person picks up the red cup with the right hand"],
    ["the left hand opens the drawer slowly"],
    ["both hands knead the dough on the table"],
    ["the right hand pours water into a glass"],
]
SAME = [r[0] for r in REFS]
PARTIAL = [
    "a person picks up the blue cup with the left hand",
    "the right hand opens the door slowly",
    "both hands knead bread on the counter",
    "the left hand pours milk into a bowl",
]
UNRELATED = ["zebra xylophone quantum", "purple elephants march", "seven moons orbit", "violins hum loudly"]


def fast(refs, hyps):
    return C.caption_metrics(refs, hyps, C.CaptionConfig(with_bertscore=False))


def test_identical_unrelated_partial_ordering():
    same, part, none = fast(REFS, SAME), fast(REFS, PARTIAL), fast(REFS, UNRELATED)
    assert same["bleu_4"] == pytest.approx(1.0) and same["rouge_l"] == pytest.approx(1.0)
    assert same["bleu_1"] == pytest.approx(1.0)
    assert none["bleu_4"] == 0.0 and none["rouge_l"] == 0.0 and none["bleu_1"] == 0.0 and none["cider"] == 0.0
    for k in ("bleu_1", "bleu_4", "rouge_l", "cider"):
        assert same[k] > part[k] > none[k], k


def test_numbers_match_reference_packages():
    """Our wrappers give exactly what the packages give on the same (documented) tokenization."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ours = fast(REFS, PARTIAL)
    toks_r = [[r[0].lower().split()] for r in REFS]  # these captions have no punctuation
    toks_h = [h.lower().split() for h in PARTIAL]
    sm = SmoothingFunction().method1
    assert ours["bleu_4"] == pytest.approx(corpus_bleu(toks_r, toks_h, smoothing_function=sm))
    assert ours["bleu_1"] == pytest.approx(corpus_bleu(toks_r, toks_h, weights=(1.0,), smoothing_function=sm))
    ref_rouge, _ = Rouge().compute_score({i: [r[0]] for i, r in enumerate(REFS)}, {i: [h] for i, h in enumerate(PARTIAL)})
    assert ours["rouge_l"] == pytest.approx(ref_rouge)
    ref_cider, _ = Cider().compute_score({i: [r[0]] for i, r in enumerate(REFS)}, {i: [h] for i, h in enumerate(PARTIAL)})
    assert ours["cider"] == pytest.approx(ref_cider)


def test_tokenization_and_multi_reference():
    assert C.tokenize("The Right-hand, grabs a CUP!") == ["the", "right", "hand", "grabs", "a", "cup"]
    one = fast([["the hand waves"]], ["the hand waves slowly"])
    two = fast([["the hand waves", "the hand waves slowly"]], ["the hand waves slowly"])
    assert two["bleu_4"] == pytest.approx(1.0) and two["rouge_l"] == pytest.approx(1.0)
    assert one["rouge_l"] < 1.0


def test_rouge_l_is_the_captioning_literatures_beta_1_2():
    """LCS 3 of hypothesis 4 / reference 3 words: P = 0.75, R = 1. F1 would be 0.857."""
    beta2 = 1.2 ** 2
    expected = (1 + beta2) * 0.75 * 1.0 / (1.0 + beta2 * 0.75)
    assert fast([["the hand waves"]], ["the hand waves slowly"])["rouge_l"] == pytest.approx(expected)
    assert abs(expected - 2 * 0.75 / 1.75) > 0.02


def test_bertscore_names_say_which_model(tmp_path):
    default = C.bertscore_setup(C.CaptionConfig())
    assert default.key == "bertscore_f1_minilm" and default.baseline is None and default.layers == 6
    lit = C.bertscore_setup(C.CaptionConfig(bert_model=str(tmp_path / "roberta-large")))
    assert lit.key == "bertscore_f1" and lit.layers == 17 and lit.baseline and lit.baseline.endswith("roberta-large.tsv")
    other = C.bertscore_setup(C.CaptionConfig(bert_model=str(tmp_path / "roberta-large"), bert_layers=12))
    assert other.key == "bertscore_f1_roberta_large" and other.baseline is None  # not the literature's layer
    with pytest.raises(ValueError, match="default layer"):
        C.bertscore_setup(C.CaptionConfig(bert_model=str(tmp_path / "my-encoder")))
    assert C.bertscore_setup(C.CaptionConfig(bert_model=str(tmp_path / "my-encoder"), bert_layers=4)).key == "bertscore_f1_my_encoder"


@pytest.mark.slow
def test_bertscore_offline_minilm_and_cli(tmp_path, capsys):
    import bert_score

    refs, hyps = tmp_path / "refs.txt", tmp_path / "hyps.txt"
    refs.write_text("\n".join(f"{r[0]} ||| another reference of clip {i}" for i, r in enumerate(REFS)) + "\n")
    hyps.write_text("\n".join(PARTIAL) + "\n")
    assert main(["eval", "captions", "--refs", str(refs), "--hyps", str(hyps), "--out", str(tmp_path / "m.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"empty_hypotheses", "bleu_1", "bleu_4", "rouge_l", "cider", "bertscore_f1_minilm"}
    assert out["empty_hypotheses"] == 0
    assert json.loads((tmp_path / "m.json").read_text()) == out
    _, _, f1 = bert_score.score(PARTIAL, [[r[0], f"another reference of clip {i}"] for i, r in enumerate(REFS)],
                                model_type=C.default_bert_model(), num_layers=C.BERTSCORE_LAYERS,
                                rescale_with_baseline=False)
    assert out["bertscore_f1_minilm"] == pytest.approx(float(f1.mean()), abs=1e-5)
    same = C.bertscore_f1(REFS, SAME)
    assert same == pytest.approx(1.0, abs=1e-4) and same > out["bertscore_f1_minilm"]


def test_cli_errors_are_clear(tmp_path, capsys):
    refs, hyps = tmp_path / "refs.txt", tmp_path / "hyps.txt"
    refs.write_text("one\ntwo\n")
    hyps.write_text("one\n")
    assert main(["eval", "captions", "--refs", str(refs), "--hyps", str(hyps), "--no-bertscore"]) == 2
    assert "has 2 lines" in capsys.readouterr().err
    assert main(["eval", "captions", "--refs", str(tmp_path / "nope.txt"), "--hyps", str(hyps)]) == 2
    assert "nope.txt" in capsys.readouterr().err


@pytest.mark.slow
def test_empty_and_degenerate_hypotheses_are_scored_not_crashed_on(tmp_path, capsys):
    """A model that writes nothing, or one word, still gets a report (empty captions count as saying nothing)."""
    refs = [["the left hand waves"], ["the right hand grasps the cup"], ["both hands rest"]]
    out = C.caption_metrics(refs, ["", "the right hand grasps the cup", "   "])
    assert out["empty_hypotheses"] == 2
    alone = C.bertscore_f1(refs[1:2], ["the right hand grasps the cup"])
    assert out["bertscore_f1_minilm"] == pytest.approx(alone / 3, abs=1e-5)  # the empty ones score 0
    assert C.caption_metrics(refs, ["", "", ""])["bertscore_f1_minilm"] == 0.0
    assert C.caption_metrics(refs, ["the"] * 3)["bleu_4"] < 0.05
    # a blank line of a hypotheses file is an empty caption, and files are counted as an editor counts lines
    (tmp_path / "refs.txt").write_text("one\ntwo\n")
    (tmp_path / "hyps.txt").write_text("one\n\n")
    assert main(["eval", "captions", "--refs", str(tmp_path / "refs.txt"), "--hyps", str(tmp_path / "hyps.txt"),
                 "--no-bertscore"]) == 0
    assert json.loads(capsys.readouterr().out)["empty_hypotheses"] == 1
    (tmp_path / "hyps.txt").write_text("one\n\n\n")
    assert main(["eval", "captions", "--refs", str(tmp_path / "refs.txt"), "--hyps", str(tmp_path / "hyps.txt"),
                 "--no-bertscore"]) == 2
    assert "has 3 lines" in capsys.readouterr().err
