"""Motion frames: 99/198 layout, joints <-> motion with presence, MotionStats as JSON."""
import json

import pytest
import torch

from clutch_core.hands.motion import (
    FRAME_DIM,
    MotionStats,
    hand_to_vec,
    identity_hand_vec,
    joints_to_motion,
    motion_to_joints,
    pack_frame,
    split_frame,
    vec_to_hand,
)
from clutch_core.hands.rotations import axis_angle_to_matrix, matrix_to_rot6d
from clutch_core.hands.skeleton import rest_skeleton


def _random_motion(T, seed=0):
    g = torch.Generator().manual_seed(seed)
    hands = []
    for _ in range(2):
        go = axis_angle_to_matrix(torch.randn(T, 3, generator=g))
        loc = axis_angle_to_matrix(torch.randn(T, 15, 3, generator=g) * 0.3)
        hands.append(hand_to_vec(go, loc, torch.randn(T, 3, generator=g) * 0.2))
    return pack_frame(*hands)


def test_layout_of_a_hand_vector():
    go = axis_angle_to_matrix(torch.tensor([0.1, 0.2, 0.3]))
    loc = axis_angle_to_matrix(torch.randn(15, 3) * 0.2)
    t = torch.tensor([1.0, 2.0, 3.0])
    v = hand_to_vec(go, loc, t)
    assert v.shape == (99,)
    assert torch.allclose(v[:6], matrix_to_rot6d(go))
    assert torch.allclose(v[6 + 6 * 4 : 12 + 6 * 4], matrix_to_rot6d(loc[4]))  # MANO joint middle2
    assert torch.equal(v[96:], t)
    go2, loc2, t2 = vec_to_hand(v)
    assert torch.allclose(go2, go, atol=1e-6) and torch.allclose(loc2, loc, atol=1e-6) and torch.equal(t2, t)
    frame = pack_frame(v, identity_hand_vec())
    assert frame.shape == (FRAME_DIM,)
    left, right = split_frame(frame)
    assert torch.equal(left, v) and torch.equal(right, identity_hand_vec())
    with pytest.raises(ValueError, match="198"):
        split_frame(torch.zeros(99))


def test_identity_motion_gives_rest_skeletons_at_the_wrists():
    m = pack_frame(identity_hand_vec(), identity_hand_vec())[None].repeat(3, 1)
    m[:, 96:99] = torch.tensor([0.1, 0.0, 0.5])
    j = motion_to_joints(m)
    assert j.shape == (3, 2, 21, 3)
    assert torch.allclose(j[:, 0], rest_skeleton("left") + torch.tensor([0.1, 0.0, 0.5]))
    assert torch.allclose(j[:, 1], rest_skeleton("right"))
    assert motion_to_joints(m[None].repeat(4, 1, 1)).shape == (4, 3, 2, 21, 3)


def test_joints_to_motion_round_trip_and_absent_frames():
    T = 40
    joints = motion_to_joints(_random_motion(T))
    presence = torch.ones(T, 2, dtype=torch.bool)
    presence[:5, 0] = False  # left enters late
    presence[20:26, 1] = False  # right leaves for a while
    presence[30:, 0] = False
    tracked = joints.clone()
    tracked[~presence] = float("nan")  # absent hands are NaN in tracker output
    motion = joints_to_motion(tracked, presence)
    assert motion.shape == (T, FRAME_DIM) and torch.isfinite(motion).all()
    back = motion_to_joints(motion)
    err = (back - joints).norm(dim=-1)[presence]
    assert err.max() < 1e-4  # 0.1 mm
    ident = identity_hand_vec()[:96]
    assert torch.equal(motion[:5, :96], ident.expand(5, 96))
    assert torch.allclose(motion[:5, 96:99], joints[5, 0, 0].expand(5, 3))  # first valid before entry
    assert torch.allclose(motion[30:, 96:99], joints[29, 0, 0].expand(10, 3))  # last valid after exit
    assert torch.allclose(motion[20:26, 99 + 96 :], joints[19, 1, 0].expand(6, 3))
    assert torch.equal(motion[20:26, 99 : 99 + 96], ident.expand(6, 96))


def test_never_present_hand_is_identity_at_origin():
    joints = motion_to_joints(_random_motion(6))
    presence = torch.zeros(6, 2, dtype=torch.bool)
    presence[:, 1] = True
    motion = joints_to_motion(joints, presence)
    assert torch.equal(motion[:, :99], identity_hand_vec().expand(6, 99))


def test_motion_stats_use_present_frames_and_survive_json():
    motion = _random_motion(50)
    presence = torch.ones(50, 2, dtype=torch.bool)
    presence[:25, 0] = False
    motion[:25, :99] = 1000.0  # garbage in absent frames must not leak into the statistics
    stats = MotionStats.fit(motion[None], presence[None])
    assert torch.allclose(stats.mean[:99], motion[25:, :99].mean(0), atol=1e-5)
    assert torch.allclose(stats.std[99:], motion[:, 99:].std(0, unbiased=False).clamp(min=1e-4), atol=1e-5)
    restored = MotionStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert torch.allclose(restored.denormalize(restored.normalize(motion)), motion, atol=1e-3)
    z = restored.normalize(motion[25:])
    assert z[:, :99].mean(0).abs().max() < 1e-3 and (z[:, :99].std(0, unbiased=False) - 1).abs().max() < 1e-3
    with pytest.raises(ValueError, match="198"):
        MotionStats.from_dict({"mean": [0.0], "std": [1.0]})
