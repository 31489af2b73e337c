"""The viewer's scene without a browser: tracks in the viewer's frame, side-by-side layout, the nodes a
client is sent for a frame, MANO meshes, and one model job at a time."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from clutch_core.render.render import motion_joints
from clutch_core.view.jobs import OneJob
from clutch_core.view.tracks import BONES, bone_segments, layout, make_track, to_viewer
from tests.fixtures.eval_data import make_rows


@pytest.fixture(scope="module")
def server():
    import contextlib
    import io

    import viser

    with contextlib.redirect_stdout(io.StringIO()):
        s = viser.ViserServer(host="127.0.0.1", port=0, verbose=False)
    yield s
    with contextlib.redirect_stdout(io.StringIO()):
        s.stop()


def test_viewer_frame_is_z_up_with_the_camera_looking_along_y():
    p = np.array([[0.1, -0.2, 0.5]], np.float32)  # camera frame: right, up (y down), forward
    np.testing.assert_allclose(to_viewer(p), [[0.1, 0.5, 0.2]])
    assert sorted(map(tuple, BONES.tolist()))[:4] == [(1, 0), (2, 1), (3, 2), (4, 3)] and len(BONES) == 20
    j = np.arange(63, dtype=np.float32).reshape(21, 3)
    seg = bone_segments(j)
    assert seg.shape == (20, 2, 3) and np.array_equal(seg[0], j[[1, 0]])


def test_samples_are_laid_out_side_by_side_without_overlap():
    rows = make_rows(3, seed=2)
    tracks = [make_track(f"sample {k}", r["motion"], r["presence"]) for k, r in enumerate(rows)]
    offsets, ground, centre, radius = layout(tracks)
    spans = []
    for t, o in zip(tracks, offsets):
        x = t.present_points()[:, 0] + o[0]
        spans.append((np.percentile(x, 2), np.percentile(x, 98)))
        assert ground < float(np.min(t.present_points()[:, 2] + o[2]) + 0.05)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))  # left to right, apart
    assert abs(spans[0][0] + spans[-1][1]) < 0.05 and radius > 0  # the row is centred on the origin


def test_scene_sends_each_hand_at_the_frame_shown_and_hides_absent_hands(server):
    from clutch_core.view.scene import HandsScene

    row = make_rows(1, seed=4)[0]  # clip 0: the right hand is absent in the first third
    scene = HandsScene(server)
    track = make_track("c", row["motion"], row["presence"], row["joints3d"])
    scene.set_tracks([track])
    off = scene.offsets[0]
    for t in (0, track.frames - 1, track.frames + 5):  # past the end: the last frame is held
        scene.show(t)
        state, i = scene.state(), min(t, track.frames - 1)
        for h, side in enumerate(("left", "right")):
            want = to_viewer(row["joints3d"][i, h]) + off
            np.testing.assert_allclose(state[f"/tracks/0/{side}/joints"]["points"], want, atol=1e-5)
            np.testing.assert_allclose(state[f"/tracks/0/{side}/bones"]["points"], bone_segments(want), atol=1e-5)
            assert state[f"/tracks/0/{side}/bones"]["visible"] == bool(row["presence"][i, h])
    assert not row["presence"][0, 1] and row["presence"][-1, 1]
    scene.set_tracks([])
    assert set(scene.state()) == {"/grid"}


@pytest.mark.slow
def test_mano_meshes_replace_skeletons(server, tmp_path):
    from clutch_core.hands.mano_synthetic import write_synthetic_mano
    from clutch_core.render.mesh import ManoMeshes
    from clutch_core.view.scene import HandsScene

    write_synthetic_mano(tmp_path / "mano")  # MANO's array layout, synthetic values
    row = make_rows(1, seed=6)[0]
    n = 6
    track = make_track("m", row["motion"][:n], row["presence"][:n], row["joints3d"][:n],
                       meshes=ManoMeshes(tmp_path / "mano"))
    assert track.vertices.shape == (n, 2, 778, 3)
    np.testing.assert_allclose(track.joints, to_viewer(motion_joints(row["motion"][:n])), atol=1e-5)  # the mesh's frame
    scene = HandsScene(server)
    scene.set_tracks([track])
    scene.show(3)
    state = scene.state()
    assert "/tracks/0/left/mesh" in state and "/tracks/0/left/bones" not in state
    np.testing.assert_allclose(state["/tracks/0/right/mesh"]["vertices"], track.vertices[3, 1] + scene.offsets[0],
                               atol=1e-5)


def test_one_job_at_a_time_and_failures_are_reported():
    jobs, gate, seen = OneJob(), threading.Event(), []
    assert jobs.start("generate", lambda: gate.wait(30) and 7, seen.append, seen.append)
    assert jobs.running == "generate"
    assert not jobs.start("caption", lambda: 1, seen.append, seen.append)  # refused: nothing runs
    assert "generate is running" in jobs.busy_message()
    gate.set()
    assert jobs.wait(30) and seen == [7]
    assert jobs.start("caption", lambda: 1 / 0, seen.append, seen.append)
    assert jobs.wait(30) and isinstance(seen[-1], ZeroDivisionError) and jobs.running is None
