"""Lifting MediaPipe's metric hand to the camera frame, checked on real photos.

MediaPipe, run through the project's tracker, gives 2D keypoints (pixels) and metric
world landmarks of its own. The lifted joints must land on the 2D keypoints when
projected with the same intrinsics; that only happens when the world landmarks'
axes really are the camera's (x right, y down, z forward), which is what
`lift_to_camera` assumes. A mirrored copy of the same landmarks must not fit.
"""
import numpy as np
import pytest
from PIL import Image

from clutch_core.hands import lift


@pytest.fixture(scope="module")
def tracker():
    from annotators import tracking

    t = tracking.load_tracker()
    yield t
    t.close()  # now, while pytest captures its native log lines, not at a later garbage collection


def _detect(tracker, shared_data, name):
    img = np.ascontiguousarray(np.asarray(Image.open(shared_data / "images" / name).convert("RGB")))
    tracker.reset()
    d = tracker.track(img[None], fps=1.0)
    h, w = img.shape[:2]
    tracks = lift.HandTracks(d.kp2d[:, :2], d.world[:, :2], d.score[:, :2], d.valid[:, :2])
    return tracks, lift.default_intrinsics(w, h), float(np.hypot(w, h))


def _project(joints, k):
    fx, fy, cx, cy = k
    return np.stack([fx * joints[..., 0] / joints[..., 2] + cx, fy * joints[..., 1] / joints[..., 2] + cy], -1)


@pytest.mark.parametrize("name", ["hands_1.jpg", "hands_5.jpg"])
def test_lifted_joints_project_onto_the_photos_keypoints(tracker, shared_data, name):
    tracks, k, diag = _detect(tracker, shared_data, name)
    assert tracks.present.sum() == 2
    joints, ok = lift.lift_to_camera(tracks, k)
    assert (ok == tracks.present).all()
    for h in np.flatnonzero(ok[0]):
        cam = joints[0, h]
        assert (cam[:, 2] > 0.1).all() and (cam[:, 2] < 3.0).all()  # in front, at arm's length
        err = np.linalg.norm(_project(cam, k) - tracks.kp2d[0, h], axis=-1)  # [21] pixels
        assert err.mean() < 0.01 * diag, (name, h, err.mean())
        # the 2D and lifted-3D directions wrist -> middle MCP agree (same axes, no mirror)
        d2 = tracks.kp2d[0, h, 9] - tracks.kp2d[0, h, 0]
        d3 = _project(cam[9], k) - _project(cam[0], k)
        assert d2 @ d3 / (np.linalg.norm(d2) * np.linalg.norm(d3)) > 0.95


def test_landmarks_in_other_axes_do_not_fit(tracker, shared_data):
    """The check above can fail: mirrored world landmarks reproject far worse."""
    tracks, k, diag = _detect(tracker, shared_data, "hands_1.jpg")
    good, _ = lift.lift_to_camera(tracks, k, max_reproj=1e9)
    mirrored = lift.HandTracks(tracks.kp2d, tracks.world * np.array([-1.0, 1.0, 1.0], np.float32), tracks.score,
                               tracks.present)
    bad, _ = lift.lift_to_camera(mirrored, k, max_reproj=1e9)
    for h in np.flatnonzero(tracks.present[0]):
        e_good = np.linalg.norm(_project(good[0, h], k) - tracks.kp2d[0, h], axis=-1).mean()
        e_bad = np.linalg.norm(_project(bad[0, h], k) - tracks.kp2d[0, h], axis=-1).mean()
        assert e_bad > 3 * e_good, (h, e_good, e_bad)
