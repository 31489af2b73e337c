"""A synthetic MANO model with the real files' exact keys, shapes and dtypes, for tests and demos.

MANO itself is licensed and never shipped. This model is a plausible hand built around our rest
skeleton: finger segments are rings of vertices around the bones, the palm a two-layer slab; the
16 joints regress exactly to the skeleton; the five fingertip vertices sit at the fingertips and
carry MANO's fingertip ids (thumb 744, index 320, middle 443, ring 554, pinky 671), so code that
works on it works unchanged on the real files. Shape blend shapes change size, palm width and
finger lengths; pose blend shapes are small smooth corrections.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from .skeleton import MEDIAPIPE_TO_MANO, MANO_PARENTS, rest_skeleton

__all__ = ["FINGERTIP_VERTEX_IDS", "make_synthetic_mano", "write_synthetic_mano"]

# MANO-order fingertips (thumb, index, middle, ring, pinky), as smplx vertex_ids['mano'] and HaMeR.
FINGERTIP_VERTEX_IDS = {"thumb": 744, "index": 320, "middle": 443, "ring": 554, "pinky": 671}
N_VERTS, N_FACES = 778, 1538
_WRIST_OFFSET = np.array([0.0957, 0.0064, 0.0062])  # MANO's right wrist is not at the origin
_RINGS, _RING_VERTS = 5, 8
# MANO joint of each finger's distal segment -> the tip it reaches (MANO 21-joint order ids)
_TIP_OF = {3: 17, 6: 18, 9: 20, 12: 19, 15: 16}
_TIP_NAME = {3: "index", 6: "middle", 9: "pinky", 12: "ring", 15: "thumb"}


def _perp_basis(d: np.ndarray):
    a = np.eye(3)[np.argmin(np.abs(d))]
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    return u, np.cross(d, u)


def _right_hand(rng: np.random.Generator) -> dict:
    J21 = rest_skeleton("right", dtype=torch.float64).numpy()[list(MEDIAPIPE_TO_MANO)] + _WRIST_OFFSET
    verts, weights, reg_of = [], [], []  # reg_of[i]: joint whose regressor averages vertex i
    faces, finger_of = [], []

    def add(p, w, reg=-1, finger=-1):
        verts.append(p)
        weights.append(w)
        reg_of.append(reg)
        finger_of.append(finger)
        return len(verts) - 1

    tips = _add_fingers(J21, add, verts, faces)
    n_palm = np.cross(J21[4] - J21[0], J21[7] - J21[1])  # wrist->middle1 x index1->pinky1
    n_palm /= np.linalg.norm(n_palm)
    across = (J21[10] - J21[1]) / np.linalg.norm(J21[10] - J21[1])
    layers = _add_palm(J21, add, n_palm, across)
    while len(verts) < N_VERTS:  # fill to MANO's count with points inside the palm
        add(J21[0] + rng.uniform(0.3, 0.7) * (J21[4] - J21[0]) + rng.uniform(-0.01, 0.01) * n_palm, np.eye(16)[0])
    V = np.array(verts)
    faces = np.array(faces)
    # palm faces: triangulate each layer in the palm plane
    from scipy.spatial import Delaunay

    for layer in map(np.array, layers):
        P = V[layer] - J21[0]
        uv = np.stack([P @ across, P @ np.cross(n_palm, across)], axis=1)
        faces = np.concatenate([faces, layer[Delaunay(uv).simplices]])
    return {"V": V, "W": np.array(weights), "faces": faces, "reg_of": np.array(reg_of), "finger_of": np.array(finger_of),
            "tips": tips, "J": J21[:16], "J21": J21}


def _add_fingers(J21: np.ndarray, add, verts: list, faces: list) -> dict[str, int]:
    """Rings of vertices along each finger segment (skinned to it), capped at the tips; -> tip vertex ids."""
    tips = {}
    for j in range(1, 16):  # finger segments
        a, b = J21[j], J21[_TIP_OF.get(j, j + 1)]
        d = (b - a) / np.linalg.norm(b - a)
        u, v = _perp_basis(d)
        radius = 0.0095 - 0.0009 * ((j - 1) % 3)
        first = len(verts)
        f = (j - 1) // 3
        for r in range(_RINGS):
            t = r / (_RINGS - 1) * (0.85 if j in _TIP_OF else 1.0)
            w = np.zeros(16)
            if r == 0:
                w[j], w[MANO_PARENTS[j]] = 0.5, 0.5
            else:
                w[j] = 1.0
            for k in range(_RING_VERTS):
                ang = 2 * np.pi * k / _RING_VERTS
                rr = radius * (0.8 if j in _TIP_OF and r == _RINGS - 1 else 1.0)
                add(a + t * (b - a) + rr * (np.cos(ang) * u + np.sin(ang) * v), w, j if r == 0 else -1, f)
        for r in range(_RINGS - 1):
            for k in range(_RING_VERTS):
                i0 = first + r * _RING_VERTS + k
                i1 = first + r * _RING_VERTS + (k + 1) % _RING_VERTS
                faces += [(i0, i1, i0 + _RING_VERTS), (i1, i1 + _RING_VERTS, i0 + _RING_VERTS)]
        if j in _TIP_OF:
            w = np.zeros(16)
            w[j] = 1.0
            tips[_TIP_NAME[j]] = tip = add(b, w, -1, f)
            last = first + (_RINGS - 1) * _RING_VERTS
            faces += [(last + k, last + (k + 1) % _RING_VERTS, tip) for k in range(_RING_VERTS)]
    return tips


def _add_palm(J21: np.ndarray, add, n_palm: np.ndarray, across: np.ndarray) -> tuple[list, list]:
    """A wrist ring (regresses joint 0) and two layers fanning out to the finger bases; -> the layers."""
    wrist_w = np.eye(16)[0]
    for k in range(16):
        ang = 2 * np.pi * k / 16
        add(J21[0] + 0.022 * np.cos(ang) * across + 0.011 * np.sin(ang) * n_palm, wrist_w, 0)
    bases = [J21[13], J21[1], J21[4], J21[10], J21[7]]  # thumb, index, middle, ring, pinky
    layers = ([], [])
    targets = [(bi, t) for bi in range(5) for t in np.linspace(0.2, 0.9, 10)]
    targets += [(bi + 0.5, t) for bi in range(1, 4) for t in np.linspace(0.35, 0.9, 8)]
    for layer, side in zip(layers, (1, -1)):
        for bi, t in targets:
            lo, hi = int(np.floor(bi)), int(np.ceil(bi))
            base = 0.5 * (bases[lo] + bases[hi])
            layer.append(add(J21[0] + t * (base - J21[0]) + side * 0.012 * n_palm, wrist_w))
    return layers


def make_synthetic_mano(side: str = "right", seed: int = 0) -> dict:
    """The dict a MANO_{RIGHT,LEFT}.pkl holds (clean: numpy arrays and a scipy sparse regressor)."""
    import scipy.sparse

    rng = np.random.default_rng(seed)
    h = _right_hand(rng)
    V, W, faces = h["V"], h["W"], h["faces"]
    n = len(V)
    assert n == N_VERTS, n
    # move the fingertips to MANO's ids
    perm = np.full(n, -1)
    for name, old in h["tips"].items():
        perm[old] = FINGERTIP_VERTEX_IDS[name]
    free = iter(sorted(set(range(n)) - set(FINGERTIP_VERTEX_IDS.values())))
    for i in range(n):
        if perm[i] < 0:
            perm[i] = next(free)
    inv = np.argsort(perm)  # new index -> old index
    V, W, reg_of, finger_of = V[inv], W[inv], h["reg_of"][inv], h["finger_of"][inv]
    faces = perm[faces]
    if len(faces) >= N_FACES:
        faces = faces[:N_FACES]
    else:
        faces = np.concatenate([faces, faces[rng.integers(0, len(faces), N_FACES - len(faces))]])
    J = h["J"]
    reg = np.zeros((16, n))
    for j in range(16):
        idx = np.nonzero(reg_of == j)[0]
        reg[j, idx] = 1.0 / len(idx)
    sd = _shapedirs(V, J, reg, reg_of, finger_of, rng)
    # pose correctives: small, smooth, only on vertices skinned to the rotating joint
    basis = rng.normal(0, 0.0015, (15, 9, 3))
    pd = np.einsum("vj,jkc->vcjk", W[:, 1:], basis).reshape(n, 3, 135)
    # hand PCA: an orthonormal basis; mean pose: a relaxed, slightly flexed hand
    comps, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    mean = np.zeros((15, 3))
    mean[:, 2] = 0.15
    data = {
        "hands_components": comps.T.copy(),
        "f": faces.astype(np.uint32),
        "J_regressor": scipy.sparse.csc_matrix(reg),
        "kintree_table": np.array([[4294967295] + list(MANO_PARENTS[1:]), list(range(16))], dtype=np.int64),
        "J": J.copy(),
        "bs_style": "lbs",
        "hands_coeffs": rng.normal(0, 0.5, (1554, 45)),
        "weights": W,
        "posedirs": pd,
        "hands_mean": mean.reshape(45),
        "v_template": V,
        "shapedirs": sd,
        "bs_type": "lrotmin",
    }
    if side == "left":
        data = _mirror(data)
    elif side != "right":
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return data


def _shapedirs(V, J, reg, reg_of, finger_of, rng: np.random.Generator) -> np.ndarray:
    """[n, 3, 10] shape space: size, palm width, palm length, thickness, and each finger's length."""
    n, wrist = len(V), J[0]
    sd = np.zeros((n, 3, 10))
    sd[:, :, 0] = (V - wrist) * 0.06
    sd[:, 2, 1] = (V[:, 2] - wrist[2]) * 0.08
    reg_v = reg @ V  # [16,3]
    seg_center = np.where(reg_of[:, None] >= 0, reg_v[np.clip(reg_of, 0, 15)], V)
    sd[:, :, 3] = (V - seg_center) * 0.08 * (reg_of[:, None] > 0)  # thickness of rings at the joints
    finger_bases = {0: 1, 1: 4, 2: 7, 3: 10, 4: 13}  # MANO finger order f -> base joint
    for f, base in finger_bases.items():
        m = finger_of == f
        sd[m, :, 4 + f] = (V[m] - J[base]) * 0.08
        sd[m, 0, 2] = (J[base, 0] - wrist[0]) * 0.05  # palm length carries the fingers
    palm = finger_of < 0
    sd[palm, 0, 2] = (V[palm, 0] - wrist[0]) * 0.05
    sd[:, :, 9] = rng.normal(0, 0.0005, (n, 3)) * (palm[:, None])
    return sd


