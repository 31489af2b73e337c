"""The 3D scene of `clutch view`: tracks of two hands drawn in a viser scene, one frame at a time.

Each hand of each track is a node group /tracks/<k>/<side>/: `bones` (line segments) and `joints`
(points), or `mesh` with MANO files; a hand absent in a frame is hidden. Colours are those of
`clutch render` (left blue, right orange). `show(t)` moves every node to frame t in one atomic
update, so all samples stay in step; a track shorter than t holds its last frame.
"""
from __future__ import annotations

import threading

import numpy as np

from clutch_core.render.render import HAND_COLORS
from clutch_core.view.tracks import Track, bone_segments, layout
from layout import SIDES

JOINT_COLOR = (245, 245, 245)
BONE_THICKNESS = 0.004  # metres
JOINT_SIZE = 0.004


class HandsScene:
    """The tracks on screen and their scene nodes."""

    def __init__(self, server):
        self.server = server
        self.tracks: list[Track] = []
        self.offsets: list[np.ndarray] = []
        self.frame = 0
        self._nodes: dict[str, object] = {}
        self._lock = threading.RLock()
        server.scene.set_up_direction("+z")
        self.set_tracks([])

    @property
    def frames(self) -> int:
        return max((t.frames for t in self.tracks), default=0)

    def set_tracks(self, tracks: list[Track]) -> None:
        """Replace what is on screen (and frame the camera of clients that connect from now on)."""
        with self._lock:
            for handle in self._nodes.values():
                handle.remove()
            self._nodes = {}
            self.tracks = list(tracks)
            s = self.server.scene
            if not tracks:  # an empty stage: the ground only
                self._nodes["/grid"] = s.add_grid("/grid", width=0.6, height=0.6, cell_size=0.05, section_size=0.25,
                                                  cell_color=(95, 95, 105), section_color=(130, 130, 140))
                self._frame_camera(np.zeros(3), 0.2)
                return
            self.offsets, ground, centre, radius = layout(self.tracks)
            self._nodes["/grid"] = s.add_grid("/grid", width=max(4 * radius, 0.6), height=max(4 * radius, 0.6),
                                              cell_size=0.05, section_size=0.25, position=(0.0, 0.0, ground),
                                              cell_color=(95, 95, 105), section_color=(130, 130, 140))
            for k, track in enumerate(self.tracks):
                self._add_track(k, track)
                if len(self.tracks) > 1 or track.label:
                    top = float(np.percentile(track.present_points()[:, 2], 98)) + float(self.offsets[k][2])
                    self._nodes[f"/tracks/{k}/label"] = s.add_label(
                        f"/tracks/{k}/label", track.label, position=(float(self.offsets[k][0]), 0.0, top + 0.05))
            self._frame_camera(centre, radius)
            self.show(0)

    def _add_track(self, k: int, track: Track) -> None:
        s = self.server.scene
        for h, side in enumerate(SIDES):
            base = f"/tracks/{k}/{side}"
            if track.vertices is not None:
                self._nodes[f"{base}/mesh"] = s.add_mesh_simple(
                    f"{base}/mesh", track.vertices[0, h], track.faces[h], color=HAND_COLORS[h], side="double",
                    position=tuple(self.offsets[k]))
                continue
            self._nodes[f"{base}/bones"] = s.add_line_segments(
                f"{base}/bones", bone_segments(track.joints[0, h]), HAND_COLORS[h], thickness=BONE_THICKNESS,
                position=tuple(self.offsets[k]))
            self._nodes[f"{base}/joints"] = s.add_point_cloud(
                f"{base}/joints", track.joints[0, h], JOINT_COLOR, point_size=JOINT_SIZE, point_shape="circle",
                precision="float32", position=tuple(self.offsets[k]))

    def _frame_camera(self, centre: np.ndarray, radius: float) -> None:
        """Look at the hands from behind the source camera, a bit right and above, as `clutch render`."""
        direction = np.array([0.15, -1.0, 0.6])
        eye = centre + direction / np.linalg.norm(direction) * radius * 1.7
        cam = self.server.initial_camera
        cam.position, cam.look_at, cam.up = tuple(map(float, eye)), tuple(map(float, centre)), (0.0, 0.0, 1.0)
        for client in self.server.get_clients().values():
            client.camera.position, client.camera.look_at = tuple(map(float, eye)), tuple(map(float, centre))

    def show(self, t: int) -> None:
        """Move every track to frame t (clamped to its length)."""
        with self._lock, self.server.atomic():
            self.frame = int(t)
            for k, track in enumerate(self.tracks):
                i = min(self.frame, track.frames - 1)
                for h, side in enumerate(SIDES):
                    base = f"/tracks/{k}/{side}"
                    present = bool(track.presence[i, h]) and bool(np.isfinite(track.joints[i, h]).all())
                    if track.vertices is not None:
                        node = self._nodes[f"{base}/mesh"]
                        node.vertices, node.visible = track.vertices[i, h], present
                        continue
                    bones, joints = self._nodes[f"{base}/bones"], self._nodes[f"{base}/joints"]
                    bones.points, joints.points = bone_segments(track.joints[i, h]), track.joints[i, h]
                    bones.visible = joints.visible = present

    def state(self) -> dict[str, dict]:
        """The scene nodes as the server holds them (what every client is sent): name -> visible, and
        points (segments, joints or mesh vertices) in world coordinates."""
        with self._lock:
            out = {}
            for name, node in self._nodes.items():
                entry = {"visible": bool(node.visible)}
                for attr in ("points", "vertices"):
                    if hasattr(node, attr):
                        entry[attr] = np.asarray(getattr(node, attr)) + np.asarray(node.position, np.float32)
                out[name] = entry
            return out
