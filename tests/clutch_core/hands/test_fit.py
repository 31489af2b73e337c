"""One rigid hand per track, fitted to the image (clutch_core.hands.fit)."""
import itertools

import numpy as np
import torch

from clutch_core.hands import quality as Q
from clutch_core.hands.fit import (FitSettings, viterbi, clip_motion, fit_hands, row_joints, shape_rest,
                                   track_shape)
from clutch_core.hands.skeleton import bone_lengths, fk, rest_skeleton
from tests.fixtures.hand_tracks import DIAG, K, depth_twin, project, rigid_track, two_hand_clip


def _fit(kp, tracker, present, lengths, weight=None, segment=None, **settings):
    t_len = len(present)
    weight = np.ones((t_len, 2)) if weight is None else weight
    segment = np.zeros(t_len, int) if segment is None else segment
    return fit_hands(kp, tracker, present, weight, segment, lengths, K, DIAG, FitSettings(**settings))


def _turn_deg(go: np.ndarray) -> np.ndarray:
    """Rotation between consecutive frames, degrees ([T-1])."""
    rel = np.einsum("tji,tjk->tik", go[:-1], go[1:])
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def test_fit_lands_on_the_image_with_a_rigid_hand_at_the_right_depth():
    kp, truth, tracker, present, lengths, _ = two_hand_clip()
    fit = _fit(kp, tracker, present, lengths)
    assert fit.present.all() and not fit.rejected.any()
    err = Q.reprojection_px(fit.joints, kp, fit.present, K)
    assert np.median(err) < 1.0 and np.percentile(err, 95) < 4.0  # pixels, at 1280x720 (the priors pull a little)
    assert Q.bone_length_cv(fit.joints, fit.present) < 1e-9
    np.testing.assert_allclose(Q.bone_lengths(fit.joints), np.broadcast_to(lengths, (30, 2, 20)), atol=1e-9)
    depth_err = np.abs(fit.transl[..., 2] - truth[:, :, 0, 2])
    assert depth_err.max() < 0.01  # metres, at 0.5 m: the size fixes the depth
    assert np.abs(fit.joints - truth).mean() < 0.005


def test_the_shape_not_the_tracker_sets_the_depth():
    """A tracker whose 3D hand is 20 % too small would put the hand 20 % too close; the fit uses
    the track's shape, and its 2D keypoints, instead."""
    kp, truth, tracker, present, lengths, _ = two_hand_clip()
    wrist = tracker[:, :, :1]
    small = wrist + 0.8 * (tracker - wrist)
    fit = _fit(kp, small, present, lengths)
    assert np.abs(fit.transl[..., 2] - truth[:, :, 0, 2]).max() < 0.01


def test_motion_and_joints3d_agree_by_construction():
    """Forward kinematics of the stored float32 motion with the row's shape equals joints3d."""
    kp, truth, tracker, present, lengths, _ = two_hand_clip()
    present[:4, 0] = False  # the left hand arrives late: the right wrist is the origin
    present[20:23, 1] = False
    fit = _fit(kp, tracker, present, lengths)
    motion, joints = clip_motion(fit.global_orient, fit.local_rots, fit.transl, fit.present, lengths)
    assert motion.dtype == np.float32 and joints.dtype == np.float32
    np.testing.assert_allclose(motion[0, 99 + 96:], 0, atol=1e-7)  # translation relative to the first wrist
    shape = {"kind": "bone_lengths", "left": lengths[0].tolist(), "right": lengths[1].tolist()}
    fk_joints = row_joints(motion, joints, fit.present, shape)
    assert np.abs(fk_joints[fit.present] - joints[fit.present]).max() < 1e-3  # 1 mm (measured: ~1e-7 m)
    assert np.abs(joints[~fit.present]).max() == 0
    np.testing.assert_allclose(joints[fit.present], fit.joints[fit.present], atol=1e-5)


