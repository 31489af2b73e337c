"""`clutch synth`: contract, determinism, and geometry that agrees with the hands code."""
import duckdb
import numpy as np
import pytest
import torch

from clutch_cli import main
from clutch_core.hands.motion import motion_to_joints
from clutch_core.hands.skeleton import handedness
from clutch_core.synth.captions import describe
from clutch_core.synth.corpus import INTRINSICS
from clutch_core.synth.primitives import PRIMITIVES, perform
from storage.reader import ClipReader
from storage.schema import FRAME_DIM, MAX_FRAMES


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth") / "D"
    assert main(["synth", "--out", str(d), "--clips", "200", "--seed", "7"]) == 0
    return d


def test_plain_duckdb_reads_the_contract(corpus):
    glob = f"{corpus}/shards/*.parquet"
    n, uniq, fps_ok, lo, hi, dims_ok, caps, sources = duckdb.sql(f"""
        SELECT count(*), count(DISTINCT clip_id), bool_and(fps = 15), min(num_frames), max(num_frames),
               bool_and(len(motion) = num_frames AND list_min(list_transform(motion, lambda f: len(f))) = {FRAME_DIM}
                        AND list_max(list_transform(motion, lambda f: len(f))) = {FRAME_DIM}),
               min(len(captions)), list(DISTINCT c.source)
        FROM (SELECT *, unnest(captions) AS c FROM '{glob}')""").fetchall()[0]
    assert n >= 200 and uniq == 200  # n counts caption rows
    assert fps_ok and 1 <= lo and hi <= MAX_FRAMES and dims_ok and caps >= 1 and sources == ["synthetic"]
    splits = {r[0] for r in duckdb.sql(f"SELECT DISTINCT split FROM '{glob}'").fetchall()}
    assert splits <= {"train", "val", "test"} and "train" in splits
    meta = duckdb.sql(f"""SELECT bool_and(pose_convention = 'skeleton-ik'), bool_and(tracker.name = 'synthetic'),
                          bool_and(reader = 'synthetic'), count(DISTINCT video_id), bool_and(quality.jitter >= 0)
                          FROM '{glob}'""").fetchall()[0]
    assert meta[:3] == (True, True, True) and meta[3] < 200 and meta[4]  # several clips per video


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_clips(corpus, tmp_path):
    for name in ("a", "b"):
        assert main(["synth", "--out", str(tmp_path / name), "--clips", "40", "--seed", "7"]) == 0
    a, b = sorted((tmp_path / "a" / "shards").glob("*.parquet")), sorted((tmp_path / "b" / "shards").glob("*.parquet"))
    assert a and [p.name for p in a] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    ids40 = ClipReader(tmp_path / "a").clip_ids()
    assert set(ids40) <= set(ClipReader(corpus).clip_ids())  # a longer corpus extends a shorter one
    assert main(["synth", "--out", str(tmp_path / "other"), "--clips", "20", "--seed", "8"]) == 0
    assert not set(ids40) & set(ClipReader(tmp_path / "other").clip_ids())


def test_geometry_agrees_with_hands_code(corpus):
    rows = ClipReader(corpus).read_rows()
    gaps = 0
    for r in rows[:60]:
        pres, j3 = r["presence"], r["joints3d"]
        t0, h0 = np.argwhere(pres)[0]
        np.testing.assert_allclose(r["motion"][t0, 99 * h0 + 96:99 * h0 + 99], 0, atol=1e-6)  # first wrist = origin
        fk = motion_to_joints(torch.tensor(r["motion"], dtype=torch.float64)).numpy() + j3[t0, h0, 0]
        np.testing.assert_allclose(fk[pres], j3[pres], atol=2e-5)  # motion and joints3d describe one pose
        fx, fy, cx, cy = INTRINSICS
        kp = r["keypoints2d"]
        np.testing.assert_allclose(kp[pres][..., 0], fx * j3[pres][..., 0] / j3[pres][..., 2] + cx, rtol=1e-4)
        assert np.isnan(kp[~pres]).all() and np.isfinite(kp[pres]).all()
        assert 0.2 < j3[pres][..., 2].min() and j3[pres][..., 2].max() < 0.8  # hands ~0.4 m in front
        for h, left in ((0, True), (1, False)):  # left/right hands have the right chirality (curl to the palm)
            if pres[:, h].any():
                assert handedness(torch.from_numpy(j3[pres[:, h], h])).eq(left).float().mean() > 0.95
        gaps += int(((~pres[1:]) & pres[:-1]).any())
    assert gaps > 0  # some hands leave the view
    texts = " ".join(c["text"] for r in rows for c in r["captions"]).lower()
    for word in ("left hand", "right hand", "reach", "wave", "pinch", "point", "wrist"):
        assert word in texts


def test_every_primitive_moves_the_hand_as_captioned():
    rng = np.random.default_rng(0)
    for name in PRIMITIVES:
        ctl, steps = perform([name], "right", 30, 1.0, 0.0, rng)
        assert steps[0].name == name and all(np.isfinite(a).all() for a in (ctl.pos, ctl.angles, ctl.curl))
        text = describe({"right": steps}, rng)[0]
        assert text.endswith(".") and ("right hand" in text.lower())
    ctl, steps = perform(["grasp", "release"], "left", 40, 1.0, 0.0, rng)
    end = steps[0].end - 1
    assert ctl.curl[end, 1:].mean() > 0.6 > ctl.curl[0, 1:].mean()  # grasp closes the fingers
    assert ctl.curl[steps[1].end - 1, 1:].mean() < 0.3  # release opens them
    ctl, steps = perform(["lift"], "left", 30, 1.0, 0.0, rng)
    assert ctl.pos[steps[0].end - 1, 1] < ctl.pos[0, 1] - 0.05  # lift goes up (camera y points down)
