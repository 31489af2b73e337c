"""The clean step (annotators.clean): tracker output of two known hands -> the rows' hands."""
import numpy as np
import pytest

from annotators.clean import clean_video
from annotators.pipeline import AnnotateConfig, Lifted, VideoResult
from clutch_core.hands import lift
from clutch_core.hands.fit import row_joints
from tests.fixtures.hand_tracks import DIAG, K, two_hand_clip

T = 30


def _palm_reflection(joints: np.ndarray) -> np.ndarray:
    """The hand of the other side with the same palm: what a tracker outputs when it takes a left
    hand for a right one (fingers and thumb on the other side of the palm plane)."""
    c = joints[[0, 5, 9, 13, 17]].mean(0)
    n = np.cross(joints[9] - joints[0], joints[17] - joints[5])
    n /= np.linalg.norm(n)
    return joints - 2 * ((joints - c) @ n)[:, None] * n


def _detections(swap=slice(0, 0)):
    """MediaPipe-like detections of the two hands: slot order changes every third frame; over
    `swap` both labels are wrong (confidently) and each 3D hand has the other chirality."""
    kp, truth, tracker, present, lengths, _ = two_hand_clip(T)
    world = tracker - tracker[:, :, :1]  # hand-centred
    label = np.tile(np.array([0, 1], np.int8), (T, 1))
    score = np.full((T, 2), 0.9, np.float32)
    for t in range(swap.start, swap.stop):
        label[t] = [1, 0]
        score[t] = 0.95
        world[t] = [_palm_reflection(w) for w in world[t]]
    order = np.arange(T) % 3 == 0
    out = [kp.astype(np.float32), world.astype(np.float32), label, score]
    for a in out:
        a[order] = a[order][:, ::-1]
    return out, kp, truth


def _clean(dets, cfg=None):
    kp2d, world, label, score = dets
    tracks = lift.associate(kp2d, world, label, score, DIAG)
    joints, ok = lift.lift_to_camera(tracks, K)
    hands = Lifted(joints, tracks.kp2d, tracks.score, tracks.present & ok, K.astype(np.float32))
    return clean_video(hands, [(0, T, None)], (1280, 720), cfg or AnnotateConfig())


def test_a_crafted_swap_does_not_swap_left_and_right():
    """Frames 12-15: the tracker calls the left hand right and the right hand left, confidently,
    and gives each the other hand's 3D shape. No frame of the clip swaps the hands, the wrists stay
    on their hands, and no wrist rotation flips between consecutive frames."""
    dets, kp, truth = _detections(swap=slice(12, 16))
    clips, records, counts = _clean(dets)
    assert len(clips) == 1 and not counts
    c = clips[0]
    assert c.presence.all()
    own = np.linalg.norm(c.kp2d - kp, axis=-1).mean(-1)  # [T,2] px to the slot's own hand
    other = np.linalg.norm(c.kp2d - kp[:, ::-1], axis=-1).mean(-1)
    assert (own < 5).all() and (other > 100).all()  # each slot holds its own hand in every frame
    err = np.abs(c.joints[:, :, 0] - truth[:, :, 0])  # wrists: across the image within 1 cm; depth within
    assert err[..., :2].max() < 0.01 and (err[..., 2] / truth[:, :, 0, 2]).max() < 0.06  # the size prior's bias
    go = c.motion.reshape(T, 2, 99)[..., :6]
    a, b = go[..., :3], go[..., 3:]
    rot = np.stack([a, b, np.cross(a, b)], -1)  # [T,2,3,3] columns
    rel = np.einsum("thji,thjk->thik", rot[:-1], rot[1:])
    turn = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))
    assert turn.max() < 90


def test_rows_agree_and_carry_their_quality():
    dets, kp, truth = _detections()
    clips, _, _ = _clean(dets)
    c = clips[0]
    fk = row_joints(c.motion, c.joints, c.presence, c.hand_shape)
    assert np.abs(fk - c.joints).max() < 1e-3
    q = c.quality
    assert q["reproj_px_median"] < 2.0 and q["bone_length_cv"] < 1e-6 and q["flags"] == ""
    assert q["wrist_depth_jump_p95"] < 0.015 and q["fit_rejected"] == 0.0


@pytest.mark.parametrize("action", ["drop", "mark"])
def test_thresholds_drop_or_mark_and_say_why(action):
    dets, _, _ = _detections()
    cfg = AnnotateConfig(quality_action=action, max_reproj=1e-6)  # no real clip is that good
    clips, records, counts = _clean(dets, cfg)
    assert len(records) == 1 and records[0].reason == "reproj_px_median"
    assert "px" in records[0].detail and records[0].start_s == 0.0 and records[0].end_s == T / 15
    if action == "drop":
        assert not clips and counts == [("reproj_px_median", 1)] and records[0].action == "dropped"
    else:
        assert len(clips) == 1 and not counts and records[0].action == "marked"
        assert clips[0].quality["flags"] == "reproj_px_median"
    result = VideoResult([], counts + [("too_short", 2)], "pyav", 0, 0, T, 0.0, (1280, 720), {}, records)
    got = result.ledger_records("/v.mp4")
    assert got[0] == (0.0, T / 15, "reproj_px_median", records[0].detail, records[0].action)
    assert got[1:] == [(None, None, "too_short", "/v.mp4", "dropped")] * 2


def test_the_earlier_path_stays_available():
    """hand_fit='lift': the tracker's joints as they are (not rigid), motion by per-frame IK."""
    dets, _, _ = _detections()
    clips, _, _ = _clean(dets, AnnotateConfig(hand_fit="lift"))
    c = clips[0]
    assert c.quality["bone_length_cv"] > 1e-3  # the tracker's noisy 3D hands
    assert c.hand_shape["kind"] == "bone_lengths"
