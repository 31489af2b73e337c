"""MANO meshes for the 3D panel: motion -> MANO vertices (smplx) -> painter's-algorithm raster.

Needs the user's MANO files (`--mano-dir`). The motion's rotations are used as MANO
parameters with zero shape (betas are not stored per clip); its wrist translation is
where the mesh's wrist is put. For `pose_convention == "mano"` clips that is the fitted
hand up to shape; for `skeleton-ik` clips the rotations were solved on the skeleton, so
the mesh is an approximation of the tracked hand.

The raster is a plain numpy/OpenCV painter's algorithm (faces sorted far to near, one
Lambert-shaded polygon each): no GL context, works on any headless machine.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

LIGHT = np.array([0.3, -0.6, -0.75])  # towards the light, view space (from the viewer, above)
LIGHT = LIGHT / np.linalg.norm(LIGHT)


class ManoMeshes:
    """Both MANO hands, ready to turn motion into vertices."""

    def __init__(self, mano_dir: str | Path):
        from clutch_core.hands.mano import load_mano, mano_rest_joints

        self.models = [load_mano(mano_dir, side) for side in ("left", "right")]
        self.faces = [np.asarray(m.faces, np.int64) for m in self.models]  # [F, 3]
        self.wrist = [mano_rest_joints(m)[0] for m in self.models]  # [3] zero-shape wrist at rest

    @torch.no_grad()
    def vertices(self, motion: np.ndarray) -> np.ndarray:
        """motion [T, 198] -> vertices [T, 2, 778, 3] (metres, the motion's frame)."""
        from clutch_core.hands.mano import mano_forward
        from clutch_core.hands.motion import split_frame, vec_to_hand
        from clutch_core.hands.rotations import matrix_to_axis_angle

        m = torch.from_numpy(np.array(motion, np.float32))
        out = []
        for h, vec in enumerate(split_frame(m)):  # [T, 99] each
            go, loc, tr = vec_to_hand(vec)  # [T,3,3], [T,15,3,3], [T,3]
            verts, _ = mano_forward(self.models[h], matrix_to_axis_angle(go), matrix_to_axis_angle(loc).reshape(-1, 45),
                                    transl=tr - self.wrist[h])
            out.append(verts.float().numpy())
        return np.stack(out, 1)


def draw_mesh(canvas: np.ndarray, cam, verts: np.ndarray, faces: np.ndarray, color) -> None:
    """Fill one hand's faces far-to-near with Lambert shading. verts [V, 3] world; cam: render.Camera."""
    uv, depth = cam.project(verts)  # [V, 2], [V]
    view = (verts - cam.eye) @ cam.R.T  # [V, 3]
    tri = view[faces]  # [F, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    shade = 0.35 + 0.65 * np.abs(n @ LIGHT)  # two-sided: MANO's winding differs between hands
    keep = (depth[faces] > 1e-2).all(1)
    order = np.argsort(-depth[faces].mean(1))
    pts = np.round(uv[faces] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    base = np.asarray(color, np.float64)
    for f in order:
        if keep[f]:
            c = tuple(int(x) for x in np.clip(base * shade[f], 0, 255))
            cv2.fillConvexPoly(canvas, pts[f], c, cv2.LINE_AA, shift=2)
