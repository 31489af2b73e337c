"""The HaMeR-style tracker: a tiny random-weight model saved in HaMeR's checkpoint layout, loaded
back through torch.hub, run on the real sample video. Random weights: these tests check the
code path (keys, shapes, crops, flips, boxes, handedness), not the quality of the hands."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from annotators import hamer_net, hamer_tracker
from annotators.hamer_net import HamerConfig, HamerNet, save_checkpoint
from annotators.tracking import MediaPipeHands

REPO = str(Path(__file__).resolve().parents[2])
TINY = dict(embed_dim=64, depth=2, num_heads=4, head_dim=64, head_depth=2, head_heads=2, head_dim_head=16,
            head_mlp_dim=64)


def _tiny_net(seed: int = 0) -> HamerNet:
    """Random weights, with HaMeR's small-gain read-outs and a plausible mean camera, so the
    predicted hand lands inside its crop (as a trained model's would)."""
    torch.manual_seed(seed)
    net = HamerNet(HamerConfig(**TINY))
    for lin in (net.mano_head.decpose, net.mano_head.decshape, net.mano_head.deccam):
        torch.nn.init.xavier_uniform_(lin.weight, gain=0.01)
        torch.nn.init.zeros_(lin.bias)
    net.mano_head.init_cam.copy_(torch.tensor([[4.0, 0.0, 0.0]]))
    return net


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from clutch_core.hands.mano_synthetic import write_synthetic_mano

    root = tmp_path_factory.mktemp("hamer")
    net = _tiny_net()
    ckpt = save_checkpoint(net, root / "hamer_ckpts")
    write_synthetic_mano(root / "mano")
    return {"net": net, "ckpt": ckpt, "mano": root / "mano", "root": root}


@pytest.fixture(scope="module")
def tracker(files):
    return torch.hub.load(REPO, "hamer", source="local", trust_repo=True, checkpoint=str(files["ckpt"]),
                          mano_dir=str(files["mano"]), device="cpu")


@pytest.fixture(scope="module")
def frames(shared_data):
    import decord

    vr = decord.VideoReader(str(shared_data / "videos" / "ego_kitchen_4s.mp4"), width=480, height=270)
    return vr.get_batch(list(range(0, 60, 10))).asnumpy()  # 6 frames, [6, 270, 480, 3] RGB


def test_checkpoint_layout_has_hamer_names_and_vit_h_shapes(files):
    sd = torch.load(files["ckpt"], weights_only=True)["state_dict"]
    assert sd["backbone.pos_embed"].shape == (1, 16 * 12 + 1, 64)  # 256x192 crop, 16 px patches + cls slot
    for key in ("backbone.patch_embed.proj.weight", "backbone.blocks.1.attn.qkv.bias", "backbone.blocks.0.mlp.fc2.weight",
                "backbone.last_norm.weight", "mano_head.transformer.to_token_embedding.weight",
                "mano_head.transformer.pos_embedding", "mano_head.transformer.transformer.layers.1.0.fn.to_qkv.weight",
                "mano_head.transformer.transformer.layers.1.1.fn.to_kv.weight",
                "mano_head.transformer.transformer.layers.0.2.fn.net.3.bias", "mano_head.decpose.weight",
                "mano_head.init_hand_pose", "mano_head.init_betas", "mano_head.init_cam"):
        assert key in sd, key
    with torch.device("meta"):  # the released size, without allocating 2.5 GB
        full = HamerNet(HamerConfig()).state_dict()
    assert full["backbone.pos_embed"].shape == (1, 193, 1280)
    assert full["backbone.patch_embed.proj.weight"].shape == (1280, 3, 16, 16)
    assert "backbone.blocks.31.mlp.fc1.weight" in full and "backbone.blocks.32.norm1.weight" not in full
    assert full["mano_head.transformer.transformer.layers.5.1.fn.to_kv.weight"].shape == (1024, 1280)
    assert full["mano_head.transformer.transformer.layers.0.0.fn.to_qkv.weight"].shape == (1536, 1024)
    assert full["mano_head.decpose.weight"].shape == (96, 1024)
    assert full["mano_head.transformer.to_token_embedding.weight"].shape == (1024, 1)


def test_hub_loads_the_saved_weights_exactly(files, tracker):
    assert isinstance(tracker, hamer_tracker.HamerHands) and tracker.version.startswith("hamer-vit2x64-")
    assert tracker.cfg.depth == 2 and tracker.cfg.embed_dim == 64  # from model_config.yaml one folder up
    saved, loaded = files["net"].state_dict(), tracker.net.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)


