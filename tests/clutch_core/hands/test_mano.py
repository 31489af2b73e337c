"""MANO through smplx: synthetic files with the real layout, chumpy-free loading and conversion,
forward in MediaPipe order, and fitting MANO to joint tracks."""
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch

from clutch_cli import main as clutch
from clutch_core.hands.mano import FitConfig, ManoJoints, fit_mano, load_mano, mano_forward, mano_rest_joints
from clutch_core.hands.mano_io import convert_mano_dir, load_mano_pickle
from clutch_core.hands.mano_synthetic import (FINGERTIP_VERTEX_IDS, make_synthetic_mano, random_track,
                                               write_synthetic_mano)
from clutch_core.hands.skeleton import MANO_TO_MEDIAPIPE, bone_lengths, rest_skeleton

REAL_LAYOUT = {  # key: (shape, dtype kind) of the official MANO_RIGHT.pkl
    "v_template": ((778, 3), "f"), "shapedirs": ((778, 3, 10), "f"), "posedirs": ((778, 3, 135), "f"),
    "J_regressor": ((16, 778), "f"), "weights": ((778, 16), "f"), "kintree_table": ((2, 16), "i"),
    "f": ((1538, 3), "u"), "hands_components": ((45, 45), "f"), "hands_mean": ((45,), "f"),
    "hands_coeffs": ((1554, 45), "f"), "J": ((16, 3), "f"),
}


@pytest.fixture(scope="module")
def mano_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mano")
    write_synthetic_mano(d, seed=0)
    return d


def test_synthetic_file_has_the_real_layout():
    data = make_synthetic_mano("right")
    assert set(REAL_LAYOUT) | {"bs_style", "bs_type"} == set(data)
    for key, (shape, kind) in REAL_LAYOUT.items():
        assert data[key].shape == shape and data[key].dtype.kind == kind, key
    assert scipy.sparse.issparse(data["J_regressor"])
    assert np.allclose(np.asarray(data["J_regressor"].sum(1)).ravel(), 1)
    assert np.allclose(data["weights"].sum(1), 1)
    assert data["kintree_table"][0, 0] == 4294967295 and data["bs_style"] == "lbs"
    assert data["f"].max() < 778


@pytest.mark.parametrize("side", ["right", "left"])
def test_forward_gives_778_vertices_and_21_mediapipe_joints(mano_dir, side):
    model = load_mano(mano_dir, side)
    verts, joints = mano_forward(model, torch.zeros(2, 3), torch.zeros(2, 45))
    assert verts.shape == (2, 778, 3) and joints.shape == (2, 21, 3)
    # the synthetic hand is built on our rest skeleton: flat MANO hand == rest skeleton at the wrist
    assert torch.allclose(joints[0] - joints[0, 0], rest_skeleton(side), atol=1e-6)
    for name, mp in (("thumb", 4), ("index", 8), ("middle", 12), ("ring", 16), ("pinky", 20)):
        assert torch.allclose(joints[0, mp], verts[0, FINGERTIP_VERTEX_IDS[name]])
    # same numbers as smplx's own forward
    g = torch.Generator().manual_seed(0)
    go, hp, betas, tr = torch.randn(4, 3, generator=g), torch.randn(4, 45, generator=g) * 0.4, torch.randn(10, generator=g), torch.randn(4, 3, generator=g)
    out = model(global_orient=go, hand_pose=hp, betas=betas.expand(4, 10), transl=tr)
    v2, j2 = mano_forward(model, go, hp, betas, tr)
    assert torch.allclose(v2, out.vertices) and torch.allclose(j2[:, [0, 5, 6, 7, 9]], out.joints[:, [0, 1, 2, 3, 4]])
    assert torch.allclose(ManoJoints(model)(go, hp, betas, tr), j2, atol=1e-6)


def _track(model, T, seed):
    """A smooth random track: moderate pose, betas, translation; returns (params, joints)."""
    return random_track(model, T, torch.Generator().manual_seed(seed))


