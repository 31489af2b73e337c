"""`clutch eval RUN`: evaluator training and reuse, rows, metrics.json, report and figures."""
import json

import numpy as np
import pytest
import torch

from clutch_cli import main
from clutch_core.eval import rows as R
from clutch_core.eval.evaluator_model import Evaluator, EvaluatorConfig, train_evaluator
from clutch_core.eval.evaluator_model import words as tokens
from clutch_core.eval.t2m import evaluate_rows

KEYS = ("r_precision_top1", "r_precision_top2", "r_precision_top3", "fid", "kid", "kid_lo", "kid_hi", "mm_dist",
        "diversity")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "ds"
    assert main(["synth", "--out", str(d), "--clips", "80", "--seed", "3"]) == 0
    return d


def _split_rows(dataset):
    from storage.reader import ClipReader

    return ClipReader(dataset).read_rows(columns=["clip_id", "split"])


def _random_tokenizer(run, dataset, seed=0):
    """A tiny untrained SHIFT saved the way training saves it (weights are random: errors are large)."""
    from clutch_core.hands.motion import MotionStats
    from clutch_core.shift.checkpoint import save_tokenizer
    from clutch_core.shift.model import TokenizerConfig, build_tokenizer
    from storage.reader import ClipReader

    torch.manual_seed(seed)
    model = build_tokenizer(TokenizerConfig(width=16, depth=1, codes=16, code_dim=8))
    rows = ClipReader(dataset).read_rows(columns=["motion", "presence"])
    stats = MotionStats.fit(torch.from_numpy(np.concatenate([r["motion"] for r in rows])),
                            torch.from_numpy(np.concatenate([r["presence"] for r in rows])))
    (run / "shift").mkdir(parents=True)
    save_tokenizer(run / "shift", model, stats, {})


