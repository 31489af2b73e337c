"""Lifting detections to clean camera-frame two-hand motion (clutch_core.hands.lift)."""
import numpy as np
import torch

from clutch_core.hands import lift
from clutch_core.hands.skeleton import rest_skeleton


def _hand(side, center, t_len):
    """World landmarks (hand-centred) and camera joints of a rest hand at `center` [T, 3]."""
    rest = rest_skeleton(side).numpy()
    rest = rest @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float32).T  # fingers up in the image
    world = rest - rest[_C].mean(0)
    return np.repeat(world[None], t_len, 0), world[None] + center[:, None]


_C = [0, 5, 9, 13, 17]
K = np.array([500.0, 500.0, 320.0, 240.0], np.float32)


def _project(cam):
    return np.stack([K[0] * cam[..., 0] / cam[..., 2] + K[2], K[1] * cam[..., 1] / cam[..., 2] + K[3]], -1)


def _scene(t_len=20):
    """Left hand on the image left moving right, right hand on the image right; tracker order shuffled."""
    lc = np.stack([np.linspace(-0.15, -0.05, t_len), np.zeros(t_len), np.full(t_len, 0.5)], 1)
    rc = np.stack([np.full(t_len, 0.15), np.zeros(t_len), np.full(t_len, 0.5)], 1)
    wl, cl = _hand("left", lc, t_len)
    wr, cr = _hand("right", rc, t_len)
    kp2d = np.stack([_project(cl), _project(cr)], 1).astype(np.float32)
    world = np.stack([wl, wr], 1).astype(np.float32)
    label = np.tile(np.array([0, 1], np.int8), (t_len, 1))
    score = np.full((t_len, 2), 0.9, np.float32)
    swap = np.arange(t_len) % 3 == 0  # detection order changes from frame to frame
    for a in (kp2d, world, label, score):
        a[swap] = a[swap][:, ::-1]
    return kp2d, world, label, score, np.stack([cl, cr], 1)


def test_solve_translations_recovers_camera_positions():
    from clutch_core.hands.fit import solve_translations

    world, cam = _hand("right", np.array([[0.1, -0.05, 0.6], [-0.2, 0.1, 0.9]]), 2)
    kp = _project(cam)
    kp[1, 3] = np.nan  # a missing keypoint is ignored
    t = solve_translations(torch.from_numpy(world.astype(np.float64)), torch.from_numpy(kp), K).numpy()
    np.testing.assert_allclose(world + t[:, None], cam, atol=1e-5)


def test_associate_and_lift_put_each_hand_in_its_slot():
    kp2d, world, label, score, cam = _scene()
    label[5] = label[5][::-1]  # one frame with both labels wrong
    score[5] = 0.7
    tr = lift.associate(kp2d, world, label, score, diag=800.0)
    assert tr.present.all()
    joints, ok = lift.lift_to_camera(tr, K)
    assert ok.all()
    np.testing.assert_allclose(joints, cam, atol=1e-4)  # left slot holds the left hand in every frame


def test_consistent_label_decides_a_lone_hand_wherever_it_is():
    kp2d, world, label, score, _ = _scene()
    j = (label == 0).argmax(1)  # the hand on the image left, alone, but labelled right throughout
    t = np.arange(len(j))
    tr = lift.associate(kp2d[t, j][:, None], world[t, j][:, None], np.ones((len(j), 1), np.int8),
                        np.full((len(j), 1), 0.95, np.float32), 800.0)
    assert tr.present[:, 1].all() and not tr.present[:, 0].any()


def test_chirality_fixed_by_depth_mirror():
    kp2d, world, label, score, cam = _scene(6)
    w = world.copy()
    w[2, :, :, 2] *= -1  # frame 2: the tracker confused palm and back of both hands
    tr = lift.associate(kp2d, w, label, score, 800.0)
    joints, _ = lift.lift_to_camera(tr, K)
    np.testing.assert_allclose(joints[2], cam[2], atol=1e-4)