def test_tracks_video_frames(tracker, frames):
    t, h, w = frames.shape[:3]
    tracker.reset()
    det = tracker.track(frames, fps=1.5)
    assert det.kp2d.shape == (t, 2, 21, 2) and det.world.shape == (t, 2, 21, 3)
    v = det.valid
    assert v.any(axis=1).all() and (det.label[v] == 0).any() and (det.label[v] == 1).any()  # both hands in the video
    assert np.isfinite(det.kp2d[v]).all() and np.isfinite(det.world[v]).all()
    assert np.isnan(det.kp2d[~v]).all() and (det.label[~v] == -1).all()
    assert np.allclose(det.world[v][:, 0], 0) and (np.linalg.norm(det.world[v][:, 9], axis=-1) > 0.01).all()

    mp = MediaPipeHands()  # the boxes and labels: MediaPipe's detections on the same frames
    ref = mp.track(frames, fps=1.5)
    mp.close()
    for i in range(t):
        for j in np.flatnonzero(ref.valid[i]):
            k = int(np.flatnonzero(det.label[i] == ref.label[i, j])[0])  # handedness comes from the box
            assert det.score[i, k] == pytest.approx(ref.score[i, j])
            kp = ref.kp2d[i, j]
            box = np.r_[kp.min(0).clip(0, [w - 1, h - 1]), kp.max(0).clip(0, [w - 1, h - 1])]
            centre, side = hamer_tracker.square_box(box, tracker.rescale)
            inside = np.abs(det.kp2d[i, k] - centre) <= side / 2
            assert inside.all(), (i, j)  # pixels of this frame, inside the hand's crop

    tracker.reset()  # reset forgets the carried boxes: a rerun is identical
    again = tracker.track(frames, fps=1.5)
    assert np.array_equal(again.label, det.label) and np.allclose(again.kp2d[v], det.kp2d[v], atol=1e-3)


def test_left_hand_is_the_mirrored_right_hand(tracker, frames):
    frame = frames[0]
    w = frame.shape[1]
    box = np.array([[150.0, 80.0, 260.0, 200.0]])
    kp_r, j_r = tracker.predict(frame, box, np.array([True]))
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    mbox = np.array([[w - 1 - 260.0, 80.0, w - 1 - 150.0, 200.0]])
    kp_l, j_l = tracker.predict(mirrored, mbox, np.array([False]))
    assert np.allclose(kp_l[..., 0], w - 1 - kp_r[..., 0], atol=1e-2) and np.allclose(kp_l[..., 1], kp_r[..., 1], atol=1e-2)
    assert np.allclose(j_l[..., 0], -j_r[..., 0], atol=1e-5) and np.allclose(j_l[..., 1:], j_r[..., 1:], atol=1e-5)


def test_lost_hand_keeps_its_box_for_carry_frames(tracker, frames):
    seq = np.concatenate([frames[:1], np.zeros((3,) + frames.shape[1:], np.uint8)])  # then the hands vanish
    tracker.reset()
    det = tracker.track(seq, fps=15.0)
    first = sorted(det.label[0][det.valid[0]])
    assert first and sorted(det.label[1][det.valid[1]]) == first and sorted(det.label[2][det.valid[2]]) == first
    assert not det.valid[3].any()  # carry_frames = 2, then gone
    tracker.reset()
    assert not tracker.track(seq[1:], fps=15.0).valid.any()  # nothing carried across reset, none invented


@pytest.mark.parametrize("flip", [False, True])
def test_crop_and_uncrop_agree(flip):
    img = np.zeros((200, 300, 3), np.uint8)
    img[120, 70] = 255  # one bright pixel
    centre, side = hamer_tracker.square_box(np.array([40.0, 90.0, 110.0, 150.0]), 2.0)
    assert side == pytest.approx(2 * 70 * 256 / 192)  # widened to 192:256, then the larger side
    patch = hamer_tracker.crop(img, centre, side, 256, flip)
    q = np.array(np.unravel_index(np.argmax(patch[..., 0]), patch.shape[:2])[::-1], float)  # (x, y) in the crop
    back = hamer_tracker.uncrop_points((q - 128) / 256, centre, side, flip)
    assert np.abs(back - [70, 120]).max() <= side / 256


