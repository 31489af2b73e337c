"""`clutch render`: GIF/MP4 output, source frames at the clip's time with keypoints, motion files."""
import av
import numpy as np
import pytest
from PIL import Image

from clutch_cli import main
from clutch_core.render.render import HAND_COLORS, RenderConfig, row_frames
from tests.fixtures.eval_data import make_rows, write_dataset


def gif_frames(path):
    im = Image.open(path)
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        out.append(np.asarray(im.convert("RGB")))
    return out


def make_video(path, n=90, fps=30, size=(320, 240)):
    """Frame i is uniformly grey with level 2*i: the decoded level tells which frame was shown."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuv420p"
        s.bit_rate = 4_000_000
        for i in range(n):
            f = np.full((size[1], size[0], 3), 2 * i, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("render") / "ds", make_rows(3, seed=1))


def test_render_gif_and_mp4_from_dataset(dataset, tmp_path):
    from storage.reader import ClipReader

    row = ClipReader(dataset).read_rows(["clip0001"])[0]
    assert main(["render", str(dataset), "--clip-id", "clip0001", "--out", str(tmp_path / "c.gif"), "--size", "160"]) == 0
    frames = gif_frames(tmp_path / "c.gif")
    assert len(frames) == row["num_frames"]
    assert frames[0].shape[1] == 160  # no readable source: only the 3D panel
    # both hand colours are drawn (the right hand is orange, the left blue)
    for color in HAND_COLORS:
        assert (np.abs(frames[-1].astype(int) - color).sum(-1) < 60).sum() > 10
    assert main(["render", str(dataset), "--clip-id", "clip0001", "--out", str(tmp_path / "c.mp4"), "--size", "160"]) == 0
    with av.open(str(tmp_path / "c.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name in ("h264", "mpeg4")
        n = sum(1 for _ in c.decode(s))
    assert n == row["num_frames"]


def test_source_frames_follow_start_time_and_show_keypoints(tmp_path):
    video = make_video(tmp_path / "src.mp4")
    row = make_rows(1, seed=2, source_uri=str(video), image_size=(320, 240))[0]
    row.update(start_s=1.0, num_frames=20, end_s=1.0 + 20 / 15)
    for k in ("motion", "presence", "joints3d", "keypoints2d"):
        row[k] = row[k][:20]
    row["keypoints2d"][:] = np.nan
    row["keypoints2d"][:, 0] = np.stack([np.linspace(100, 200, 21), np.linspace(100, 200, 21)], -1)  # left hand
    row["presence"][:] = [True, False]
    frames = list(row_frames(row, RenderConfig(width=120)))
    assert len(frames) == 20
    assert frames[0].shape[1] == 160 + 120  # source panel (320x240 scaled to height 120) + 3D panel
    # clip frame k at 15 fps shows source frame 30 + 2k (grey level 2 * that)
    for k in (0, 10):
        level = np.median(frames[k][5:20, 140:155])
        assert abs(level - 2 * (30 + 2 * k)) <= 6, (k, level)
    # left keypoints (blue) drawn at half scale: on the diagonal from (50, 50) to (100, 100)
    patch = frames[0][45:105, 45:105].astype(int)
    assert (np.abs(patch - HAND_COLORS[0]).sum(-1) < 60).sum() > 20


def test_render_motion_files(tmp_path, capsys):
    row = make_rows(1, seed=4)[0]
    np.save(tmp_path / "m.npy", row["motion"])
    assert main(["render", "--motion", str(tmp_path / "m.npy"), "--out", str(tmp_path / "m.gif"), "--size", "96"]) == 0
    assert len(gif_frames(tmp_path / "m.gif")) == len(row["motion"])
    pres = row["presence"].copy()
    pres[:, 0] = False
    np.savez(tmp_path / "m.npz", motion=row["motion"], presence=pres, caption="the right hand waves")
    assert main(["render", "--motion", str(tmp_path / "m.npz"), "--out", str(tmp_path / "m2.gif"), "--size", "96"]) == 0
    last = gif_frames(tmp_path / "m2.gif")[-1].astype(int)
    assert (np.abs(last - HAND_COLORS[0]).sum(-1) < 60).sum() == 0  # the absent left hand is not drawn
    assert (np.abs(last - HAND_COLORS[1]).sum(-1) < 60).sum() > 10
    np.save(tmp_path / "bad.npy", np.zeros((5, 99), np.float32))
    assert main(["render", "--motion", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "x.gif")]) == 2
    assert "bad.npy" in capsys.readouterr().err and not (tmp_path / "x.gif").exists()
    assert main(["render", "--motion", str(tmp_path / "m.npy"), "--out", str(tmp_path / "x.avi")]) == 2


@pytest.mark.slow
def test_mano_mesh_render(tmp_path):
    from clutch_core.hands.mano_synthetic import write_synthetic_mano

    write_synthetic_mano(tmp_path / "mano")  # MANO's array layout, synthetic values
    row = make_rows(1, seed=6)[0]
    n = 8
    pres = np.ones((n, 2), bool)
    pres[:, 0] = False  # only the right hand
    np.savez(tmp_path / "m.npz", motion=row["motion"][:n], presence=pres)
    assert main(["render", "--motion", str(tmp_path / "m.npz"), "--out", str(tmp_path / "mesh.gif"),
                 "--size", "128", "--mano-dir", str(tmp_path / "mano")]) == 0
    frame = gif_frames(tmp_path / "mesh.gif")[-1].astype(int)
    r, g, b = frame[..., 0], frame[..., 1], frame[..., 2]
    orange = (r - b > 60) & (r > g)  # shaded right-hand faces
    blue = (b - r > 60) & (b > g)
    assert orange.sum() > 150  # a filled surface, far more pixels than a skeleton's lines
    assert blue.sum() == 0
    assert main(["render", "--motion", str(tmp_path / "m.npz"), "--out", str(tmp_path / "x.gif"),
                 "--mano-dir", str(tmp_path / "nope")]) == 2


LONG = ("the right hand reaches for the cup on the left of the board, grasps its handle, lifts it slowly "
        "toward the mouth while it turns the wrist, then places it back and releases it with an open palm")


@pytest.mark.parametrize("width", [160, 320, 480, 960])
def test_captions_are_wrapped_whole_never_cut(width):
    import cv2

    from clutch_core.render.render import SUBTITLE_MARGIN, caption_lines, subtitle, subtitle_scale

    lines = caption_lines(width, LONG)
    assert " ".join(lines) == LONG  # every word, in order: nothing cut
    scale = subtitle_scale(width)
    assert all(cv2.getTextSize(ln, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] <= width - 2 * SUBTITLE_MARGIN
               for ln in lines if " " in ln)
    assert len(lines) > 3 or width >= 960  # the old three-line limit would have cut these
    assert subtitle(width, LONG).shape[0] > subtitle(width, "waves").shape[0]


def test_browse_gifs_hold_the_whole_caption(tmp_path):
    rows = make_rows(1, seed=2)
    rows[0]["captions"] = [{"text": LONG, "source": "narration"}]
    ds = write_dataset(tmp_path / "ds", rows)
    short = make_rows(1, seed=2)
    short[0]["captions"] = [{"text": "waves", "source": "narration"}]
    ds2 = write_dataset(tmp_path / "ds2", short)
    for d, out in ((ds, "a.gif"), (ds2, "b.gif")):
        assert main(["render", str(d), "--clip-id", rows[0]["clip_id"], "--out", str(tmp_path / out),
                     "--size", "160", "--no-source"]) == 0
    tall, low = gif_frames(tmp_path / "a.gif")[0], gif_frames(tmp_path / "b.gif")[0]
    assert tall.shape[1] == low.shape[1] and tall.shape[0] > low.shape[0] + 40  # the band grew to fit