def test_fill_short_gaps_mask_long_ones():
    t_len = 30
    joints = np.cumsum(np.ones((t_len, 2, 21, 3), np.float32), 0)
    kp = joints[..., :2].copy()
    present = np.ones((t_len, 2), bool)
    present[5:10, 0] = False  # 5 frames: filled
    present[15:21, 0] = False  # 6 frames: stays a gap
    present[:3, 1] = False  # leading gap: never extrapolated
    joints[~present] = np.nan
    j, k, p = lift.fill_gaps(joints, kp, present, max_gap=5)
    assert p[5:10, 0].all() and not p[15:21, 0].any() and not p[:3, 1].any()
    np.testing.assert_allclose(j[5:10, 0], np.cumsum(np.ones((30, 21, 3)), 0)[5:10], atol=1e-5)


def test_savgol_is_scipys():
    from scipy.signal import savgol_filter

    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 2, 21, 3)).astype(np.float32)
    present = np.ones((40, 2), bool)
    present[25, 0] = False  # runs of 25 and 14 frames
    present[:35, 1] = False  # a run of 5 frames: the window shrinks to 5
    out = lift.smooth(x, present, 7, 2)
    np.testing.assert_allclose(out[:25, 0], savgol_filter(x[:25, 0], 7, 2, axis=0), atol=1e-5)
    np.testing.assert_allclose(out[26:, 0], savgol_filter(x[26:, 0], 7, 2, axis=0), atol=1e-5)
    np.testing.assert_allclose(out[35:, 1], savgol_filter(x[35:, 1], 5, 2, axis=0), atol=1e-5)


def test_savgol_reduces_noise_and_keeps_runs_apart():
    rng = np.random.default_rng(0)
    t_len = 40
    clean = np.linspace(0, 1, t_len)[:, None, None, None] * np.ones((t_len, 2, 21, 3))
    noisy = (clean + rng.normal(0, 0.01, clean.shape)).astype(np.float32)
    present = np.ones((t_len, 2), bool)
    present[20, 1] = False
    out = lift.smooth(noisy, present, 7, 2)
    assert np.abs(out - clean)[present].mean() < 0.7 * np.abs(noisy - clean)[present].mean()
    assert np.array_equal(out[20, 1], noisy[20, 1])


def test_motion_origin_is_first_valid_wrist():
    kp2d, world, label, score, cam = _scene()
    present = np.ones((20, 2), bool)
    present[:3, 0] = False  # the left hand appears later: the right wrist of frame 0 is the origin
    joints = np.where(present[..., None, None], cam, 0).astype(np.float32)
    motion = lift.to_motion(joints, present)
    assert motion.shape == (20, 198) and np.isfinite(motion).all()
    np.testing.assert_allclose(motion[0, 195:198], 0, atol=1e-6)
    np.testing.assert_allclose(motion[10, 96:99], cam[10, 0, 0] - cam[0, 1, 0], atol=1e-5)


def test_default_intrinsics_wide_angle():
    fx, fy, cx, cy = lift.default_intrinsics(1920, 1080)
    assert fx == fy == 960 and (cx, cy) == (960, 540)


def test_mano_fit_motion_follows_the_joints(tmp_path):
    from clutch_core.hands.mano import FitConfig, load_mano
    from clutch_core.hands.mano_synthetic import write_synthetic_mano
    from clutch_core.hands.motion import motion_to_joints

    write_synthetic_mano(tmp_path)
    models = {s: load_mano(tmp_path, s) for s in ("left", "right")}
    _, _, _, _, cam = _scene(6)
    present = np.ones((6, 2), bool)
    present[4:, 0] = False
    joints = np.where(present[..., None, None], cam, 0).astype(np.float32)
    motion = lift.to_motion_mano(joints, present, models, FitConfig(iterations=3))
    assert motion.shape == (6, 198) and np.isfinite(motion).all()
    wrists = motion.reshape(6, 2, 99)[:, :, 96:]
    np.testing.assert_allclose(wrists[:4, 0], cam[:4, 0, 0] - cam[0, 0, 0], atol=0.01)
    np.testing.assert_allclose(wrists[4:, 0] - wrists[3, 0], 0, atol=1e-6)  # absent: the last wrist held
    assert motion_to_joints(torch.from_numpy(motion)).shape == (6, 2, 21, 3)
