"""train-clutch/local killed during `pretrain` resumes that stage when run again, through a real local
Prefect server (SQLite) and `clutch serve`, as a user meets it: `clutch serve` and the flow run it
started are SIGKILLed once RUN/pretrain holds a checkpoint; serve is restarted and the same
`prefect deployment run` is repeated. It must finish every stage, continue pretrain from the saved
step (not from 0) and leave the finished SHIFT stage alone."""
from __future__ import annotations

import json

import pytest

from tests.fixtures.prefect_server import kill, local_prefect, wait
from tests.fixtures.shift_data import small_dataset

pytestmark = [pytest.mark.slow]

DEPLOYMENT = "train-clutch/local"
STEPS = 12  # --max-steps: every stage's step count; pretrain checkpoints every 2 of them
PARAMS = dict(preset="tiny", max_steps=STEPS, ckpt_every=2, batch=4, lm_batch=4,
              stages=["shift", "tokenize", "pretrain", "refine", "instruct"])


def _saved_step(ckpt) -> int:
    from safetensors import safe_open

    with safe_open(str(ckpt), "pt") as f:
        return int(json.loads(f.metadata()["step"]))


def test_killed_during_pretrain_resumes_that_stage(tmp_path_factory, tmp_path):
    dataset = small_dataset(tmp_path_factory)
    run = tmp_path / "run"
    params = dict(dataset=str(dataset), out=str(run), **PARAMS)
    ckpt = run / "pretrain" / "checkpoint.safetensors"
    with local_prefect(tmp_path) as prefect:
        serve = prefect.serve(DEPLOYMENT)
        started = prefect.run(DEPLOYMENT, watch=False, **params)
        assert started.returncode == 0, started.stdout + started.stderr
        wait(ckpt.exists, 600, f"{ckpt}", prefect.logs / "serve.log", every_s=0.05)
        kill(serve)  # the flow run is a child of `clutch serve`, in its process group
        assert not (run / "pretrain" / "metrics.json").exists(), "pretrain finished before the kill: raise STEPS"
        saved = _saved_step(ckpt)
        assert 0 < saved < STEPS
        shift_metrics = (run / "shift" / "metrics.json").read_bytes()
        prefect.serve(DEPLOYMENT, log_name="serve2.log")
        again = prefect.run(DEPLOYMENT, **params)
    text = again.stdout + again.stderr
    assert again.returncode == 0 and "Completed" in text, text[-3000:] + prefect.log_tail()
    # the resumed stage's first progress line is the step after the saved one
    assert f"pretrain: step {saved + 1}/{STEPS} (" in text and f"pretrain: step 1/{STEPS} (" not in text, text[-3000:]
    pretrain = json.loads((run / "pretrain" / "metrics.json").read_text())
    assert pretrain["steps"] == STEPS and pretrain["steps_this_run"] == STEPS - saved, pretrain
    logged = [json.loads(line)["step"] for line in (run / "pretrain" / "train_log.jsonl").read_text().splitlines()]
    assert logged == sorted(set(logged)) and logged[-1] == STEPS, logged  # no step logged twice
    for stage in ("refine", "instruct"):
        m = json.loads((run / stage / "metrics.json").read_text())
        assert m["steps"] == STEPS and m["steps_this_run"] == STEPS, (stage, m)
    assert (run / "shift" / "metrics.json").read_bytes() == shift_metrics  # skipped, not retrained
    assert "shift: step" not in text, text[-3000:]
