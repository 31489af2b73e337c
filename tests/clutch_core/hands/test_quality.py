"""The ground-truth-free quality figures (clutch_core.hands.quality)."""
import numpy as np

from clutch_core.hands import quality as Q
from clutch_core.hands.skeleton import rest_skeleton

K = np.array([500.0, 500.0, 320.0, 240.0])


def _clip(t_len=20):
    """Two rigid hands moving sideways at 0.5 m, and their exact projections."""
    rest = rest_skeleton("right").numpy().astype(np.float64)
    x = np.linspace(-0.1, 0.1, t_len)
    joints = np.stack([rest + np.array([x[t] - 0.1, 0.0, 0.5]) for t in range(t_len)])
    joints = np.stack([joints, joints + np.array([0.2, 0.0, 0.0])], 1)  # [T,2,21,3]
    return joints, Q.project(joints, K), np.ones((t_len, 2), bool)


def test_exact_hands_have_zero_errors():
    joints, kp, present = _clip()
    q = Q.clip_quality(joints, kp, present, np.full((20, 2), 0.9), K, 15.0)
    assert q["reproj_px_median"] < 1e-6 and q["reproj_px_p95"] < 1e-6
    assert q["bone_length_cv"] < 1e-9 and q["wrist_depth_jump_p95"] < 1e-12 and q["jitter"] < 1e-9
    assert q["presence_left"] == q["presence_right"] == 1.0 and abs(q["handedness_score"] - 0.9) < 1e-6
    assert q["fit_rejected"] == 0.0


def test_each_figure_sees_its_defect():
    joints, kp, present = _clip()
    off = kp.copy()
    off[..., 0] += 3.0  # every keypoint 3 px to the right
    assert abs(Q.clip_quality(joints, off, present, np.ones((20, 2)), K, 15.0)["reproj_px_median"] - 3.0) < 1e-6
    deeper = joints.copy()
    deeper[10:, :, :, 2] += 0.04  # a 4 cm depth step (kp unchanged)
    jumps = Q.wrist_depth_jumps(deeper, present)
    assert abs(jumps.max() - 0.04) < 1e-9 and (jumps > 1e-9).sum() == 2
    stretched = joints.copy()
    stretched[::2] = joints[::2] * 1.1 - joints[::2, :, :1] * 0.1  # every other frame 10 % larger, wrist fixed
    assert Q.bone_length_cv(stretched, present) > 0.04
    shaky = joints + np.random.default_rng(0).normal(0, 0.005, joints.shape)
    assert Q.jitter(shaky, present, 15.0) > 1.0


def test_absent_hands_and_missing_keypoints_are_left_out():
    joints, kp, present = _clip()
    present[5:8, 1] = False
    kp[5:8, 1] = np.nan
    joints[5:8, 1] = 0.0  # absent: zeros, as stored
    kp[0, 0, 4] = np.nan  # one keypoint missing
    q = Q.clip_quality(joints, kp, present, np.ones((20, 2)), K, 15.0)
    assert q["reproj_px_median"] < 1e-6 and q["wrist_depth_jump_p95"] < 1e-12 and q["presence_right"] == 17 / 20
    assert len(Q.reprojection_px(joints, kp, present, K)) == (40 - 3) * 21 - 1


def test_per_track_figures_see_a_track_that_is_off_in_a_third_of_its_frames():
    joints, kp, present = _clip(30)
    off = kp.copy()
    off[:10, 0, :, 0] += 30.0  # the left hand's keypoints 30 px off in 10 of 30 frames
    present[:, 1] = False  # the right hand never in this clip
    q = Q.clip_quality(joints, off, present, np.ones((30, 2)), K, 15.0)
    assert q["reproj_px_median"] < 1e-6  # the pooled median hides it
    assert abs(q["reproj_track_mean_left"] - 10.0) < 1e-6 and q["reproj_track_median_left"] < 1e-6
    assert abs(q["reproj_track_p95_left"] - 30.0) < 1e-6
    assert q["reproj_track_mean_right"] is None and q["reproj_track_p95_right"] is None