def _mirror(data: dict) -> dict:
    """Left hand = right hand mirrored in x (as MANO's files); axis-angle (x,y,z) -> (x,-y,-z)."""
    out = dict(data)
    flip = np.array([-1.0, 1.0, 1.0])
    out["v_template"] = data["v_template"] * flip
    out["J"] = data["J"] * flip
    out["shapedirs"] = data["shapedirs"] * flip[None, :, None]
    out["posedirs"] = data["posedirs"] * flip[None, :, None]
    out["f"] = data["f"][:, ::-1].copy()
    aa_flip = np.tile([1.0, -1.0, -1.0], 15)
    out["hands_mean"] = data["hands_mean"] * aa_flip
    out["hands_components"] = data["hands_components"] * aa_flip[None]
    return out


def write_synthetic_mano(folder: str | Path, seed: int = 0) -> list[Path]:
    """Write MANO_RIGHT.pkl and MANO_LEFT.pkl (clean, smplx-loadable) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for side, name in (("right", "MANO_RIGHT.pkl"), ("left", "MANO_LEFT.pkl")):
        with open(folder / name, "wb") as f:
            pickle.dump(make_synthetic_mano(side, seed), f, protocol=2)
        paths.append(folder / name)
    return paths


def random_track(model, frames: int, generator: torch.Generator):
    """A smooth random MANO track (moderate pose, fixed betas, drifting translation) for tests and
    benchmarks: returns ((global_orient [T,3], hand_pose [T,45], betas [10], transl [T,3]), joints [T,21,3])."""
    from .mano import mano_forward

    g = generator
    a = torch.linspace(0, 1, frames)[:, None]  # [T,1] blend from a start to an end pose
    go = torch.randn(3, generator=g) * (1 - a) + torch.randn(3, generator=g) * a
    hp = torch.randn(45, generator=g) * 0.3 * (1 - a) + torch.randn(45, generator=g) * 0.3 * a
    betas = torch.randn(10, generator=g)
    tr = (torch.randn(3, generator=g) * (1 - a) + torch.randn(3, generator=g) * a) * 0.2
    with torch.no_grad():
        return (go, hp, betas, tr), mano_forward(model, go, hp, betas, tr)[1]
