"""What the viewer animates: tracks of two hands in the viewer's frame, laid out side by side.

A track is one clip or one generated sample: per frame the 21 joints of each hand (and MANO mesh
vertices when MANO files are given), which hand is present, and the motion it came from (for
Caption and Download). Joints come the way `clutch render` takes them (clutch_core.render).

Motion and joints are in the source camera's frame (x right, y down, z forward); the viewer is
z-up, so points are turned by TO_VIEWER (x, y, z) -> (x, z, -y): the scene's +y is the source
camera's viewing direction and +z is up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clutch_core.hands.skeleton import PARENTS

TO_VIEWER = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float32)  # rows: viewer axes in camera axes
BONES = np.array([(j, p) for j, p in enumerate(PARENTS) if p >= 0])  # [20, 2] child, parent
GAP = 0.08  # metres between tracks shown side by side


@dataclass
class Track:
    label: str
    joints: np.ndarray  # [T, 2, 21, 3] viewer frame, metres
    presence: np.ndarray  # [T, 2] bool
    motion: np.ndarray  # [T, 198] the motion shown (source of Caption and Download)
    caption: str = ""
    vertices: np.ndarray | None = None  # [T, 2, V, 3] viewer frame, with MANO files
    faces: list[np.ndarray] | None = None  # per hand [F, 3]

    @property
    def frames(self) -> int:
        return len(self.joints)

    def present_points(self) -> np.ndarray:
        """[K, 3] every finite joint of a present hand (all joints when none is present)."""
        pts = self.joints[self.presence].reshape(-1, 3)
        pts = pts[np.isfinite(pts).all(1)]
        return pts if len(pts) else np.zeros((1, 3), np.float32)


def to_viewer(points: np.ndarray) -> np.ndarray:
    return (np.asarray(points, np.float32) @ TO_VIEWER.T).astype(np.float32)


def make_track(label: str, motion: np.ndarray, presence: np.ndarray, joints: np.ndarray | None = None,
               caption: str = "", meshes=None) -> Track:
    """A track from a motion [T, 198] and presence [T, 2]; `joints` [T, 2, 21, 3] (camera frame) to show
    instead of the motion's forward kinematics; `meshes` a clutch_core.render.mesh.ManoMeshes."""
    from clutch_core.render.render import motion_joints

    motion = np.asarray(motion, np.float32)
    if joints is None or meshes is not None:  # meshes live in the motion's frame: so must the joints
        joints = motion_joints(motion)
    verts = faces = None
    if meshes is not None:
        verts, faces = to_viewer(meshes.vertices(motion)), meshes.faces
    return Track(label, to_viewer(joints), np.asarray(presence, bool), motion, caption, verts, faces)


def layout(tracks: list[Track]) -> tuple[list[np.ndarray], float, np.ndarray, float]:
    """Place tracks side by side along x, each centred on its own hands, one ground grid under all.

    Returns (per-track offset [3] added to its points, ground height z, scene centre [3], scene radius).
    """
    lo = [np.percentile(t.present_points(), 2, 0) for t in tracks]
    hi = [np.percentile(t.present_points(), 98, 0) for t in tracks]
    widths = [max(float(h[0] - l[0]), 0.1) for l, h in zip(lo, hi)]
    offsets, x = [], 0.0
    for l, h, w in zip(lo, hi, widths):
        centre = (l + h) / 2
        offsets.append(np.array([x + w / 2 - centre[0], -centre[1], -centre[2]], np.float32))
        x += w + GAP
    ground = min(float(l[2] + o[2]) for l, o in zip(lo, offsets)) - 0.02
    shift = np.array([(x - GAP) / 2, 0, 0], np.float32)  # centre the row of tracks on the origin
    offsets = [o - shift for o in offsets]
    extent = max(x - GAP, max(float(np.linalg.norm(h - l)) for l, h in zip(lo, hi)), 0.15)
    return offsets, ground, np.zeros(3, np.float32), extent / 2


def bone_segments(joints: np.ndarray) -> np.ndarray:
    """[21, 3] joints -> [20, 2, 3] bone segments (child, parent)."""
    return np.ascontiguousarray(joints[BONES], dtype=np.float32)
