"""HaMeR-style hand tracker (ViT + MANO transformer head), behind the tracker interface of
annotators/tracking.py; meant for GPUs (it runs on the CPU too, slowly).

Per frame: hand boxes -> square crops (HaMeR's conventions) -> HamerNet -> MANO parameters ->
MANO joints (the user's MANO_RIGHT.pkl) -> 2D keypoints in frame pixels and 3D joints.

Boxes: from the MediaPipe Hand Landmarker (the default tracker; its 21 keypoints' extent and its
Left/Right label), and, when MediaPipe loses a hand seen in the previous frame, from this
tracker's own keypoints of that frame for at most `carry_frames` frames. Handedness (label,
score) is the box's: HaMeR does not classify it.

Crop (as HaMeR's demo): box centre; box size x `rescale_factor` (2.0), widened to the 192:256
aspect, the larger side as a square, resampled to 256x256 (Gaussian anti-aliasing first when
shrinking more than 2.2x), the backbone sees the middle 192 columns; RGB normalised with the
ImageNet mean/std. Left hands: the crop is mirrored so the right-hand model sees a right hand,
and the outputs are mirrored back (x of 2D offsets and of 3D joints negated).

Output: weak-perspective camera (s, tx, ty) -> translation (tx, ty, 2 f / (256 s)), f = 5000 at
256 px; joints projected with f / 256 give crop coordinates in [-0.5, 0.5] -> frame pixels.
`world` is the 21 MANO joints (MediaPipe order, metres, camera axes: x right, y down, z forward)
relative to the wrist; the pipeline's lift places them in the camera with the 2D keypoints.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from annotators.tracking import Detections, MediaPipeHands, check_frames

HAMER_URL = "https://github.com/geopavlakos/hamer"
MANO_URL = "https://mano.is.tue.mpg.de"
BBOX_ASPECT = (192, 256)  # width, height the ViT sees

_NETS: dict[tuple, Any] = {}  # (checkpoint, size, mtime, config, device) -> HamerNet, shared read-only
_NETS_LOCK = threading.Lock()


def square_box(box: np.ndarray, rescale: float = 2.0) -> tuple[np.ndarray, float]:
    """[x0, y0, x1, y1] -> (centre [2], side of HaMeR's square crop), pixels."""
    box = np.asarray(box, np.float64)
    centre = (box[:2] + box[2:]) / 2
    w, h = rescale * (box[2:] - box[:2])
    wt, ht = BBOX_ASPECT
    if h / max(w, 1e-9) < ht / wt:
        h = max(w * ht / wt, h)
    else:
        w = max(h * wt / ht, w)
    return centre, float(max(w, h, 1.0))


def crop_affine(centre: np.ndarray, side: float, out: int, flip: bool) -> np.ndarray:
    """2x3 map of frame pixels to crop pixels: the box centre to the crop centre, mirrored in x when
    `flip` (HaMeR flips the image about its own centre before cropping: the same map)."""
    k = out / side
    sx = -k if flip else k
    return np.array([[sx, 0.0, out / 2 - sx * centre[0]], [0.0, k, out / 2 - k * centre[1]]])


def crop(frame: np.ndarray, centre: np.ndarray, side: float, out: int, flip: bool) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [out, out, 3]; outside the frame is black."""
    import cv2

    img, off = frame, np.zeros(2)
    shrink = side / out / 2.0
    if shrink > 1.1:  # anti-alias before a strong down-sampling, on the box's region only
        h, w = frame.shape[:2]
        x0, y0 = np.clip(np.floor(centre - side / 2).astype(int) - 2, 0, [w, h])
        x1, y1 = np.clip(np.ceil(centre + side / 2).astype(int) + 2, 0, [w, h])
        if x1 > x0 and y1 > y0:
            img, off = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), (shrink - 1) / 2), np.array([x0, y0], float)
    A = crop_affine(np.asarray(centre, float) - off, side, out, flip)
    return cv2.warpAffine(np.ascontiguousarray(img), A, (out, out), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def uncrop_points(kp_n: np.ndarray, centre: np.ndarray, side: float, flip: bool) -> np.ndarray:
    """Crop coordinates in [-0.5, 0.5] (HaMeR's normalised 2D keypoints) [..., 2] -> frame pixels."""
    sx = -side if flip else side
    return np.stack([centre[0] + sx * kp_n[..., 0], centre[1] + side * kp_n[..., 1]], -1)


def _file_digest(path: Path) -> str:
    """A cheap identity of a multi-GB file: its size and first MiB."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def _resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    how = (f"the released HaMeR weights come with the HaMeR code ({HAMER_URL}: fetch_demo_data.sh puts "
           "_DATA/hamer_ckpts/checkpoints/hamer.ckpt there, model_config.yaml one folder up); they are not shipped "
           "with CLUTCH")
    if not checkpoint:
        raise FileNotFoundError(f"HaMeR tracker: pass checkpoint=/path/to/hamer.ckpt; {how}")
    p = Path(checkpoint).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"HaMeR checkpoint not found: {p}; {how}")
    return p


def load_net(checkpoint: Path, config: dict[str, Any] | None, device: str):
    """HamerNet from a HaMeR checkpoint (cached per process: the presence and dense trackers share it)."""
    import torch

    from annotators.hamer_net import HamerNet, load_weights, read_state_dict, resolve_config

    cfg = resolve_config(checkpoint, config)
    st = checkpoint.stat()
    key = (str(checkpoint.resolve()), st.st_size, st.st_mtime_ns, repr(cfg), device)
    with _NETS_LOCK:
        if key not in _NETS:
            net = HamerNet(cfg)
            load_weights(net, read_state_dict(checkpoint), str(checkpoint))
            _NETS[key] = net.to(torch.device(device)).eval()
        return _NETS[key]


class HamerHands:
    """HaMeR-style tracker; see the module docstring. `predict` runs on given boxes."""

    name = "hamer"

    def __init__(self, checkpoint: str | os.PathLike | None = None, mano_dir: str | os.PathLike | None = None,
                 device: str | None = None, config: dict[str, Any] | None = None, rescale_factor: float = 2.0,
                 batch_size: int = 16, carry_frames: int = 2, num_hands: int = 2, **mediapipe_kwargs: Any):
        import torch

        from clutch_core.hands.mano import find_mano_file, load_mano

        ckpt = _resolve_checkpoint(checkpoint)
        if not mano_dir:
            raise FileNotFoundError(
                "HaMeR tracker: pass mano_dir=FOLDER holding MANO_RIGHT.pkl (HaMeR predicts MANO parameters; MANO "
                f"turns them into joints). MANO files are licensed and not shipped: download them from {MANO_URL}")
        mano_file = find_mano_file(mano_dir, "right")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.net = load_net(ckpt, config, self.device)
        self.cfg = self.net.cfg
        self.mano = load_mano(mano_file, "right").to(self.device)
        self.version = f"hamer-vit{self.cfg.depth}x{self.cfg.embed_dim}-{_file_digest(ckpt)}"
        self.rescale, self.batch_size, self.carry_frames = rescale_factor, batch_size, carry_frames
        self.num_hands = num_hands
        self.boxes = MediaPipeHands(num_hands=num_hands, **mediapipe_kwargs)
        self._prev: dict[int, tuple[np.ndarray, float, int]] = {}  # label -> (kp2d [21,2], score, age)

    def reset(self) -> None:
        self.boxes.reset()
        self._prev = {}

    def predict(self, frame: np.ndarray, boxes: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame uint8 [H, W, 3], boxes [N, 4] (x0, y0, x1, y1 px), right [N] bool ->
        (kp2d [N, 21, 2] frame pixels, joints [N, 21, 3] metres, MANO origin, camera axes)."""
        return self._predict([(frame, b, r) for b, r in zip(boxes, right)])

    def _predict(self, items: list[tuple[np.ndarray, np.ndarray, bool]]) -> tuple[np.ndarray, np.ndarray]:
        """(frame, box, right) items, from any frames -> (kp2d [N, 21, 2], joints [N, 21, 3]);
        cropped and run `batch_size` at a time."""
        kps, joints = [np.zeros((0, 21, 2), np.float32)], [np.zeros((0, 21, 3), np.float32)]
        for i in range(0, len(items), self.batch_size):
            k, j = self._predict_batch(items[i:i + self.batch_size])
            kps.append(k)
            joints.append(j)
        return np.concatenate(kps), np.concatenate(joints)

    def _predict_batch(self, items) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from clutch_core.hands.mano import mano_forward
        from clutch_core.hands.rotations import matrix_to_axis_angle

        s, f = self.cfg.image_size, self.cfg.focal_length
        geo = [square_box(box, self.rescale) for _, box, _ in items]
        flips = np.array([not bool(r) for _, _, r in items])
        crops = np.stack([crop(fr, c, side, s, fl) for (fr, _, _), (c, side), fl in zip(items, geo, flips)])
        m = s // 8  # [N, S, S, 3] -> the middle S*3/4 columns
        x = torch.from_numpy(crops[:, :, m:s - m]).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        mean = torch.tensor(self.cfg.image_mean, device=self.device)[:, None, None]
        std = torch.tensor(self.cfg.image_std, device=self.device)[:, None, None]
        with torch.inference_mode():
            out = self.net((x - mean) / std)  # [N, 3, S, S*3/4] in
            b = len(items)
            go = matrix_to_axis_angle(out["global_orient"][:, 0].float())  # [N, 3]
            hp = matrix_to_axis_angle(out["hand_pose"].float()).reshape(b, 45)
            _, j3 = mano_forward(self.mano, go, hp, out["betas"].float(), torch.zeros(b, 3, device=self.device))
            cam = out["cam"].float()  # [N, 3] weak perspective (s, tx, ty) -> translation
            t = torch.stack([cam[:, 1], cam[:, 2], 2 * f / (s * cam[:, 0] + 1e-9)], -1)
            pc = j3 + t[:, None]  # [N, 21, 3]
            kp_n = ((f / s) * pc[..., :2] / pc[..., 2:]).cpu().numpy().astype(np.float64)  # crop, [-0.5, 0.5]
        j3 = j3.cpu().numpy()
        j3[flips, :, 0] *= -1  # mirror the right-hand model's output back to a left hand
        kp2d = np.stack([uncrop_points(kp_n[i], c, side, flips[i]) for i, (c, side) in enumerate(geo)])
        return kp2d.astype(np.float32), j3.astype(np.float32)

    def track(self, frames: np.ndarray, fps: float) -> Detections:
        frames = check_frames(frames)
        t_len, h, w = frames.shape[:3]
        seen = self.boxes.track(frames, fps)
        # MediaPipe's hands of all frames in one batched pass
        hands = [[(int(seen.label[t, j]), float(seen.score[t, j]), 0) for j in np.flatnonzero(seen.valid[t])]
                 for t in range(t_len)]
        where = [(t, j) for t in range(t_len) for j in np.flatnonzero(seen.valid[t])[:self.num_hands]]
        items = [(frames[t], self._box(seen.kp2d[t, j], w, h), seen.label[t, j] == 1) for t, j in where]
        kp_all, j_all = self._predict(items)
        res = {}
        for (t, j), kp, jj in zip(where, kp_all, j_all):
            res.setdefault(t, []).append((kp, jj))
        out = Detections.empty(t_len, self.num_hands)
        for t in range(t_len):  # in order: a hand MediaPipe lost keeps the previous frame's box a while
            found = list(zip(hands[t][:self.num_hands], res.get(t, [])))
            labels = {lab for (lab, _, _), _ in found}
            for lab, (kp, sc, age) in self._prev.items():
                if lab not in labels and age < self.carry_frames and np.isfinite(kp).all() and len(found) < self.num_hands:
                    k, jj = self._predict([(frames[t], self._box(kp, w, h), lab == 1)])
                    found.append(((lab, sc, age + 1), (k[0], jj[0])))
            self._prev = {}
            for j, ((lab, sc, age), (kp, jj)) in enumerate(found):
                out.kp2d[t, j], out.world[t, j] = kp, jj - jj[:1]
                out.label[t, j], out.score[t, j] = lab, sc
                self._prev[lab] = (kp, sc, age)
        return out

    @staticmethod
    def _box(kp: np.ndarray, w: int, h: int) -> np.ndarray:
        """[21, 2] keypoints -> their extent [x0, y0, x1, y1], inside the frame."""
        lo, hi = kp.min(0).clip(0, [w - 1, h - 1]), kp.max(0).clip(0, [w - 1, h - 1])
        return np.r_[lo, hi]