def _write_ckpt(path: Path, sd: dict, config_from: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model_config.yaml").write_text((config_from.parent.parent / "model_config.yaml").read_text())
    torch.save({"state_dict": sd}, path / "hamer.ckpt")
    return path / "hamer.ckpt"


def test_wrong_or_missing_keys_are_refused(files, tmp_path):
    sd = files["net"].state_dict()
    hamer_tracker._NETS.clear()
    broken = dict(sd)
    del broken["backbone.blocks.1.attn.qkv.weight"]
    broken["backbone.blocks.1.attn.qkv_weight"] = sd["backbone.blocks.1.attn.qkv.weight"]
    ckpt = _write_ckpt(tmp_path / "a", broken, files["ckpt"])
    with pytest.raises(ValueError, match=r"hamer.ckpt: weights do not match.*missing 1 key\(s\): "
                                         r"backbone.blocks.1.attn.qkv.weight.*unexpected 1 key"):
        hamer_tracker.HamerHands(ckpt, files["mano"], device="cpu")
    with pytest.raises(ValueError, match=r"missing .*backbone.blocks.2"):  # a config that does not fit the weights
        hamer_tracker.HamerHands(files["ckpt"], files["mano"], device="cpu", config={"depth": 3})
    other = {k: v for k, v in sd.items() if not k.startswith("mano_head.")}
    other["mano.shapedirs"] = torch.zeros(3)  # training-only parts (MANO buffers) are ignored, the head is required
    with pytest.raises(ValueError, match=r"missing \d+ key\(s\): mano_head\."):
        hamer_tracker.HamerHands(_write_ckpt(tmp_path / "b", other, files["ckpt"]), files["mano"], device="cpu")


def test_lightning_checkpoint_with_pickled_config_loads(files, tmp_path):
    fake = types.ModuleType("yacs.config")  # stands for yacs, which is not installed here

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    fake.CfgNode = CfgNode
    parent = types.ModuleType("yacs")
    parent.config = fake
    sys.modules.update({"yacs": parent, "yacs.config": fake})
    try:
        sd = dict(files["net"].state_dict(), **{"mano.shapedirs": torch.zeros(2), "discriminator.w": torch.ones(1)})
        obj = {"state_dict": sd, "hyper_parameters": {"cfg": CfgNode(MODEL={"IMAGE_SIZE": 256})}}
        (tmp_path / "checkpoints").mkdir()
        torch.save(obj, tmp_path / "checkpoints" / "hamer.ckpt")
    finally:
        del sys.modules["yacs.config"], sys.modules["yacs"]
    got = hamer_net.read_state_dict(tmp_path / "checkpoints" / "hamer.ckpt")
    net = HamerNet(HamerConfig(**TINY))
    hamer_net.load_weights(net, got, "x")
    assert torch.equal(net.backbone.pos_embed, files["net"].backbone.pos_embed)


def test_missing_files_say_what_to_get(files, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint=/path/to/hamer.ckpt.*github.com/geopavlakos/hamer"):
        hamer_tracker.HamerHands(None, files["mano"])
    with pytest.raises(FileNotFoundError, match="HaMeR checkpoint not found: .*nope.ckpt"):
        hamer_tracker.HamerHands(tmp_path / "nope.ckpt", files["mano"])
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl.*mano.is.tue.mpg.de"):
        hamer_tracker.HamerHands(files["ckpt"], None)
    with pytest.raises(FileNotFoundError, match="no MANO_RIGHT.pkl"):
        hamer_tracker.HamerHands(files["ckpt"], tmp_path)


@pytest.mark.slow
def test_build_settings_run_the_pipeline_with_hamer(files, shared_data, tmp_path):
    """`clutch build V --out D --tracker hamer --set tracker_kwargs='{...}'`: the settings as the CLI
    parses them, then one video through the annotators with this tracker (~7 s on CPU)."""
    import json

    from annotators.pipeline import annotate_video
    from clutch_cli.options import key_values
    from flows.config import BuildConfig

    kw = {"checkpoint": str(files["ckpt"]), "mano_dir": str(files["mano"]), "device": "cpu"}
    cfg = BuildConfig(videos=("v.mp4",), out=str(tmp_path), tracker="hamer",
                      annotate=key_values("annotate", [f"tracker_kwargs={json.dumps(kw)}"])).annotate_config()
    assert cfg.tracker == "hamer" and cfg.tracker_kwargs == kw
    res = annotate_video(shared_data / "videos" / "ego_kitchen_4s.mp4", "v", cfg)
    assert res.rows and res.frames_tracked > 0
    assert {r["tracker"]["name"] for r in res.rows} == {"hamer"}
    assert all(r["tracker"]["version"].startswith("hamer-vit2x64-") for r in res.rows)
    from clutch_core.hands.fit import row_joints
    from storage.schema import QUALITY_FIELDS, validate_row

    for r in res.rows:  # the same fit and quality fields as with MediaPipe
        validate_row(r)
        assert set(QUALITY_FIELDS) <= set(r["quality"]) and r["hand_shape"]["kind"] == "bone_lengths"
        pr = r["presence"]
        fk = row_joints(r["motion"], r["joints3d"], pr, r["hand_shape"])
        assert np.abs(fk[pr] - r["joints3d"][pr]).max() < 1e-3


class _RunsCode:
    """Pickles as a call of os.system: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_checkpoint_pickling_other_code_is_refused_without_running_it(files, tmp_path):
    marker = tmp_path / "ran"
    sd = files["net"].state_dict()
    torch.save({"state_dict": sd, "hyper_parameters": {"cfg": _RunsCode(marker)}}, tmp_path / "hamer.ckpt")
    with pytest.raises(ValueError, match=r"hamer.ckpt: refused: it pickles posix.system"):
        hamer_net.read_state_dict(tmp_path / "hamer.ckpt")
    assert not marker.exists(), "the checkpoint's pickled code ran"