@pytest.mark.slow
@pytest.mark.parametrize("side", ["right", "left"])
def test_fit_recovers_joints_from_known_parameters(mano_dir, side):
    model = load_mano(mano_dir, side)
    _, joints = _track(model, 30, seed=1 if side == "right" else 2)
    presence = torch.ones(30, dtype=torch.bool)
    presence[10:13] = False
    observed = joints.clone()
    observed[10:13] = float("nan")
    fit = fit_mano(observed, model, side, presence=presence, config=FitConfig(iterations=5))
    assert fit.global_orient.shape == (30, 3) and fit.hand_pose.shape == (30, 45) and fit.betas.shape == (10,)
    err = (fit.joints - joints).norm(dim=-1).mean(-1)
    assert err[presence].mean() < 0.002  # 2 mm
    assert err[~presence].mean() < 0.01  # gap bridged by the smoothness term
    assert torch.isnan(fit.error_m[~presence]).all()
    # the motion-layout vector keeps MANO's rotations and puts the wrist in the translation
    vec = fit.to_hand_vec()
    assert vec.shape == (30, 99) and torch.allclose(vec[:, 96:], fit.joints[:, 0])


def _write_chumpy_style(data: dict, path):
    """Pickle `data` as the official files are: arrays as chumpy.ch.Ch objects, regressor sparse.

    The fake chumpy module exists only while writing, so loading later cannot rely on it."""
    chumpy, ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):  # chumpy pickles its __dict__ minus caches
            return {"x": self.x, "_dirty_vars": set(), "_itr": None}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch, chumpy.ch, chumpy.Ch = Ch, ch, Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = chumpy, ch
    try:
        wrapped = {k: Ch(v) if k in ("shapedirs", "v_template", "J", "weights") else v for k, v in data.items()}
        with open(path, "wb") as f:
            pickle.dump(wrapped, f, protocol=2)
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_chumpy_pickles_load_and_convert_without_chumpy(tmp_path, capsys):
    src, dst = tmp_path / "official", tmp_path / "clean"
    src.mkdir()
    data = make_synthetic_mano("right")
    _write_chumpy_style(data, src / "MANO_RIGHT.pkl")
    assert "chumpy" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="chumpy"):
        with open(src / "MANO_RIGHT.pkl", "rb") as f:
            pickle.load(f)  # what smplx does, and why conversion exists
    loaded = load_mano_pickle(src / "MANO_RIGHT.pkl")
    assert isinstance(loaded["shapedirs"], np.ndarray) and np.array_equal(loaded["shapedirs"], data["shapedirs"])
    assert scipy.sparse.issparse(loaded["J_regressor"])

    assert clutch(["mano", "convert", str(src), str(dst)]) == 0
    assert "MANO_RIGHT.pkl" in capsys.readouterr().out
    model = smplx.create(str(dst / "MANO_RIGHT.pkl"), model_type="mano", use_pca=False, flat_hand_mean=True)
    ref = load_mano(src, "right")  # our loader reads the chumpy file directly too
    hp = torch.randn(1, 45) * 0.3
    assert torch.allclose(model(hand_pose=hp).vertices, ref(hand_pose=hp).vertices, atol=1e-6)
    clean = pickle.load(open(dst / "MANO_RIGHT.pkl", "rb"))
    assert set(clean) == set(data) and isinstance(clean["J_regressor"], np.ndarray)


def test_loader_refuses_foreign_classes_and_bad_folders(tmp_path):
    import os

    bad = tmp_path / "MANO_RIGHT.pkl"
    bad.write_bytes(pickle.dumps({"v_template": os.getcwd}))
    with pytest.raises(ValueError, match="refusing"):
        load_mano_pickle(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="MANO_RIGHT.pkl"):
        convert_mano_dir(tmp_path / "empty", tmp_path / "out")
    assert clutch(["mano", "convert", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2


def test_cli_help_and_check(mano_dir, capsys):
    with pytest.raises(SystemExit) as e:
        clutch(["mano", "convert", "--help"])
    assert e.value.code == 0 and "chumpy" in capsys.readouterr().out
    assert clutch(["mano", "check", str(mano_dir)]) == 0
    out = capsys.readouterr().out
    assert "right:" in out and "778 vertices" in out and "9.5 cm" in out


def test_fingertip_ids_are_smplx_ones():
    from smplx.vertex_ids import vertex_ids

    assert FINGERTIP_VERTEX_IDS == dict(vertex_ids["mano"])


def test_rest_joints_match_documented_scale(mano_dir):
    rest = mano_rest_joints(load_mano(mano_dir, "right"))
    assert torch.allclose(bone_lengths(rest), bone_lengths(rest_skeleton("right")), atol=1e-6)
    assert list(MANO_TO_MEDIAPIPE[:5]) == [0, 13, 14, 15, 16]
