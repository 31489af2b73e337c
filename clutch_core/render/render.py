"""Render a clip: source frames with 2D keypoints | both 3D hands | caption subtitle.

Everything is drawn with OpenCV onto numpy canvases (matplotlib per frame is ~50x
slower). The 3D panel uses a fixed virtual pinhole camera per clip: it looks at the
centre of the clip's joints from the front-above-right at a distance that fits the
clip's extent, with a ground grid under the lowest joint. Motion and joints are in the
camera frame of the source (x right, y down, z forward), so "up" is -y.

Sources of the 3D joints: the row's joints3d (tracked, metres), or forward kinematics
of the 198-number motion (`--motion` files). Source frames come from the row's
source_uri, start_s and fps through clutch_core.video (decord, PyAV fallback) on the
same 15 fps timeline the clip was cut from; keypoints2d are in source pixels
(image_size) and are scaled to the panel.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from clutch_core.hands.skeleton import PARENTS  # MediaPipe order
from layout import FPS, FRAME_DIM

log = logging.getLogger(__name__)

HAND_COLORS = ((40, 120, 255), (255, 140, 30))  # RGB: left blue, right orange
SIDE_NAMES = ("L", "R")


@dataclass
class RenderConfig:
    width: int = 480  # panel height in pixels (each panel is square-ish: 3D panel is width x width)
    show_source: bool = True
    fps: float = FPS
    mano_dir: str | None = None  # MANO_{LEFT,RIGHT}.pkl folder: draw meshes instead of skeletons


# ------------------------------------------------------------------ 3D panel


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotation [3, 3] world -> view (x right, y down, z forward)."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


class Camera:
    """A fixed pinhole camera framing all present joints of a clip."""

    def __init__(self, joints: np.ndarray, presence: np.ndarray, size: int):
        pts = joints[presence.astype(bool)].reshape(-1, 3)  # [K, 3]
        pts = pts[np.isfinite(pts).all(1)]
        if len(pts) == 0:
            pts = np.zeros((1, 3))
        lo, hi = np.percentile(pts, 2, 0), np.percentile(pts, 98, 0)
        self.center = (lo + hi) / 2
        extent = max(float(np.linalg.norm(hi - lo)), 0.15)
        self.up = np.array([0.0, -1.0, 0.0])
        # from behind the source camera (-z), a bit right and above, so the panel reads like the video
        direction = np.array([0.15, -0.6, -1.0])
        direction /= np.linalg.norm(direction)
        self.eye = self.center + direction * extent * 1.3
        self.R = look_at(self.eye, self.center, self.up)
        self.f = size * 1.0
        self.size = size
        self.ground = float(np.percentile(pts[:, 1], 99)) + 0.02  # below the lowest joint (y down)
        self.extent = extent

    def project(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """p [..., 3] -> (pixels [..., 2], depth [...])."""
        v = (p - self.eye) @ self.R.T
        z = np.maximum(v[..., 2], 1e-3)
        uv = self.f * v[..., :2] / z[..., None] + self.size / 2
        return uv, v[..., 2]


def _grid(cam: Camera, canvas: np.ndarray) -> None:
    step = 10 ** np.floor(np.log10(cam.extent / 2))
    half = np.ceil(cam.extent / step) * step
    cx, cz = np.round(cam.center[0] / step) * step, np.round(cam.center[2] / step) * step
    ticks = np.arange(-half, half + step / 2, step)
    for t in ticks:
        for a, b in (([cx + t, cam.ground, cz - half], [cx + t, cam.ground, cz + half]),
                     ([cx - half, cam.ground, cz + t], [cx + half, cam.ground, cz + t])):
            seg = np.linspace(a, b, 16)  # split so points behind the camera do not wrap
            uv, d = cam.project(seg)
            ok = d > 1e-2
            for i in range(15):
                if ok[i] and ok[i + 1]:
                    cv2.line(canvas, tuple(int(x) for x in uv[i]), tuple(int(x) for x in uv[i + 1]), (70, 70, 78), 1, cv2.LINE_AA)


def draw_hands_3d(canvas: np.ndarray, cam: Camera, joints: np.ndarray, presence: np.ndarray, mesh=None) -> None:
    """joints [2, 21, 3], presence [2]: skeletons (or meshes: (verts [2, V, 3], faces)), far hand
    first, with shadows on the grid."""
    order = sorted(range(2), key=lambda h: -float(np.nanmean(cam.project(joints[h])[1])) if presence[h] else 0)
    for h in order:
        if not presence[h] or not np.isfinite(joints[h]).all():
            continue
        shadow = joints[h].copy()
        shadow[:, 1] = cam.ground
        suv, _ = cam.project(shadow)
        for j, p in enumerate(PARENTS[1:], 1):
            cv2.line(canvas, tuple(int(x) for x in suv[j]), tuple(int(x) for x in suv[p]), (45, 45, 50), 2, cv2.LINE_AA)
        if mesh is not None:
            from clutch_core.render.mesh import draw_mesh

            draw_mesh(canvas, cam, mesh[0][h], mesh[1][h], HAND_COLORS[h])
            continue
        uv, depth = cam.project(joints[h])
        color = HAND_COLORS[h]
        thick = max(2, int(round(cam.size / 160)))
        for j, p in enumerate(PARENTS[1:], 1):
            cv2.line(canvas, tuple(int(x) for x in uv[j]), tuple(int(x) for x in uv[p]), color, thick, cv2.LINE_AA)
        for j in range(21):
            cv2.circle(canvas, tuple(int(x) for x in uv[j]), thick + 1 if j == 0 else max(1, thick - 1), (255, 255, 255), -1, cv2.LINE_AA)
        cv2.putText(canvas, SIDE_NAMES[h], tuple(int(x) + 6 for x in uv[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def panel_3d(cam: Camera, joints: np.ndarray, presence: np.ndarray, mesh=None) -> np.ndarray:
    canvas = np.full((cam.size, cam.size, 3), 28, np.uint8)
    _grid(cam, canvas)
    draw_hands_3d(canvas, cam, joints, presence, mesh)
    return canvas


# ------------------------------------------------------------------ 2D panel


def draw_keypoints_2d(frame: np.ndarray, kp: np.ndarray, presence: np.ndarray, scale: tuple[float, float]) -> None:
    """kp [2, 21, 2] source pixels, drawn onto a frame resized by `scale` (sx, sy)."""
    thick = max(1, int(round(frame.shape[0] / 240)))
    for h in range(2):
        if not presence[h] or not np.isfinite(kp[h]).all():
            continue
        uv = kp[h] * np.asarray(scale)
        for j, p in enumerate(PARENTS[1:], 1):
            cv2.line(frame, tuple(int(x) for x in uv[j]), tuple(int(x) for x in uv[p]), HAND_COLORS[h], thick + 1, cv2.LINE_AA)
        for j in range(21):
            c = tuple(int(x) for x in uv[j])
            cv2.circle(frame, c, thick + 2, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(frame, c, thick + 1, HAND_COLORS[h], -1, cv2.LINE_AA)


def source_path(row: dict, dataset: Path | None = None) -> Path | None:
    """The row's source video as a local file, or None (synthetic rows, moved files)."""
    uri = str(row.get("source_uri") or "")
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if not uri or "://" in uri:
        return None
    for p in (Path(uri), (dataset / uri) if dataset else None):
        if p is not None and p.is_file():
            return p
    return None