def test_a_flipped_wrist_from_the_tracker_does_not_survive():
    """Frames 10-13 of the tracker's 3D hand have the palm turned the wrong way in depth (the same
    picture, a single view's classic confusion); the 2D keypoints are right. No consecutive frames
    of the fit differ by more than 90 degrees, and the flipped frames follow the truth."""
    kp, truth, tracker, present, lengths, hands = two_hand_clip()
    go, local, transl, _, rest = hands[1]
    flipped = go.clone()
    flipped[10:14] = depth_twin(go[10:14], rest)
    tracker[:, 1] = fk(flipped, local, transl, rest).numpy()
    assert _turn_deg(flipped.numpy()).max() > 90  # the crafted input does flip
    fit = _fit(kp, tracker, present, lengths)
    assert _turn_deg(fit.global_orient[:, 1]).max() < 30
    off = np.degrees(np.arccos(np.clip((np.einsum("tji,tji->t", fit.global_orient[:, 1], go.numpy()) - 1) / 2, -1, 1)))
    assert off.max() < 20


def test_a_real_turn_seen_in_2d_is_kept():
    """When the keypoints themselves show the hand turned over (the twin's picture, fingers curled:
    2D evidence), the fit follows them."""
    kp, truth, tracker, present, lengths, hands = two_hand_clip()
    go, local, transl, _, rest = hands[1]
    twin = depth_twin(go, rest)
    seen = fk(twin, local, transl, rest).numpy()
    kp[:, 1] = project(seen)
    tracker[:, 1] = seen
    fit = _fit(kp, tracker, present, lengths)
    off = np.degrees(np.arccos(np.clip((np.einsum("tji,tji->t", fit.global_orient[:, 1], twin.numpy()) - 1) / 2,
                                       -1, 1)))
    assert off.max() < 20


def test_frames_the_rigid_hand_cannot_explain_are_rejected():
    kp, truth, tracker, present, lengths, _ = two_hand_clip()
    kp[15, 0] = kp[15, 0][::-1]  # keypoints in the wrong order: no hand looks like that
    fit = _fit(kp, tracker, present, lengths)
    assert fit.rejected[15, 0] and not fit.present[15, 0] and fit.rejected.sum() == 1
    assert np.abs(fit.joints[15, 0]).max() == 0
    err = Q.reprojection_px(fit.joints, kp, fit.present, K)
    assert np.median(err) < 1.0


def test_acceleration_never_ties_two_clips():
    """Two clips fitted together (segments): a jump between them is not smoothed away."""
    kp, truth, tracker, present, lengths, _ = two_hand_clip(40)
    shift = np.array([0.0, 0.0, 0.15])
    truth[20:] += shift
    kp[20:] = project(truth[20:])
    tracker[20:] += shift
    segment = np.repeat([0, 1], 20)
    fit = _fit(kp, tracker, present, lengths, segment=segment)
    assert np.abs(fit.transl[..., 2] - truth[:, :, 0, 2]).max() < 0.015  # a clip's first frame is the worst
    assert (fit.transl[20, :, 2] - fit.transl[19, :, 2] > 0.13).all()  # the 15 cm jump is kept, not spread


def test_track_shape_is_robust_and_pulled_toward_an_adult_hand():
    tmpl = bone_lengths(rest_skeleton("right", dtype=torch.float64)).numpy()
    t_len = 40
    rest = rest_skeleton("right", 0.9, dtype=torch.float64).numpy()
    joints = np.repeat(rest[None], t_len, 0)
    joints[:8] = rest * 1.5  # a few wildly wrong frames
    score = np.full(t_len, 0.95)
    est = track_shape(joints, np.ones(t_len, bool), score, "right")
    ratio = est / tmpl
    assert np.allclose(ratio, ratio.mean(), atol=1e-6)  # the template's proportions: the tracker's are the same
    assert 0.93 < ratio.mean() < 0.97  # 0.9 observed, pulled toward 1 (the adult template)
    tiny = track_shape(np.repeat(rest[None] * 0.4, t_len, 0), np.ones(t_len, bool), score, "right")
    assert abs((tiny / tmpl).mean() - FitSettings().shape_range[0]) < 1e-6  # clamped to a plausible hand
    unseen = track_shape(joints, np.zeros(t_len, bool), score, "left")
    np.testing.assert_allclose(unseen, bone_lengths(rest_skeleton("left", dtype=torch.float64)).numpy())


