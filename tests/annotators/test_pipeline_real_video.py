"""The sample egocentric video end to end: plausible adult hands, 15 fps, both hands, captions."""
import numpy as np
import pytest

from annotators.discovery import video_id
from annotators.pipeline import AnnotateConfig, annotate_video
from storage.schema import FPS, rows_to_table, table_to_rows, validate_row
from tests.fixtures.tiny_vlm import build_tiny_vlm


@pytest.fixture(scope="module")
def result(shared_data, tmp_path_factory):
    """The default chain plus a tiny random VLM (exercises keyframe decoding and the vlm captioner)."""
    path = shared_data / "videos" / "ego_kitchen_4s.mp4"
    vlm = build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny")
    cfg = AnnotateConfig(vlm=str(vlm), vlm_frames=2, vlm_max_new_tokens=4)
    return path, annotate_video(path, video_id(path), cfg)


@pytest.mark.slow
def test_real_video_clips_are_valid_rows(result):
    path, r = result
    assert r.reader == "pyav" and r.image_size == (1920, 1080)  # reader auto: H.264 -> PyAV
    assert r.num_frames == 60  # 4 s at 15 fps
    assert len(r.rows) >= 1 and sum(row["num_frames"] for row in r.rows) >= 40
    for row in r.rows:
        validate_row(row)
        assert row["fps"] == FPS and row["pose_convention"] == "skeleton-ik"
        assert row["clip_id"] == f"{row['video_id']}-{round(row['start_s'] * FPS):06d}"
    back = table_to_rows(rows_to_table(r.rows))  # survives the Parquet schema
    np.testing.assert_array_equal(back[0]["presence"], r.rows[0]["presence"])


@pytest.mark.slow
def test_real_video_adult_hands_both_in_view(result):
    _, r = result
    pres = np.concatenate([row["presence"] for row in r.rows])
    joints = np.concatenate([row["joints3d"] for row in r.rows])
    size = np.linalg.norm(joints[:, :, 9] - joints[:, :, 0], axis=-1)[pres]  # wrist -> middle MCP
    assert 0.06 <= np.median(size) <= 0.12 and np.mean((size > 0.05) & (size < 0.13)) > 0.9
    assert pres.all(1).mean() > 0.5  # both hands in most frames of the clips
    depth = joints[:, :, 0, 2][pres]
    assert 0.15 < np.median(depth) < 1.2  # hands at arm's length in front of the camera
    kp = np.concatenate([row["keypoints2d"] for row in r.rows])
    wx = kp[:, :, 0, 0]
    # the person's left hand is on the image's left of the right hand when both are seen
    both = pres.all(1)
    assert np.mean(wx[both, 0] < wx[both, 1]) > 0.9
    assert np.isnan(kp[~pres]).all() and (np.nanmax(kp[..., 0]) <= 1920 * 1.05)  # source pixels
    for row in r.rows:
        q = row["quality"]
        assert q["presence_left"] > 0.5 and q["presence_right"] > 0.5 and q["handedness_score"] > 0.5


@pytest.mark.slow
def test_real_video_one_rigid_hand_on_the_image(result):
    """The default fit: joints land on the image (median < 0.4 % of the diagonal), hands are rigid,
    depth does not jump, and FK of `motion` with the row's shape is `joints3d` (within 1 mm)."""
    from clutch_core.hands import quality as Q
    from clutch_core.hands.fit import row_joints

    _, r = result
    errs, jumps = [], []
    for row in r.rows:
        pr = row["presence"]
        errs.append(Q.reprojection_px(row["joints3d"], row["keypoints2d"], pr, row["intrinsics"]))
        jumps.append(Q.wrist_depth_jumps(row["joints3d"], pr))
        assert row["hand_shape"]["kind"] == "bone_lengths" and row["quality"]["bone_length_cv"] < 1e-5
        assert row["quality"]["flags"] == "" and 0 <= row["quality"]["fit_rejected"] < 0.3
        fk = row_joints(row["motion"], row["joints3d"], pr, row["hand_shape"])
        assert np.abs(fk[pr] - row["joints3d"][pr]).max() < 1e-3
        assert abs(row["quality"]["reproj_px_median"] - np.median(errs[-1])) < 1e-3
    assert np.median(np.concatenate(errs)) < 0.004 * np.hypot(1920, 1080)
    assert np.percentile(np.concatenate(jumps), 95) < 0.015


@pytest.mark.slow
def test_real_video_kinematic_captions_narration_and_mano(result, tmp_path):
    from clutch_core.hands.mano_synthetic import write_synthetic_mano

    path, r = result
    for row in r.rows:
        caps = {c["source"]: c["text"] for c in row["captions"]}
        assert "kinematic" in caps and "hand" in caps["kinematic"] and caps.get("vlm")
    write_synthetic_mano(tmp_path)  # MANO's array layout, synthetic values
    cfg = AnnotateConfig(mano_dir=str(tmp_path), mano_iterations=2)
    again = annotate_video(path, r.rows[0]["video_id"], cfg, narrations=[(0.5, 2.0, "walk to the counter")])
    assert [row["clip_id"] for row in again.rows] == [r.rows[0]["video_id"] + "-000008"]
    row = again.rows[0]
    validate_row(row)
    assert row["captions"][0] == {"source": "narration", "text": "walk to the counter"}
    assert row["pose_convention"] == "mano" and row["fingerprint"] == cfg.fingerprint() != r.rows[0]["fingerprint"]
    first = np.flatnonzero(row["presence"].any(1))[0]
    h = 0 if row["presence"][first, 0] else 1
    np.testing.assert_allclose(row["motion"][first, 99 * h + 96:99 * h + 99], 0, atol=1e-6)  # origin: first wrist
    from clutch_core.hands.fit import row_joints
    from clutch_core.hands.mano import load_mano

    assert row["hand_shape"]["kind"] == "mano_betas" and len(row["hand_shape"]["left"]) == 10
    models = {s: load_mano(tmp_path, s) for s in ("left", "right")}
    pr = row["presence"]
    fk = row_joints(row["motion"], row["joints3d"], pr, row["hand_shape"], models)
    assert np.abs(fk[pr] - row["joints3d"][pr]).max() < 1e-3  # MANO of the motion with the track's betas