@pytest.fixture(scope="module")
def report(synth, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    _random_tokenizer(run, synth)
    out = run / "report"
    assert main(["eval", str(run), "--dataset", str(synth), "--out", str(out), "--repeats", "4",
                 "--evaluator-epochs", "12", "--split", "all"]) == 0
    return run, out


@pytest.mark.slow
def test_report_rows_and_files(report, synth):
    run, out = report
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) == {"real", "tokenizer_recon"}
    for row in m.values():
        assert all(isinstance(row[k], float) for k in KEYS)
    real, rec = m["real"], m["tokenizer_recon"]
    assert real["fid"] == pytest.approx(0.0, abs=1e-6)
    assert abs(real["kid"]) < rec["kid"] and rec["kid_lo"] <= rec["kid"] <= rec["kid_hi"]
    hashes = {row["evaluator_hash"] for row in m.values()}
    assert len(hashes) == 1 and f"evaluator: `{hashes.pop()}`" in (out / "report.md").read_text()
    assert real["r_precision_top3"] > 4 * 3 / 32  # chance is 3/32
    assert real["r_precision_top1"] <= real["r_precision_top2"] <= real["r_precision_top3"]
    assert rec["fid"] > 0.01 and rec["mpjpe_mm"] > 0 and rec["pa_mpjpe_mm"] <= rec["mpjpe_mm"]
    assert 0 < rec["codebook_used_pose"] <= 1
    for png in ("metrics_table.png", "training_curves.png", "codebook_usage_tokenizer_recon.png",
                "error_by_length_tokenizer_recon.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, png
    md = (out / "report.md").read_text()
    assert "| real |" in md and "| tokenizer_recon |" in md and "![Metrics](metrics_table.png)" in md
    folder = synth / "evaluators" / m["real"]["evaluator_hash"]  # the dataset's, not the run's
    for f in ("evaluator.safetensors", "evaluator.json", "train_log.jsonl", "text_cache.npz"):
        assert (folder / f).is_file()
    assert not (run / "evaluator").exists()
    assert json.loads((folder / "evaluator.json").read_text())["train_clips"] == sum(
        r["split"] == "train" for r in _split_rows(synth))


@pytest.mark.slow
def test_two_runs_on_one_dataset_share_one_evaluator(report, synth, tmp_path, capsys):
    run, out = report
    h = json.loads((out / "metrics.json").read_text())["real"]["evaluator_hash"]
    weights = synth / "evaluators" / h / "evaluator.safetensors"
    stamp = weights.stat().st_mtime_ns
    run2 = tmp_path / "other_run"
    _random_tokenizer(run2, synth, seed=1)
    out2 = tmp_path / "report2"
    # options may come before RUN
    assert main(["eval", "--dataset", str(synth), "--out", str(out2), "--repeats", "2", "--split", "all",
                 str(run2), "--evaluator-epochs", "12"]) == 0
    assert weights.stat().st_mtime_ns == stamp  # not retrained
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert set(m2) == {"real", "tokenizer_recon"} and {r["evaluator_hash"] for r in m2.values()} == {h}
    # the same table may take more rows by the same evaluator, never rows of another
    assert main(["eval", str(run), "--dataset", str(synth), "--out", str(out2), "--repeats", "2", "--split", "all",
                 "--rows", "real", "--evaluator-epochs", "12"]) == 0
    assert set(json.loads((out2 / "metrics.json").read_text())) == {"real", "tokenizer_recon"}
    assert main(["eval", str(run), "--dataset", str(synth), "--out", str(out2), "--repeats", "2", "--split", "all",
                 "--rows", "real", "--evaluator-epochs", "13"]) == 2
    assert "different evaluators" in capsys.readouterr().err


@pytest.mark.slow
def test_rows_are_one_function(report, synth, monkeypatch):
    run, out = report

    from storage.reader import ClipReader

    clips = ClipReader(synth).read_rows(columns=["clip_id", "num_frames", "motion", "presence", "captions"])
    ev = Evaluator.load(synth / "evaluators" / json.loads((out / "metrics.json").read_text())["real"]["evaluator_hash"])

    def noisy(ctx):  # a stand-in generator: real motion plus fresh noise at every call
        rng = np.random.default_rng(1)
        motions, pres = ctx.real
        first = {}
        for i, c in enumerate(ctx.clips):
            for k in c["captions"]:
                first.setdefault(k["text"], i)

        def jitter(m):
            return m + rng.normal(0, 0.3, m.shape).astype(np.float32)

        def many(texts, n):
            return [([jitter(motions[first[t]]) for _ in range(n)], [pres[first[t]]] * n) for t in texts]

        return R.RowSource(sample=lambda r, texts: ([jitter(m) for m in motions], pres), deterministic=False,
                           generate_many=many)

    monkeypatch.setitem(R.ROWS, "noisy", noisy)
    ctx = R.EvalContext(run=None, clips=clips, evaluator=ev, repeats=2, mm_texts=5, mm_generations=4)
    table, _ = evaluate_rows(ctx, ["real", "noisy"], progress=False)
    assert table["noisy"]["fid"] > table["real"]["fid"]
    assert table["noisy"]["multimodality"] > 0 and "multimodality" not in table["real"]


@pytest.mark.slow
def test_glove_text_encoder_roundtrip(synth, tmp_path):
    from storage.reader import ClipReader

    clips = ClipReader(synth).read_rows(columns=["motion", "presence", "captions"])[:20]
    words = sorted({w for c in clips for k in c["captions"] for w in tokens(k["text"])})
    rng = np.random.default_rng(0)
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} " + " ".join(f"{x:.4f}" for x in rng.normal(size=8)) + "\n" for w in words[:-3]))
    cfg = EvaluatorConfig(text_encoder="glove", glove=str(glove), epochs=1, hidden=16, dim=8)
    ev = train_evaluator(clips, cfg, out=tmp_path / "ev", progress=False)
    back = Evaluator.load(tmp_path / "ev")
    texts = [clips[0]["captions"][0]["text"], "an unseen zzzword sentence"]
    assert np.allclose(ev.encode_text(texts), back.encode_text(texts), atol=1e-6)
    assert back.vocab[0] == "<unk>" and len(back.vocab) == len(words) - 3 + 1
    m = back.encode_motion([c["motion"] for c in clips[:3]], [c["presence"] for c in clips[:3]])
    assert m.shape == (3, 8) and np.allclose(np.linalg.norm(m, axis=1), 1.0, atol=1e-5)


def test_eval_cli_user_errors(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "run"), "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
                 "--rows", "nonsense"]) == 2
    assert "unknown row" in capsys.readouterr().err
    assert main(["eval", str(tmp_path), "--dataset", str(tmp_path), "--out", str(tmp_path / "r"),
                 "--refs", "x.txt"]) == 2
    assert "--refs is not an option of `clutch eval RUN`" in capsys.readouterr().err
    assert main(["eval", "captions", "--refs", "x.txt"]) == 2
    assert "needs --refs REFS.txt and --hyps HYPS.txt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "captions", "--help"])
    assert "--refs" in capsys.readouterr().out


