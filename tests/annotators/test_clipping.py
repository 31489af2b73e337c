"""Decoding, resampling, clip planning, bad input and video identity."""
import json

import numpy as np
import pytest

from annotators import clipping, discovery
from clutch_core import video
from clutch_core.video import BadVideoError
from annotators.pipeline import AnnotateConfig, annotate_video
from tests.fixtures.bad_inputs import EXPECTED, make_bad_inputs, write_video


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_resample_constant_30fps_takes_every_other_frame():
    ts = np.arange(121) / 30.0
    idx = video.resample_indices(ts, 15.0)
    assert len(idx) == 60  # 4.033 s of video -> 60 frames at 15 fps
    assert np.array_equal(idx, np.arange(0, 120, 2))


def test_resample_variable_frame_rate_follows_timestamps():
    ts = np.array([i / 10 for i in range(10)] + [1 + i / 30 for i in range(30)])  # 10 fps then 30 fps
    idx = video.resample_indices(ts, 15.0)
    assert len(idx) == 30
    shown = ts[idx]
    want = np.arange(30) / 15.0
    assert np.all(shown <= want + 1e-6) and np.all(want - shown < 0.1 + 1e-6)  # the frame on screen
    assert len(np.unique(idx[:15])) == 10  # 10 fps part: frames repeat


def test_split_windows_respects_max_and_covers_span():
    w = clipping.split_windows(10, 10 + 300, 144)
    assert len(w) == 3 and w[0][0] == 10 and w[-1][1] == 310
    assert all(b - a <= 144 for a, b in w) and all(w[i][1] == w[i + 1][0] for i in range(2))


def test_plan_clips_from_spans_and_from_narrations():
    pol = AnnotateConfig(min_s=1.0, max_frames=144, merge_gap_frames=3)
    present = np.zeros(400, bool)
    present[0:10] = True  # too short (< 15 frames)
    present[50:60] = present[62:80] = True  # joined across a 2-frame gap
    present[100:400] = True  # 300 frames -> 3 windows
    clips, dropped = clipping.plan_clips(400, present, pol)
    assert [(a, b) for a, b, _ in clips][:1] == [(50, 80)]
    assert len(clips) == 4 and all(b - a <= 144 for a, b, _ in clips)
    assert dropped == [("too_short", 1)]
    clips, dropped = clipping.plan_clips(400, present, pol, [(2.0, 4.0, "cut the onion"), (10.0, 10.5, "x")])
    assert clips == [(30, 60, "cut the onion")] and dropped == [("too_short", 1)]
    clips, dropped = clipping.plan_clips(400, np.zeros(400, bool), pol)
    assert clips == [] and ("no_hands", 1) in dropped


def test_decode_size_never_upscales_and_is_even():
    assert video.decode_size(1920, 1080) == (854, 480)
    assert video.decode_size(320, 240) == (320, 240)
    w, h = video.decode_size(8000, 1000)
    assert w <= 960 and w % 2 == 0 and h % 2 == 0


@pytest.mark.slow
def test_bad_inputs_raise_bad_video_error_naming_file(bad_inputs):
    for case, path in bad_inputs.items():
        if EXPECTED[case] == "bad":
            with pytest.raises(BadVideoError) as e:
                annotate_video(path, case, AnnotateConfig())
            assert str(path) in str(e.value), case
            assert e.value.reason, case
        else:
            r = annotate_video(path, case, AnnotateConfig())
            assert r.rows == [] and dict(r.dropped).get("no_hands") == 1, case
    msgs = {}
    for case in ("empty", "image", "tiny", "huge", "unknown_codec"):
        with pytest.raises(BadVideoError) as e:
            video.probe(bad_inputs[case])
        msgs[case] = e.value.reason
    assert "empty" in msgs["empty"] and "still image" in msgs["image"]
    assert "too small" in msgs["tiny"] and "too large" in msgs["huge"] and "codec" in msgs["unknown_codec"]


def test_vfr_video_comes_out_at_15fps(bad_inputs):
    calls = []
    r = annotate_video(bad_inputs["vfr"], "vfr", AnnotateConfig(), progress=lambda done, total: calls.append((done, total)))
    assert r.num_frames == 30 and r.frames_decoded == 25  # 2 s; 10 fps part repeats frames
    assert calls[-1] == (30, 30) and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_decord_and_pyav_agree(tmp_path):
    p = write_video(tmp_path / "v.mp4", 160, 120, [i / 30 for i in range(20)])
    info = video.probe(p)
    size = video.decode_size(info.width, info.height)
    a = video.open_reader(info, size, "decord")
    b = video.open_reader(info, size, "pyav")
    assert (a.name, b.name) == ("decord", "pyav")
    np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-3)
    fa = dict(a.iter_frames([0, 5, 19]))
    fb = dict(b.iter_frames([0, 5, 19]))
    assert sorted(fa) == sorted(fb) == [0, 5, 19]
    for i in fa:
        assert np.abs(fa[i].astype(int) - fb[i].astype(int)).mean() < 3  # same frame, colour conversion aside


