"""The speed paths change no result: read-ahead decoding, the presence rule."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from clutch_core.video import BadVideoError, read_ahead_iter


def test_read_ahead_yields_the_same_items_in_order():
    items = [np.full((2, 4, 4, 3), i, np.uint8) for i in range(9)]
    got = list(read_ahead_iter(iter(items), depth=2))
    assert len(got) == 9 and all((a == b).all() for a, b in zip(got, items))


def test_read_ahead_raises_the_producers_error_where_it_happened():
    def produce():
        yield 1
        yield 2
        raise BadVideoError("v.mp4", "truncated")

    seen = []
    with pytest.raises(BadVideoError, match="v.mp4: truncated"):
        for x in read_ahead_iter(produce(), depth=1):
            seen.append(x)
    assert seen == [1, 2]


def test_read_ahead_stops_its_thread_when_the_consumer_stops_early():
    produced = []

    def produce():
        for i in range(1000):
            produced.append(i)
            yield i

    before = threading.active_count()
    for x in read_ahead_iter(produce(), depth=2):
        if x == 3:
            break
    assert threading.active_count() == before  # joined, not left running
    assert len(produced) <= 3 + 1 + 2 + 1  # at most depth (+ one in hand) past the consumer


def test_read_ahead_starts_before_the_first_item_is_asked_and_a_dropped_consumer_stops_it():
    import gc
    import time

    started, produced = threading.Event(), []

    def produce():
        started.set()
        for i in range(1000):
            produced.append(i)
            yield i

    mine = set(threading.enumerate())
    items = read_ahead_iter(produce(), depth=2)  # the tracker gets ready meanwhile
    assert started.wait(5), "the producer runs before the consumer's first next()"
    worker = (set(threading.enumerate()) - mine).pop()
    time.sleep(0.2)
    assert len(produced) <= 2 + 1  # bounded by the queue
    del items
    gc.collect()
    worker.join(5)
    assert not worker.is_alive(), "a consumer never iterated must not leave its decoder running"


class _FakeTracker:
    """Sees a hand on a frame whose pixel (0, 0, 0) is 1; records the frame numbers it was given."""

    name, version = "fake", "0"

    def __init__(self):
        self.frames: list[int] = []

    def reset(self) -> None:
        pass

    def track(self, frames, fps):
        from annotators.tracking import Detections

        det = Detections.empty(len(frames))
        for i, f in enumerate(frames):
            self.frames.append(int(f[0, 0, 1]))
            if f[0, 0, 0]:
                det.label[i, 0], det.score[i, 0] = 1, 1.0
                det.kp2d[i, 0], det.world[i, 0] = 1.0, 0.01
        return det


class _TimelineReader:
    name, path, size = "fake", "fake.mp4", (4, 4)

    def __init__(self, hands):
        self.hands = hands
        self.timestamps = np.arange(len(hands)) / 15.0

    def iter_frames(self, indices):
        for i in indices:
            f = np.zeros((4, 4, 3), np.uint8)
            f[0, 0] = (self.hands[i], i, 0)
            yield i, f


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_presence_rule_tracks_chunks_next_to_a_sighting_in_order(monkeypatch, read_ahead):
    from annotators import pipeline

    chunk = 15
    # first frames of chunks 0..7 see a hand in chunks 0, 1, 4 and 7; chunk 3 is hand-free at its
    # first frame only; chunk 6 is narrated
    starts = {0: 1, 1: 1, 2: 0, 3: 0, 4: 1, 5: 0, 6: 0, 7: 1}
    hands = np.zeros(8 * chunk, np.uint8)
    for c, h in starts.items():
        hands[c * chunk] = h
    hands[3 * chunk + 5:4 * chunk] = 1
    dense, probe = _FakeTracker(), _FakeTracker()
    cfg = pipeline.AnnotateConfig(read_ahead_chunks=read_ahead)
    reader = _TimelineReader(hands)
    det, tracked = pipeline._track_video(dense, probe, reader, np.arange(len(hands)), cfg,
                                         [(6 * chunk / 15.0, 7 * chunk / 15.0 - 0.01, "narrated")], None,
                                         pipeline._Clock())
    want_chunks = {c for c in range(8) if starts[c] or starts.get(c + 1, 0) or c == 6}
    assert want_chunks == {0, 1, 3, 4, 6, 7}
    want = [k for c in sorted(want_chunks) for k in range(c * chunk, (c + 1) * chunk)]
    assert dense.frames == sorted(dense.frames)  # timeline order, each frame once
    assert set(want) <= set(dense.frames) and tracked == len(dense.frames)
    extra = set(dense.frames) - set(want)  # only first frames the dense tracker looked at as the presence signal
    assert extra <= {c * chunk for c in range(8)}
    # the probe looks only at first frames after a chunk the dense tracker did not run through
    # (2 -> 3, held 3 -> 4, held 5 -> 6); elsewhere the dense tracker's own detection decides
    assert probe.frames == [3 * chunk, 4 * chunk, 6 * chunk]
    assert det.valid[3 * chunk + 5:4 * chunk].any(1).all()  # found because chunk 4's first frame saw a hand


def test_a_hand_dense_video_costs_no_presence_probe(monkeypatch):
    from annotators import pipeline

    hands = np.ones(100, np.uint8)
    dense, probe = _FakeTracker(), _FakeTracker()
    det, tracked = pipeline._track_video(dense, probe, _TimelineReader(hands), np.arange(100), pipeline.AnnotateConfig(),
                                         None, None, pipeline._Clock())
    assert dense.frames == list(range(100)) and tracked == 100 and probe.frames == []


def test_pyav_leaves_unwanted_nonreference_frames_undecoded_and_the_rest_identical(tmp_path):
    """H.264 with B-frames at 30 fps -> the 15 fps frames: bit-identical to a full decode, and the
    skipped packets are ones no other picture references (nal_ref_idc 0)."""
    import av

    from tests.fixtures.bad_inputs import write_video
    from clutch_core import video

    p = write_video(tmp_path / "v.mp4", 96, 64, [i / 30 for i in range(60)])
    info = video.probe(p)
    reader = video.open_reader(info, (48, 32), "auto")
    assert reader.name == "pyav"
    want = video.resample_indices(reader.timestamps, 15.0)
    got = dict(reader.iter_frames(np.unique(want).tolist()))
    with av.open(str(p)) as c:
        full = {reader._pts_index[f.pts]: video.to_rgb(f, 48, 32) for f in c.decode(video=0)}
    assert sorted(got) == sorted(set(want.tolist()))
    assert all(np.array_equal(got[i], full[i]) for i in got)
    with av.open(str(p)) as c:
        s = c.streams.video[0]
        n = video._avcc_nal_length(s.codec_context)
        nonref = [reader._pts_index[pk.pts] for pk in c.demux(s) if pk.size and video._h264_nonref(bytes(pk), n)]
    assert n == 4 and nonref, "x264's default B-frames include non-reference pictures"
    assert set(nonref) - set(want.tolist()), "some unwanted frame is skippable"


def _yuv_frame(colorspace: int):
    """A colourful 1080p-shaped (192x108) yuv420p frame tagged with `colorspace` (AVColorSpace)."""
    import av

    h, w = 108, 192
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    y = (16 + 219 * (0.5 + 0.45 * np.sin(6 * xx + 3 * yy))).astype(np.uint8)
    cy, cx = np.mgrid[0:h // 2, 0:w // 2] / np.array([h // 2, w // 2])[:, None, None]
    u = (128 + 90 * np.sin(2 * cy - 1.5 * cx)).astype(np.uint8)  # saturated but smooth colour, as in video
    v = (128 + 90 * np.cos(1.5 * cx + cy)).astype(np.uint8)
    f = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)]), format="yuv420p")
    f.colorspace = colorspace
    return f, y, u, v


def _reference_rgb(y, u, v, kr, kb, size):
    """Float R'G'B' of limited-range Y'CbCr by the exact matrix, bilinear chroma, area downscale."""
    import cv2

    h, w = y.shape
    up = [cv2.resize(c.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for c in (u, v)]
    ycc = np.stack([y.astype(np.float32), *up], -1)
    kg, ys, cs = 1 - kr - kb, 255 / 219, 255 / 224
    yl, cb, cr = (ycc[..., 0] - 16) * ys, (ycc[..., 1] - 128) * cs, (ycc[..., 2] - 128) * cs
    rgb = np.stack([yl + 2 * (1 - kr) * cr, yl - 2 * (1 - kb) * kb / kg * cb - 2 * (1 - kr) * kr / kg * cr,
                    yl + 2 * (1 - kb) * cb], -1)
    return cv2.resize(np.clip(rgb, 0, 255), size, interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("colorspace, kr, kb", [(2, 0.299, 0.114), (6, 0.299, 0.114), (1, 0.2126, 0.0722)],
                         ids=["untagged-as-bt601", "bt601", "bt709"])
def test_exact_colour_conversion_follows_the_source_matrix(colorspace, kr, kb):
    from clutch_core import video

    f, y, u, v = _yuv_frame(colorspace)
    ref = _reference_rgb(y, u, v, kr, kb, (86, 48))
    got = video.to_rgb(f, 86, 48).astype(np.float32)
    assert got.shape == (48, 86, 3)
    err = got - ref
    assert np.abs(err).mean() < 0.6 and np.abs(err.mean((0, 1))).max() < 0.3, (np.abs(err).mean(), err.mean((0, 1)))
    # the other matrix would be far off: the test can tell BT.601 from BT.709
    other = _reference_rgb(y, u, v, *((0.2126, 0.0722) if kr == 0.299 else (0.299, 0.114)), (86, 48))
    assert np.abs(got - other).mean() > 4 * np.abs(err).mean()
    # FFmpeg's own conversion uses the same matrix, with its rounding
    assert np.abs(video.to_rgb(f, 86, 48, "swscale").astype(np.float32) - ref).mean() < 3.0
