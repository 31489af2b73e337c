"""Tokenizer training: metrics, skip when done, exact resume (in process and after SIGKILL), tokens."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from clutch_core.shift.checkpoint import load_tokenizer
from clutch_core.shift.tokenize import read_tokens, tokenize_dataset
from clutch_core.shift.train import preset_config, train_tokenizer
from tests.fixtures.shift_data import SMALL, small_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return small_dataset(tmp_path_factory)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared: one thread is faster and deterministic
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shift", "vqvae", "rvq"])
def test_training_writes_finite_metrics_and_skips_when_done(dataset, tmp_path, kind):
    cfg = preset_config("tiny", tokenizer=kind, max_steps=4, ckpt_every=2, **SMALL)
    m = train_tokenizer(dataset, tmp_path, cfg, progress=False)
    on_disk = json.loads((tmp_path / "shift" / "metrics.json").read_text())
    assert on_disk["tokenizer"] == kind and on_disk["steps"] == 4
    for k in ("val_mpjpe_mm", "val_mpjpe_traj_mm", "val_mpjpe_pose_mm", "val_accel_error_mm"):
        assert math.isfinite(on_disk[k]) and on_disk[k] > 0
    streams = {"shift": ["left_traj", "left_pose", "right_traj", "right_pose"], "vqvae": ["frame"],
               "rvq": ["level0", "level1", "level2", "level3"]}[kind]
    books = {"shift": ["traj", "pose"], "vqvae": ["frame"], "rvq": streams}[kind]
    assert sorted(on_disk["perplexity"]) == sorted(books)
    assert all(1.0 <= on_disk["perplexity"][b] <= 64 for b in books)
    log = [json.loads(ln) for ln in (tmp_path / "shift" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in log)
    val = [json.loads(ln) for ln in (tmp_path / "shift" / "val_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in val] == [2, 4] and all(r["val_mpjpe_mm"] > 0 for r in val)  # at each checkpoint
    model, stats, config = load_tokenizer(tmp_path)
    assert config["streams"] == streams
    mtime = (tmp_path / "shift" / "model.safetensors").stat().st_mtime_ns
    assert train_tokenizer(dataset, tmp_path, cfg, progress=False) == m  # finished: skipped
    assert (tmp_path / "shift" / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["shift", "vqvae", "rvq"])
def test_training_lowers_validation_error_below_its_step_0_value(dataset, tmp_path, kind):
    """The error metrics.json reports after training must beat the same model before its first step."""
    from clutch_core.shift.data import fit_stats, load_clips
    from clutch_core.shift.evaluate import evaluate
    from clutch_core.shift.model import build_tokenizer

    # the residual levels need more steps (and a smaller code) before they beat the mean at this size
    longer = {"max_steps": 300, "code_dim": 16} if kind == "rvq" else {"max_steps": 150}
    cfg = preset_config("tiny", tokenizer=kind, **{**SMALL, "batch": 32, "window": 64, "lr": 2e-3, **longer})
    torch.manual_seed(cfg.seed)
    stats = fit_stats(load_clips(dataset, "train"))
    step0 = evaluate(build_tokenizer(cfg.tokenizer), stats, load_clips(dataset, "val"))["val_mpjpe_mm"]
    trained = train_tokenizer(dataset, tmp_path, cfg, progress=False)
    assert trained["eval_split"] == "val"
    # step 0 decodes every clip to about the mean motion (~107 mm here); training reaches 89-96 mm
    assert trained["val_mpjpe_mm"] < 0.93 * step0, (trained["val_mpjpe_mm"], step0)


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted_training(dataset, tmp_path):
    full = preset_config("tiny", max_steps=6, ckpt_every=3, **SMALL)
    train_tokenizer(dataset, tmp_path / "a", full, progress=False)
    train_tokenizer(dataset, tmp_path / "b", preset_config("tiny", max_steps=3, ckpt_every=3, **SMALL), progress=False)
    train_tokenizer(dataset, tmp_path / "b", full, progress=False)  # resumes from the step-3 checkpoint
    a, b = load_file(tmp_path / "a/shift/model.safetensors"), load_file(tmp_path / "b/shift/model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resume changed the result"
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "b/shift/train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


@pytest.mark.slow
def test_sigkilled_training_resumes_from_its_checkpoint(dataset, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "clutch_cli", "train", str(dataset), "--out", str(run), "--stages", "shift",
           "--max-steps", "20", "--ckpt-every", "5", "--batch", "4", "--threads", "1", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = run / "shift" / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "training ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "shift" / "metrics.json").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed_at = int(done.stderr.split("at step ")[1].split()[0])
    assert 5 <= resumed_at < 20 and resumed_at % 5 == 0
    metrics = json.loads((run / "shift" / "metrics.json").read_text())
    assert metrics["steps"] == 20 and metrics["steps_this_run"] == 20 - resumed_at
    steps = [json.loads(ln)["step"] for ln in (run / "shift" / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 20


@pytest.mark.slow
def test_tokenize_writes_every_clip_once_and_resumes(dataset, tmp_path):
    train_tokenizer(dataset, tmp_path, preset_config("tiny", max_steps=2, **SMALL), progress=False)
    s = tokenize_dataset(tmp_path, dataset, chunk=16, progress=False)
    assert s["written"] == s["total"] == 40 and s["skipped"] == 0
    t = read_tokens(s["dir"])
    assert sorted(t.column("clip_id").to_pylist()) == sorted(set(t.column("clip_id").to_pylist()))
    for r in t.to_pylist():
        assert r["num_steps"] == -(-r["num_frames"] // 4)
        assert len(r["tokens"]) == 4 * r["num_steps"] and len(r["presence_steps"]) == r["num_steps"]
        assert all(0 <= v < 64 for v in r["tokens"])
    parts = sorted(os.listdir(s["dir"]))
    lost = next(p for p in parts if p.endswith(".parquet"))
    n_lost = pq.read_metadata(os.path.join(s["dir"], lost)).num_rows
    os.remove(os.path.join(s["dir"], lost))  # as if the run had stopped before this part
    again = tokenize_dataset(tmp_path, dataset, chunk=16, progress=False)
    assert again["written"] == n_lost and again["skipped"] == 40 - n_lost
    assert read_tokens(s["dir"]).num_rows == 40
    assert t.sort_by("clip_id").equals(read_tokens(s["dir"]).sort_by("clip_id"))


def test_the_stable_names_outside_benchmarks_import_give_the_trainers_optimizer():
    from clutch_core.shift.model import build_tokenizer
    from clutch_core.shift.train import make_optimizer, preset_config

    cfg = preset_config("tiny", lr=3e-4)
    model = build_tokenizer(cfg.tokenizer)
    opt = make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["lr"] == 3e-4 and opt.defaults["fused"]
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == cfg.weight_decay and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