def test_pyav_fallback_when_decord_cannot_open(tmp_path, monkeypatch, caplog):
    p = write_video(tmp_path / "v.mp4", 160, 120, [i / 30 for i in range(20)])

    from decord._ffi.base import DECORDError

    def refuse(*a, **k):
        raise DECORDError("decord cannot open this")

    monkeypatch.setattr(video.DecordReader, "__init__", refuse)
    with caplog.at_level("INFO", logger="clutch_core.video"):
        r = annotate_video(p, "v", AnnotateConfig(reader="decord"))
    assert r.reader == "pyav" and r.num_frames == 10
    assert "decord cannot open this" in caplog.text  # the reason of the fallback is logged


def test_errors_other_than_the_decoders_are_not_bad_input(tmp_path, monkeypatch):
    """MemoryError or an I/O error while decoding propagates as itself (transient), not BadVideoError."""
    p = write_video(tmp_path / "v.mp4", 160, 120, [i / 30 for i in range(20)])
    for exc in (MemoryError("out of memory"), OSError(5, "Input/output error")):
        def fail(self, indices, exc=exc):
            raise exc
            yield

        for cls, reader in ((video.DecordReader, "decord"), (video.PyAVReader, "pyav"), (video.PyAVReader, "auto")):
            with monkeypatch.context() as m:
                m.setattr(cls, "iter_frames", fail)
                with pytest.raises(type(exc)):
                    annotate_video(p, "v", AnnotateConfig(reader=reader))
    assert not video.is_bad_data(MemoryError()) and not video.is_bad_data(OSError())
    import av
    from decord._ffi.base import DECORDError

    assert video.is_bad_data(DECORDError("x")) and video.is_bad_data(av.error.InvalidDataError(1, "x"))


def test_iter_resampled_yields_bounded_chunks(tmp_path):
    p = write_video(tmp_path / "v.mp4", 64, 48, [i / 30 for i in range(90)])
    info = video.probe(p)
    rd = video.open_reader(info, (64, 48))
    idx = video.resample_indices(rd.timestamps, 15.0)
    chunks = list(video.iter_resampled(rd, idx, 15))
    assert [k for k, _ in chunks] == [0, 15, 30] and all(f.shape == (15, 48, 64, 3) for _, f in chunks)


def test_video_id_is_content_based(tmp_path):
    p = write_video(tmp_path / "a.mp4", 64, 48, [i / 30 for i in range(10)])
    vid = discovery.video_id(p)
    moved = tmp_path / "renamed.mp4"
    p.rename(moved)
    assert discovery.video_id(moved) == vid and len(vid) == 16
    big = tmp_path / "big.bin"
    data = bytearray(np.random.default_rng(0).integers(0, 256, 20 << 20, dtype=np.uint8).tobytes())
    big.write_bytes(bytes(data))
    v1 = discovery.video_id(big)
    data[-10] ^= 1  # a change in the sampled tail
    big.write_bytes(bytes(data))
    assert discovery.video_id(big) != v1


def test_narrations_epic_csv_and_ego4d_json(tmp_path):
    csv_path = tmp_path / "n.csv"
    csv_path.write_text(
        "narration_id,participant_id,video_id,start_timestamp,stop_timestamp,narration,verb,noun\n"
        "P01_01_0,P01,P01_01,00:00:01.50,00:00:03.00,open drawer,open,drawer\n"
        "P01_01_1,P01,P01_01,00:01:00.00,00:01:02.25,take knife,take,knife\n"
        "P02_01_0,P02,P02_01,00:00:00.00,00:00:01.00,wash plate,wash,plate\n"
    )
    table = discovery.load_narrations(csv_path)
    segs = discovery.narrations_for(tmp_path / "videos" / "P01_01.MP4", table)
    assert [(s.start_s, s.end_s, s.text) for s in segs] == [(1.5, 3.0, "open drawer"), (60.0, 62.25, "take knife")]
    js = tmp_path / "n.json"
    js.write_text(json.dumps({"videos": {"abc": {"narration_pass_1": {"narrations": [
        {"timestamp_sec": 5.0, "narration_text": "#C C picks a cup"}]}}}}))
    segs = discovery.load_narrations(js, point_window_s=2.0)["abc"]
    assert segs == [discovery.Segment(4.0, 6.0, "C picks a cup")]
    with pytest.raises(ValueError, match="lacks columns"):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n")
        discovery.load_narrations(bad)