def test_shape_rest_rebuilds_the_skeleton():
    rest = rest_skeleton("left", 1.1, dtype=torch.float64)
    lengths = np.stack([bone_lengths(rest).numpy(), bone_lengths(rest_skeleton("right")).numpy()])
    np.testing.assert_allclose(shape_rest(lengths)[0].numpy(), rest.numpy(), atol=1e-7)


def test_viterbi_finds_the_cheapest_sequence():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        unary, pair, linked = rng.random((n, 2)) * 3, rng.random((max(n - 1, 0), 2, 2)) * 3, rng.random(max(n - 1, 0)) > 0.3

        def cost(seq):
            return sum(unary[i, seq[i]] for i in range(n)) + sum(pair[i, seq[i], seq[i + 1]]
                                                                  for i in range(n - 1) if linked[i])

        best = min(cost(s) for s in itertools.product([0, 1], repeat=n))
        assert abs(cost(viterbi(unary, pair.reshape(-1, 2, 2), linked)) - best) < 1e-9


def test_mano_rows_agree_with_their_betas(tmp_path):
    """With MANO files: MANO with the track's fixed betas; joints3d are MANO's joints of the motion."""
    from clutch_core.hands.fit import mano_clip_motion
    from clutch_core.hands.mano import FitConfig, load_mano, track_betas
    from clutch_core.hands.mano_synthetic import write_synthetic_mano

    write_synthetic_mano(tmp_path)
    models = {s: load_mano(tmp_path, s) for s in ("left", "right")}
    kp, truth, tracker, present, lengths, _ = two_hand_clip(8)
    rest = shape_rest(lengths)
    betas = {s: track_betas(models[s], rest[h], s).numpy() for h, s in enumerate(("left", "right"))}
    motion, joints = mano_clip_motion(truth, present, betas, models, FitConfig(iterations=2))
    shape = {"kind": "mano_betas", **{s: betas[s].tolist() for s in betas}}
    fk_joints = row_joints(motion, joints, present, shape, models)
    assert np.abs(fk_joints - joints).max() < 1e-3
    assert np.abs(joints - truth).mean() < 0.01  # the synthetic MANO follows the fitted hand


def test_the_banded_step_equals_a_dense_solve_of_the_same_system():
    """The coupled 6 unknowns per hand-frame (translation, wrist turn), solved on LAPACK's band,
    against the same system written out dense: blockdiag(S) + the motion prior's Hessian."""
    from clutch_core.hands.fit import MotionBand

    rng = np.random.default_rng(0)
    n = 9  # hand-frames: two chains (4 + 5), as two hands or two clips
    pairs = np.array([(0, 1), (1, 2), (2, 3), (4, 5), (5, 6), (6, 7), (7, 8)])
    triples = np.array([(0, 1, 2), (1, 2, 3), (4, 5, 6), (5, 6, 7), (6, 7, 8)])
    vel_w, acc_w = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    temporal = [(pairs, np.array([-1.0, 1.0]), vel_w), (triples, np.array([1.0, -2.0, 1.0]), acc_w)]
    a = rng.normal(size=(n, 6, 6))
    S = torch.from_numpy(a @ a.transpose(0, 2, 1) + 6 * np.eye(6))
    sg = torch.from_numpy(rng.normal(size=(n, 6)))
    diffs = [torch.from_numpy(rng.normal(size=(len(idx), 6))) for idx, _, _ in temporal]
    x = MotionBand(n, temporal).solve(S, sg, diffs).numpy()

    A, g = np.zeros((6 * n, 6 * n)), sg.numpy().ravel().copy()
    for m in range(n):
        A[6 * m:6 * m + 6, 6 * m:6 * m + 6] += S[m].numpy()
    for (idx, coef, w), dx in zip(temporal, diffs):
        for row, r in zip(idx, dx.numpy()):
            for i, fi in enumerate(row):
                g[6 * fi:6 * fi + 6] += coef[i] * r * w
                for j, fj in enumerate(row):
                    A[6 * fi:6 * fi + 6, 6 * fj:6 * fj + 6] += np.diag(coef[i] * coef[j] * w)
    np.testing.assert_allclose(x.ravel(), np.linalg.solve(A, -g), rtol=1e-9, atol=1e-12)

