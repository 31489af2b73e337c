"""Captioner chain: narration, kinematic descriptions from 3D motion, and a VLM loaded from a folder."""
import numpy as np
import pytest

from annotators.captioning import (ClipContext, KinematicCaptioner, NarrationCaptioner, VLMCaptioner,
                                   build_captioners, caption_clips)
from annotators.pipeline import AnnotateConfig
from clutch_core.hands.skeleton import rest_skeleton
from tests.fixtures.tiny_vlm import build_tiny_vlm


def _clip(clip_id="v-000000", move=(0.0, 0.0, 0.0), close=False, hands=(True, True), t_len=30, frames=()):
    """Two rest hands 40 cm in front of the camera; the right one moves by `move` metres (and closes)."""
    joints = np.zeros((t_len, 2, 21, 3), np.float32)
    s = np.linspace(0, 1, t_len)[:, None, None]
    for h, side in enumerate(("left", "right")):
        rest = rest_skeleton(side).numpy() @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32).T
        base = rest + np.array([(-0.15, 0.15)[h], 0.1, 0.4], np.float32)
        joints[:, h] = base
        if h == 1:
            joints[:, 1] = base + s * np.asarray(move, np.float32)
            if close:  # fingertips move half-way to the wrist
                tips = [4, 8, 12, 16, 20]
                wrist = joints[:, 1, :1]
                joints[:, 1, tips] = joints[:, 1, tips] + 0.5 * s * (wrist - joints[:, 1, tips])
    pres = np.tile(np.array(hands, bool), (t_len, 1))
    joints[~pres] = 0
    return ClipContext(clip_id, joints, pres, np.zeros((t_len, 198), np.float32), 15.0, None, list(frames))


def test_kinematic_names_hand_direction_and_grasp():
    text = KinematicCaptioner.describe(_clip(move=(0.2, 0, 0), close=True))
    assert "right hand" in text and "to the right" in text
    assert any(w in text for w in ("grasp", "closes", "curls")) and "left hand" in text  # the idle one
    text = KinematicCaptioner.describe(_clip(move=(0, -0.15, 0.1)))
    assert "upward" in text and "away from the camera" in text
    assert "toward the camera" in KinematicCaptioner.describe(_clip(move=(0, 0, -0.2)))
    only_left = KinematicCaptioner.describe(_clip(hands=(True, False)))
    assert "left hand" in only_left and "right" not in only_left


def test_kinematic_is_deterministic_per_clip_and_varied():
    a = KinematicCaptioner.describe(_clip("v-000001", move=(0.2, 0, 0)))
    assert a == KinematicCaptioner.describe(_clip("v-000001", move=(0.2, 0, 0)))
    texts = {KinematicCaptioner.describe(_clip(f"v-{i:06d}", move=(0.2, 0, 0))) for i in range(12)}
    assert len(texts) >= 3


def test_chain_tags_sources_and_skips_empty():
    c = _clip()
    c.narration = "  stir the soup "
    plain = _clip("v-000002")
    caps = caption_clips([NarrationCaptioner(), KinematicCaptioner()], [c, plain])
    assert caps[0][0] == {"source": "narration", "text": "stir the soup"} and caps[0][1]["source"] == "kinematic"
    assert [x["source"] for x in caps[1]] == ["kinematic"]
    assert [x.source for x in build_captioners(AnnotateConfig())] == ["narration", "kinematic"]  # no VLM given
    with pytest.raises(ValueError, match="unknown captioner"):
        build_captioners(AnnotateConfig(captioners=("poetry",)))


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny-idefics3")


@pytest.mark.slow
def test_vlm_captioner_batches_multi_aspect_prompts(tiny_vlm, monkeypatch):
    cap = VLMCaptioner(str(tiny_vlm), max_new_tokens=5, batch_size=3)
    seen = []
    real = cap._generate

    def spy(items):
        seen.append([q for _, q in items])
        return real(items)

    monkeypatch.setattr(cap, "_generate", spy)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    clips = [_clip("a", frames=frames), _clip("b"), _clip("c", frames=frames[:2])]
    out = cap.caption(clips)
    assert out[1] is None and out[0] and out[2]  # a clip without frames gets no VLM caption
    assert len(seen) == 2 and len(seen[0]) == 8 and all("One sentence" in q for q in seen[1])
    assert any("intent" in q or "trying to achieve" in q for q in seen[0])
    assert cap.model.device.type == cap.device


def test_vlm_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="VLM model folder not found"):
        VLMCaptioner(str(tmp_path / "no-such-model"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="cannot load VLM"):
        VLMCaptioner(str(empty))
