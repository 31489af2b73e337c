"""Tuning reads val; the test split is read once, at the end, when told --final: by `clutch eval`, the eval
stage of `clutch train`, and every tuning benchmark."""
import importlib.util
import sys

import pytest

from clutch_cli import main
from tests.conftest import REPO

REFUSED = "the test split is read once per preset and seed, at the end"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    d = tmp_path_factory.mktemp("split") / "synth"
    assert main(["synth", "--out", str(d), "--clips", "400", "--seed", "0", "--no-progress"]) == 0
    return d


def test_eval_clips_default_to_val_and_read_test_only_when_final(synth):
    from clutch_core.eval.data import TestSplitRefused, eval_clips

    clips, name = eval_clips(synth)
    assert name == "val" and {c["split"] for c in clips} == {"val"}
    with pytest.raises(TestSplitRefused, match=REFUSED):
        eval_clips(synth, "test")
    clips, name = eval_clips(synth, final=True)  # 400 clips: test is small, the final reading says so
    assert name in ("test", "val+test") and "test" in {c["split"] for c in clips}
    assert {c["split"] for c in eval_clips(synth, "val")[0]} == {"val"}
    from clutch_core.eval.data import TooFewClips

    n_test = sum(c["split"] == "test" for c in eval_clips(synth, "all")[0])
    if n_test < 32:  # a split asked for is used as asked, or refused with the counts: never replaced
        with pytest.raises(TooFewClips, match=f"the test split has {n_test} clips"):
            eval_clips(synth, "test", final=True)


def test_clutch_eval_and_clutch_train_refuse_test_without_final_before_any_work(synth, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["eval", str(run), "--dataset", str(synth), "--out", str(tmp_path / "rep"), "--split", "test"]) == 2
    assert REFUSED in capsys.readouterr().err and not (tmp_path / "rep").exists()
    assert main(["train", str(synth), "--out", str(run), "--eval-split", "test", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert REFUSED in err and "validation error" not in err and not run.exists()  # nothing trained


def _bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("argv", [["quality", "--out", "X", "--split", "test"],
                                  ["curve", "--dataset", "D", "--run", "R", "--split", "test"],
                                  ["decoding", "--dataset", "D", "--runs", "R", "--split", "test"]])
def test_tuning_benchmarks_refuse_test_without_final(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _bench("lm").main(argv)
    assert e.value.code == 2 and REFUSED in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _bench("tiny_preset").main(["--eval-split", "test"])
    assert e.value.code == 2 and REFUSED in capsys.readouterr().err
