"""The text changes the output: after a short pretrain with the tiny recipe (narrow model), a prompt about the
left hand generates a motion whose left hand is present in more frames than its right, and one about the right
hand the reverse; the same prompts with the hands swapped swap the outcome."""
import numpy as np
import pytest

from clutch_core.lm.api import generate
from clutch_core.lm.config import preset_config
from clutch_core.lm.train import run_stage
from tests.fixtures.lm_run import copy_run, shift_run

LEFT, RIGHT = "The left hand waves.", "The right hand grasps the cup and lifts it."


@pytest.mark.slow
def test_which_hand_the_text_names_is_the_hand_that_moves(tmp_path_factory, one_torch_thread):
    dataset, base = shift_run(tmp_path_factory)
    run = copy_run(dataset, base, tmp_path_factory.mktemp("follows") / "run")
    # the tiny recipe (task mix, buckets, code_init, unconditional share, no loss on forced <absent>) on a
    # narrow model (which takes lr 1e-3) and 40 clips; with the forced tokens in the loss (forced_in_loss),
    # this model writes every hand absent
    cfg = preset_config("tiny", text_vocab=200, d_model=64, d_ff=128, layers=2, heads=4, d_kv=16,
                        pretrain_steps=300, eval_clips=8, lr=1e-3, buckets=4, amp="off")
    run_stage("pretrain", dataset, run, cfg, progress=False)
    presence = {}
    for text in (LEFT, RIGHT, LEFT.replace("left", "right"), RIGHT.replace("right", "left")):
        (m,), = generate(run, [text], seconds=3)
        presence[text] = m.presence.mean(0)  # share of frames with (left, right) present
    shown = {t: p.round(2).tolist() for t, p in presence.items()}
    for text, p in presence.items():
        named = 0 if " left " in text else 1
        assert p[named] > p[1 - named], shown
    assert np.isfinite(list(presence.values())).all()
