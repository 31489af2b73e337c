"""Skeleton: joint orders, rest pose, FK and IK (FK(IK(x)) == x on poses FK can make)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clutch_core.hands.rotations import axis_angle_to_matrix
from clutch_core.hands.skeleton import (
    FINGER_CHAINS,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    MANO_TO_MEDIAPIPE,
    MEDIAPIPE_JOINT_NAMES,
    MEDIAPIPE_TO_MANO,
    PARENTS,
    bone_lengths,
    fk,
    handedness,
    ik,
    rest_from_bone_lengths,
    rest_skeleton,
)

EYE = torch.eye(3, dtype=torch.float64)


def test_mapping_is_a_permutation_that_matches_names():
    assert sorted(MANO_TO_MEDIAPIPE) == list(range(21))
    for mp, mano in enumerate(MANO_TO_MEDIAPIPE):
        a, b = MEDIAPIPE_JOINT_NAMES[mp], MANO_JOINT_NAMES[mano]
        finger = a.split("_")[0]
        assert b.startswith(finger), (a, b)
        assert MEDIAPIPE_TO_MANO[mano] == mp
    x = torch.randn(21, 3)
    assert torch.equal(x[list(MANO_TO_MEDIAPIPE)][list(MEDIAPIPE_TO_MANO)], x)
    # parents agree across the two orders for the 16 MANO joints
    for j in range(1, 16):
        assert PARENTS[MEDIAPIPE_TO_MANO[j]] == MEDIAPIPE_TO_MANO[MANO_PARENTS[j]]
    # local rotation 3f+k rotates MANO joint 1+3f+k
    for f, chain in enumerate(FINGER_CHAINS):
        for k in range(3):
            assert MEDIAPIPE_TO_MANO[1 + 3 * f + k] == chain[k]


def test_rest_skeleton_is_an_adult_hand_in_the_documented_frame():
    r = rest_skeleton("right")
    assert r.shape == (21, 3) and torch.equal(r[0], torch.zeros(3))
    assert 0.09 < (r[9] - r[0]).norm() < 0.10  # wrist to middle MCP ~9.5 cm
    assert (r[[8, 12, 16, 20], 0] < -0.1).all()  # fingers along -x
    assert r[4, 2] > 0.05 and r[20, 2] < -0.05  # thumb on +z, pinky on -z
    assert r[1, 1] < r[9, 1] - 0.01  # the thumb base sits on the palm side (-y)
    left = rest_skeleton("left")
    assert torch.allclose(left, r * torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.allclose(rest_skeleton("right", scale=0.5), r * 0.5)
    assert not handedness(r) and handedness(left)


def test_rest_from_bone_lengths_keeps_lengths():
    lengths = bone_lengths(rest_skeleton("left")) * 1.2
    rest = rest_from_bone_lengths(lengths, "left")
    assert torch.allclose(rest, rest_skeleton("left") * 1.2, atol=1e-6)


def test_fk_identity_is_rest_plus_translation():
    rest = rest_skeleton("right")
    t = torch.tensor([0.1, -0.2, 0.5])
    out = fk(torch.eye(3), torch.eye(3).expand(15, 3, 3), t, rest)
    assert torch.allclose(out, rest + t)


def test_fk_local_rotation_moves_only_its_finger():
    rest = rest_skeleton("right")
    loc = torch.eye(3).repeat(15, 1, 1)
    loc[3] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.0]))  # middle1 (MANO order)
    out = fk(torch.eye(3), loc, torch.zeros(3), rest)
    moved = (out - rest).norm(dim=-1) > 1e-6
    assert moved.nonzero().flatten().tolist() == [10, 11, 12]  # middle PIP, DIP, tip
    assert torch.allclose(bone_lengths(out), bone_lengths(rest), atol=1e-6)


def _random_pose(seed, batch, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    go = axis_angle_to_matrix(torch.randn(batch, 3, generator=g, dtype=dtype) * 2)
    aa = torch.randn(batch, 15, 3, generator=g, dtype=dtype) * 0.25
    aa[..., 2] += torch.rand(batch, 15, generator=g, dtype=dtype) * 1.2  # mostly flexion
    loc = axis_angle_to_matrix(aa)
    transl = torch.randn(batch, 3, generator=g, dtype=dtype) * 0.3
    scale = 0.8 + 0.4 * torch.rand(batch, 1, 1, generator=g, dtype=dtype)
    return go, loc, transl, scale


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["left", "right"]), st.sampled_from([torch.float32, torch.float64]))
def test_fk_of_ik_reproduces_joints(seed, side, dtype):
    go, loc, transl, scale = _random_pose(seed, 64, dtype)
    x = fk(go, loc, transl, rest_skeleton(side, dtype=dtype) * scale)
    g2, l2, t2 = ik(x)  # side inferred, rest from the joints' own bone lengths
    rest = rest_from_bone_lengths(bone_lengths(x), side)
    err = (fk(g2, l2, t2, rest) - x).norm(dim=-1).max().item()
    assert err < 1e-4  # 0.1 mm
    assert torch.allclose(t2, transl)
    g3, l3, t3 = ik(x, rest=rest_skeleton(side, dtype=dtype) * scale, side=side)
    assert (fk(g3, l3, t3, rest_skeleton(side, dtype=dtype) * scale) - x).norm(dim=-1).max().item() < 1e-4
    assert torch.allclose(g2, go, atol=1e-4)  # the palm is rigid: global orientation is exact


def test_ik_recovers_hinge_rotations_exactly():
    """Pure flexion about the rest flexion axes is recovered as such (twist fixed by the bend plane)."""
    rest = rest_skeleton("right", dtype=torch.float64)
    go, _, transl, _ = _random_pose(3, 8)
    x0 = fk(go, EYE.expand(8, 15, 3, 3), transl, rest)
    _, loc0, _ = ik(x0, rest=rest, side="right")
    assert torch.allclose(loc0, EYE.expand_as(loc0), atol=1e-9)  # rest pose -> identity
    # bend the index finger (MANO joints 0-2) about the flexion axis it reports
    from clutch_core.hands.skeleton import flexion_axes

    h = flexion_axes(rest, torch.tensor(False))[0]
    loc = EYE.repeat(8, 15, 1, 1)
    loc[:, 0:3] = axis_angle_to_matrix(h * 0.7)
    x = fk(go, loc, transl, rest)
    _, l2, _ = ik(x, rest=rest, side="right")
    assert torch.allclose(l2, loc, atol=1e-6)


def test_ik_is_batched_orthonormal_and_robust_to_noise():
    go, loc, transl, scale = _random_pose(1, 2000, torch.float32)
    x = fk(go, loc, transl, rest_skeleton("right") * scale).reshape(20, 100, 21, 3)
    noisy = x + torch.randn_like(x) * 0.008  # 8 mm tracker noise
    noisy[0, 0] = noisy[0, 0, :1]  # a collapsed hand (all joints on the wrist)
    g, l, t = ik(noisy, side="right")
    assert g.shape == (20, 100, 3, 3) and l.shape == (20, 100, 15, 3, 3) and t.shape == (20, 100, 3)
    for R in (g, l):
        assert torch.isfinite(R).all()
        assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-4)
        assert torch.allclose(torch.det(R), torch.ones(R.shape[:-2]), atol=1e-4)
    # deterministic
    g2, l2, _ = ik(noisy, side="right")
    assert torch.equal(g, g2) and torch.equal(l, l2)
    # a hand with a NaN joint gives NaN for that hand only
    holed = noisy[:2].clone()
    holed[1, 7, 3] = float("nan")
    g3, l3, t3 = ik(holed, side="right")
    assert torch.isnan(g3[1, 7]).all() and torch.isnan(l3[1, 7]).all() and torch.isnan(t3[1, 7]).all()
    assert torch.isnan(l3).flatten(2).any(-1).nonzero().tolist() == [[1, 7]]
    assert torch.isfinite(l3[0]).all() and torch.allclose(l3[1, :7], l[1, :7])
    # noise in, bounded error out: FK(IK) stays within a few noise levels of the input
    rest = rest_from_bone_lengths(bone_lengths(noisy), "right")
    err = (fk(g, l, t, rest) - noisy).norm(dim=-1)[1:]
    assert err.mean() < 0.02


def test_ik_rejects_bad_shapes():
    with pytest.raises(ValueError, match="21,3"):
        ik(torch.zeros(5, 20, 3))
    with pytest.raises(ValueError, match="side"):
        rest_skeleton("both")


@pytest.mark.slow
def test_ik_on_real_mediapipe_landmarks(shared_data):
    """Real tracked joints (MediaPipe world landmarks of the sample photos): IK stays sane."""
    import os

    pytest.importorskip("mediapipe")
    hand_tracking = pytest.importorskip("hand_tracking")
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    task = os.path.join(os.path.dirname(hand_tracking.__file__), "hand_landmarker.task")
    opts = vision.HandLandmarkerOptions(base_options=BaseOptions(model_asset_path=task), num_hands=2)
    joints, labels = [], []
    with vision.HandLandmarker.create_from_options(opts) as det:
        for path in sorted((shared_data / "images").glob("hands_*.jpg")):
            res = det.detect(mp.Image.create_from_file(str(path)))
            for lm, hd in zip(res.hand_world_landmarks, res.handedness):
                joints.append([[p.x, p.y, p.z] for p in lm])
                labels.append(hd[0].category_name.lower())
    if not joints:
        pytest.skip("no hands found in the sample photos")
    x = torch.tensor(joints, dtype=torch.float64)  # [N,21,3] metres
    left = handedness(x)
    assert [("left" if v else "right") for v in left.tolist()] == labels  # agrees with MediaPipe
    g, l, t = ik(x)
    for R in (g, l):
        assert torch.isfinite(R).all()
        assert torch.allclose(R @ R.transpose(-1, -2), EYE.expand_as(R), atol=1e-9)
    rest = torch.stack([rest_from_bone_lengths(bone_lengths(j), "left" if s else "right") for j, s in zip(x, left)])
    err = (fk(g, l, t, rest) - x).norm(dim=-1)
    # only the palm's non-rigid shape (which the MANO layout cannot hold) is lost
    assert err.mean() < 0.01 and err.max() < 0.02