def source_frames(row: dict, height: int, dataset: Path | None = None) -> Iterator[np.ndarray] | None:
    """RGB frames [height, w, 3] of the clip on its 15 fps timeline, or None if unreadable."""
    from clutch_core.video import BadVideoError, open_reader, probe, resample_indices

    path = source_path(row, dataset)
    if path is None:
        return None
    try:
        info = probe(path)
        w = int(round(info.width * height / info.height / 2)) * 2
        reader = open_reader(info, (w, height))
    except (BadVideoError, OSError) as e:
        log.warning("source video not readable, rendering without it: %s", e)
        return None
    fps = float(row.get("fps") or FPS)
    timeline = resample_indices(reader.timestamps, fps)
    a = int(round(float(row["start_s"]) * fps))
    idx = timeline[a:a + int(row["num_frames"])]
    if len(idx) < int(row["num_frames"]):  # the timeline ends early: hold the last frame
        idx = np.concatenate([idx, np.full(int(row["num_frames"]) - len(idx), timeline[-1] if len(timeline) else 0)])

    def gen():
        frames = reader.iter_frames(np.unique(idx).tolist())
        cache: dict[int, np.ndarray] = {}
        for i in idx:
            while int(i) not in cache:
                k, f = next(frames)
                cache = {k: f} | {j: g for j, g in cache.items() if j >= i}
            yield cache[int(i)]

    return gen()


# ------------------------------------------------------------------ composition


SUBTITLE_MARGIN = 8  # pixels left and right of the subtitle


def subtitle_scale(width: int) -> float:
    return max(0.45, width / 1400)