def test_no_train_split_is_an_error_that_says_what_to_do(tmp_path, capsys):
    from tests.fixtures.eval_data import make_rows, write_dataset

    rows = make_rows(40)
    for r in rows:
        r["split"] = "test"
    ds = write_dataset(tmp_path / "ds", rows)
    (tmp_path / "run" / "shift").mkdir(parents=True)
    assert main(["eval", str(tmp_path / "run"), "--dataset", str(ds), "--out", str(tmp_path / "r"), "--final"]) == 2
    err = capsys.readouterr().err
    assert "no clips in the train split" in err and "--evaluator PATH" in err
    assert not (ds / "evaluators").exists()


def test_a_folder_that_is_not_a_run_is_a_usage_error_and_creates_nothing(synth, tmp_path, capsys):
    """A mistyped run folder must not train an evaluator and write a believable report."""
    before = sorted(p.relative_to(synth) for p in synth.rglob("*"))
    for run in (tmp_path / "nope", tmp_path / "empty"):
        if run.name == "empty":
            run.mkdir()
        assert main(["eval", str(run), "--dataset", str(synth), "--out", str(tmp_path / "R")]) == 2
        err = capsys.readouterr().err
        assert str(run) in err and "clutch train" in err
        assert not (tmp_path / "R").exists()
        assert list(run.iterdir()) == [] if run.exists() else True
    assert sorted(p.relative_to(synth) for p in synth.rglob("*")) == before  # no evaluator trained


@pytest.mark.slow
def test_every_written_file_has_the_same_mode(report, synth):
    import stat

    run, out = report
    h = json.loads((out / "metrics.json").read_text())["real"]["evaluator_hash"]
    files = [p for root in (out, run / "shift", synth / "evaluators" / h) for p in root.rglob("*") if p.is_file()]
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert "evaluator.safetensors" in modes and "model.safetensors" in modes
    assert len(set(modes.values())) == 1, modes


@pytest.mark.slow
def test_intervals_have_one_form_and_none_is_shown_as_zero(report):
    from clutch_core.eval.plots import fmt

    assert fmt({"fid": 0.342, "fid_ci95": 0.0}, "fid") == "0.342"
    assert fmt({"fid": 0.342, "fid_ci95": 0.01}, "fid") == "0.342 ± 0.010"
    assert fmt({"kid": 0.01, "kid_ci95": 0.002, "kid_lo": 0.0, "kid_hi": 0.02}, "kid") == "0.010 ± 0.002"
    text = (report[1] / "report.md").read_text()
    assert "± 0.000" not in text and "[" not in text.split("## Legend")[0].split("## Text-to-motion")[1]
    assert "fewer than 100" in text.split("## ")[0]  # 80 clips: said at the top
    assert "## Legend" in text and "| FID |" in text and "lower" in text


def test_summary_lines_and_below_chance_flags():
    from clutch_core.eval.report_text import report_markdown

    table = {"real": {"r_precision_top1": 0.75, "r_precision_top3": 0.96, "r_precision_top3_ci95": 0.01},
             "clutch": {"r_precision_top1": 0.01, "r_precision_top1_ci95": 0.005, "r_precision_top3": 0.109,
                        "r_precision_top3_ci95": 0.01},
             "clutch_free": {"r_precision_top3": 0.2, "r_precision_top3_ci95": 0.01},
             "tokenizer_recon": {"mpjpe_mm": 31.46}}
    m2t = {"clutch": {"r_precision_top3": 0.5, "r_precision_top3_ci95": 0.02, "bleu_4": 0.2, "bleu_4_ci95": 0.01,
                      "empty_hypotheses": 3, "stage": "instruct"},
           "real": {"r_precision_top3": 0.97, "stage": "instruct"}}
    md = report_markdown("R", "D", "test", 150, 20, table, m2t, {}, "abc")
    head = md.split("\n\n")[1].splitlines()  # the first lines after the title
    assert head[0] == "- text-to-motion (given length) R@3 0.109 ± 0.010 = 0.11x real (0.960), 1.2x chance (0.094)"
    assert head[1].startswith("- text-to-motion (free length, comparable with T2M-GPT / MotionGPT) R@3 0.200")
    assert head[2] == "- motion-to-text R@3 0.500 ± 0.020 = 0.52x real (0.970), 5.3x chance (0.094)"
    assert "3 empty captions" in head[3] and "MPJPE 31.5 mm" in head[4]
    assert "0.010 ± 0.005 (below chance)" in md  # clutch R@1 + interval < 1/32
    assert md.count("(below chance)") == 1 and "0.200 ± 0.010 (below" not in md
    assert "| clutch | 0.500 ± 0.020 | 0.200 ± 0.010 |" in md  # motion-to-text with intervals too