def caption_lines(width: int, text: str) -> list[str]:
    """The whole caption, word-wrapped to lines whose drawn width fits `width` (measured, not guessed)."""
    scale, lines, cur = subtitle_scale(width), [], ""
    fits = lambda s: cv2.getTextSize(s, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width - 2 * SUBTITLE_MARGIN  # noqa: E731
    for word in text.split():
        cand = f"{cur} {word}" if cur else word
        if cur and not fits(cand):
            lines.append(cur)
            cur = word
        else:
            cur = cand
    return lines + ([cur] if cur else [])


def subtitle(width: int, text: str) -> np.ndarray:
    """A band under the video holding the whole caption: as many lines as it needs (none are cut)."""
    scale = subtitle_scale(width)
    wrapped = caption_lines(width, text)
    line_h = int(30 * scale) + 6
    band = np.full((line_h * max(len(wrapped), 1) + 10, width, 3), 12, np.uint8)
    for i, line in enumerate(wrapped):
        size = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0]
        cv2.putText(band, line, ((width - size[0]) // 2, 8 + line_h * (i + 1) - 8), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (235, 235, 235), 1, cv2.LINE_AA)
    return band


def compose_frames(joints: np.ndarray, presence: np.ndarray, caption: str = "", cfg: RenderConfig | None = None,
                   keypoints2d: np.ndarray | None = None, image_size: Sequence[int] | None = None,
                   video: Iterator[np.ndarray] | None = None, meshes=None) -> Iterator[np.ndarray]:
    """Yield RGB uint8 frames. joints [T, 2, 21, 3], presence [T, 2], keypoints2d [T, 2, 21, 2],
    meshes: (vertices [T, 2, V, 3], [faces_left, faces_right]) or None."""
    cfg = cfg or RenderConfig()
    cam = Camera(joints, presence, cfg.width)
    band = None
    for t in range(len(joints)):
        right = panel_3d(cam, joints[t], presence[t], None if meshes is None else (meshes[0][t], meshes[1]))
        cv2.putText(right, f"{t + 1}/{len(joints)}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (150, 150, 150), 1, cv2.LINE_AA)
        panels = [right]
        if video is not None:
            left = np.ascontiguousarray(next(video))
            if keypoints2d is not None and image_size is not None:
                sx, sy = left.shape[1] / float(image_size[0]), left.shape[0] / float(image_size[1])
                draw_keypoints_2d(left, keypoints2d[t], presence[t], (sx, sy))
            panels.insert(0, left)
        frame = np.concatenate(panels, 1)
        if band is None:
            band = subtitle(frame.shape[1], caption)
        yield np.concatenate([frame, band], 0)


# ------------------------------------------------------------------ writers


GIF_COLORS = 96  # skeletons, subtitles and a video thumbnail: 96 shared colours read well


def write_video(frames: Iterator[np.ndarray], out: Path, fps: float = FPS) -> Path:
    """.mp4 through PyAV (libx264 when present, else mpeg4) or .gif through Pillow."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix == ".gif":
        from PIL import Image

        imgs = [Image.fromarray(f) for f in frames]
        if not imgs:
            raise ValueError("nothing to render: the clip has no frames")
        # one palette for the clip, from a strip of a few frames, no dithering: the frames' unchanged pixels stay
        # byte-equal, which GIF's frame differencing turns into a few times smaller files
        sample = [imgs[i] for i in np.linspace(0, len(imgs) - 1, min(4, len(imgs))).astype(int)]
        strip = Image.new("RGB", (sample[0].width, sample[0].height * len(sample)))
        for i, im in enumerate(sample):
            strip.paste(im, (0, i * im.height))
        pal = strip.quantize(colors=GIF_COLORS)
        imgs = [im.quantize(palette=pal, dither=Image.Dither.NONE) for im in imgs]
        imgs[0].save(out, save_all=True, append_images=imgs[1:], duration=int(round(1000 / fps)), loop=0, optimize=True)
        return out
    if suffix != ".mp4":
        raise ValueError(f"{out}: output must end in .mp4 or .gif")
    import av

    codec = "libx264"
    try:
        av.codec.Codec(codec, "w")
    except Exception:
        codec = "mpeg4"
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with av.open(str(tmp), "w", format="mp4") as c:
        stream = None
        for f in frames:
            if stream is None:
                h, w = f.shape[0] // 2 * 2, f.shape[1] // 2 * 2
                stream = c.add_stream(codec, rate=int(round(fps)))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                if codec == "mpeg4":
                    stream.bit_rate = 4_000_000
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[:h, :w]), format="rgb24")
            c.mux(stream.encode(frame))
            n += 1
        if stream is None:
            raise ValueError("nothing to render: the clip has no frames")
        c.mux(stream.encode())
    tmp.replace(out)
    return out


# ------------------------------------------------------------------ entry points


def motion_joints(motion: np.ndarray) -> np.ndarray:
    """[T, 198] motion -> [T, 2, 21, 3] joints by forward kinematics on the default skeleton."""
    import torch

    from clutch_core.hands.motion import motion_to_joints

    return motion_to_joints(torch.from_numpy(np.array(motion, np.float32))).numpy()


def row_frames(row: dict, cfg: RenderConfig | None = None, dataset: Path | None = None) -> Iterator[np.ndarray]:
    """Frames of one dataset row (joints3d when present and finite, else FK of motion)."""
    cfg = cfg or RenderConfig()
    pres = np.asarray(row["presence"], bool)
    meshes = mesh_vertices(row["motion"], cfg)
    joints = clip_joints(row, meshes is not None)
    caps = row.get("captions") or []
    caption = caps[0]["text"] if caps else ""
    video = source_frames(row, cfg.width, dataset) if cfg.show_source else None
    return compose_frames(joints, pres, caption, cfg, row.get("keypoints2d"), row.get("image_size"),
                          video, meshes)


def clip_joints(row: dict, with_mesh: bool = False) -> np.ndarray:
    """[T, 2, 21, 3] joints to draw for a row: its tracked joints3d when present and finite, else forward
    kinematics of its motion (always with a mesh: meshes live in the motion's frame, so must the joints)."""
    pres = np.asarray(row["presence"], bool)
    joints = row.get("joints3d")
    if with_mesh or joints is None or not np.isfinite(np.asarray(joints)[pres]).all() \
            or not np.abs(np.asarray(joints)[pres]).sum():
        joints = motion_joints(row["motion"])
    return np.asarray(joints, np.float32)


def mesh_vertices(motion: np.ndarray, cfg: RenderConfig):
    """(vertices [T, 2, 778, 3], faces) when cfg.mano_dir is set, else None."""
    if not cfg.mano_dir:
        return None
    from clutch_core.render.mesh import ManoMeshes

    m = ManoMeshes(cfg.mano_dir)
    return m.vertices(motion), m.faces


def render_clip(dataset: Path, clip_id: str, out: Path, cfg: RenderConfig | None = None) -> Path:
    from storage.reader import ClipReader

    rows = ClipReader(dataset).read_rows([clip_id])
    return write_video(row_frames(rows[0], cfg, Path(dataset)), out, float(rows[0].get("fps") or FPS))


def load_motion_file(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """.npy [T, 198] (both hands present) or .npz with motion [T, 198], optional presence [T, 2], caption."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    caption = ""
    if path.suffix == ".npy":
        motion = np.load(path, allow_pickle=False)
        presence = None
    elif path.suffix == ".npz":
        z = np.load(path, allow_pickle=False)
        if "motion" not in z:
            raise ValueError(f"{path}: the .npz needs an array named 'motion' (has {sorted(z.files)})")
        motion = z["motion"]
        presence = z["presence"] if "presence" in z else None
        caption = str(z["caption"]) if "caption" in z else ""
    else:
        raise ValueError(f"{path}: expected a .npy or .npz file")
    if motion.ndim != 2 or motion.shape[1] != FRAME_DIM or len(motion) == 0:
        raise ValueError(f"{path}: motion must be [T, 198], got {list(motion.shape)}")
    if not np.isfinite(motion).all():
        raise ValueError(f"{path}: motion contains NaN or inf")
    if presence is None:
        presence = np.ones((len(motion), 2), bool)
    if presence.shape != (len(motion), 2):
        raise ValueError(f"{path}: presence must be [T, 2] = {[len(motion), 2]}, got {list(presence.shape)}")
    return motion.astype(np.float32), presence.astype(bool), caption


def save_motion_file(file, motion: np.ndarray, presence: np.ndarray, caption: str = "") -> None:
    """Write the .npz that load_motion_file reads (motion [T, 198], presence [T, 2], caption) to a path
    or a binary file object: what `clutch generate --out X.npz` and the viewer's Download button give."""
    np.savez(file, motion=np.asarray(motion, np.float32), presence=np.asarray(presence, bool), caption=np.array(caption))


def render_motion_file(path: Path, out: Path, cfg: RenderConfig | None = None, caption: str | None = None) -> Path:
    cfg = cfg or RenderConfig()
    motion, presence, cap = load_motion_file(path)
    frames = compose_frames(motion_joints(motion), presence, caption if caption is not None else cap, cfg,
                            meshes=mesh_vertices(motion, cfg))
    return write_video(frames, out)
