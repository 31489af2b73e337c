"""`clutch view DATASET` in headless Chromium: on a dataset built from the real sample video, the page
loads, the scene holds the clip's hands, the canvas is not blank, the timeline plays and scrubs, the
source frame shows the keypoints, and the SQL filter works (a bad one is reported, the server stays).

One server and one browser for the module."""
from __future__ import annotations


import numpy as np
import pytest

from clutch_core.render.render import HAND_COLORS, clip_joints
from clutch_core.view.tracks import bone_segments, to_viewer
from tests.fixtures.cdp import (Browser, canvas_screenshot, click_button, fill, hand_pixels, install_panel_helpers,
                                keep_for_docs, require_chromium, until)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    """A dataset built by the real annotator (MediaPipe) from the sample kitchen video, small decode."""
    from annotators.pipeline import AnnotateConfig, annotate_video
    from storage.writer import write_shard

    video = shared_data / "videos" / "ego_kitchen_4s.mp4"
    result = annotate_video(video, "kitchen", AnnotateConfig(decode_short_side=180, decode_max_long_side=320))
    assert len(result.rows) >= 2, "the sample video should give clips"
    d = tmp_path_factory.mktemp("view") / "kitchen"
    write_shard(d, "kitchen", result.rows)
    return d


@pytest.fixture(scope="module")
def page(built, tmp_path_factory):
    from clutch_core.view import serve

    require_chromium()
    served = serve(built, port=0, autoplay=False)
    browser = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1100, height=700, deviceScaleFactor=1, mobile=False)
        browser.goto(served.url)
        browser.wait_for("document.body && document.body.innerText.includes('Apply filter')", what="the panel")
        install_panel_helpers(browser)
        until(lambda: len(served.viewer.server.get_clients()) == 1, "the browser to connect")
        yield served, browser
    finally:
        browser.close()
        served.stop()


def _row(built, clip_id):
    from storage.reader import ClipReader

    return ClipReader(built).read_rows([clip_id])[0]


def test_page_loads_and_the_scene_holds_the_clips_hands(page, built):
    served, browser = page
    viewer = served.viewer
    assert "CLUTCH" in browser.js("document.body.innerText")
    track = viewer.scene.tracks[0]
    row = _row(built, track.label)
    state = viewer.scene.state()
    t, off = viewer.scene.frame, viewer.scene.offsets[0]
    joints = clip_joints(row)  # tracked joints3d: what `clutch render` draws
    for h, side in enumerate(("left", "right")):
        want = to_viewer(joints[t, h]) + off
        np.testing.assert_allclose(state[f"/tracks/0/{side}/joints"]["points"], want, atol=1e-5)
        np.testing.assert_allclose(state[f"/tracks/0/{side}/bones"]["points"], bone_segments(want), atol=1e-5)
        assert state[f"/tracks/0/{side}/bones"]["visible"] == bool(row["presence"][t, h])
    text = browser.js("document.body.innerText")
    for needle in (track.label, row["captions"][0]["text"][:40], "presence_left", "jitter"):
        assert needle in text, needle  # captions and quality fields on the page


def test_canvas_shows_the_hands_in_their_colours(page, tmp_path):
    served, browser = page
    img = canvas_screenshot(browser, tmp_path / "canvas.png")
    assert img.shape[0] > 300 and img.shape[1] > 300
    assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not blank
    present = served.viewer.scene.tracks[0].presence[served.viewer.scene.frame]
    for h in range(2):
        assert (hand_pixels(img, HAND_COLORS[h]) > 30) == bool(present[h]), h
    shot = browser.screenshot(tmp_path / "page.png")
    keep_for_docs(shot, "view-dataset.png")


def test_timeline_plays_pauses_and_scrubs(page):
    served, browser = page
    viewer = served.viewer
    n = viewer.scene.frames
    click_button(browser, "Play")
    until(lambda: viewer.scene.frame > 2, "the timeline to advance")
    click_button(browser, "Pause")
    until(lambda: not viewer.playing, "pause")
    # scrub: a click at 3/4 of the slider's track moves to about 3/4 of the clip
    x, y, w = browser.js("(() => { const p = [...document.querySelectorAll('p')].find(e => e.textContent.trim() "
                         "=== 'Frame'); const s = p.parentElement.parentElement.querySelector('.mantine-Slider-root');"
                         " s.scrollIntoView({block: 'center'}); const r = s.getBoundingClientRect(); "
                         "return [r.x, r.y + r.height / 2, r.width]; })()")
    browser.click(x + 0.75 * w, y)
    until(lambda: abs(viewer.scene.frame - 0.75 * (n - 1)) <= 2, f"frame {0.75 * (n - 1):.0f}")
    assert browser.wait_for(f"document.body.innerText.includes('frame {viewer.scene.frame + 1} of {n}')")


def test_source_frame_shows_the_2d_keypoints(page):
    served, browser = page
    viewer = served.viewer
    assert viewer.video is not None and len(viewer.video.frames) == viewer.scene.frames
    t = viewer.scene.frame
    raw, drawn = viewer.video.frames[t], viewer.video.frame(t)
    present = viewer.scene.tracks[0].presence[t]
    for h in range(2):  # the keypoints of each present hand, in its colour
        gained = hand_pixels(drawn.astype(int), HAND_COLORS[h], 40) - hand_pixels(raw.astype(int), HAND_COLORS[h], 40)
        assert (gained > 20) == bool(present[h]), h
    assert browser.wait_for("[...document.querySelectorAll('img')].some(i => i.naturalWidth >= 300)",
                            what="the source frame on the page")


def test_sql_filter_picks_clips_and_a_bad_filter_is_reported(page, built):
    from storage.catalog import connect

    served, browser = page
    viewer = served.viewer
    every = [r[0] for r in connect(built).execute("SELECT clip_id FROM clips ORDER BY 1").fetchall()]
    where = f"quality.presence_right >= 0 AND clip_id > '{every[len(every) // 2 - 1]}'"  # about half of them
    ids = [r[0] for r in connect(built).execute(f"SELECT clip_id FROM clips WHERE {where} ORDER BY 1").fetchall()]
    total = connect(built).execute("SELECT count(*) FROM clips").fetchall()[0][0]
    assert 0 < len(ids) < total  # the filter must change the list for this check to mean something
    fill(browser, "Filter (SQL)", where)
    until(lambda: viewer._where.value == where, "the filter to reach the server")
    click_button(browser, "Apply filter")
    browser.wait_for(f"document.body.innerText.includes('{len(ids)} of {total} clips match')", what="the match count")
    until(lambda: viewer.scene.tracks[0].label == ids[0], "the first matching clip")
    for bad, needle in (("presence_left >>> 1", "not a filter over the clips view"),
                        ("(SELECT count(*) FROM read_text('/etc/hostname')) > 0", "not a filter")):
        fill(browser, "Filter (SQL)", bad)
        until(lambda: viewer._where.value == bad, "the filter to reach the server")
        click_button(browser, "Apply filter")
        browser.wait_for(f"document.body.innerText.includes({needle!r})", what=f"the message for {bad!r}")
    assert len(viewer.server.get_clients()) == 1 and viewer.scene.tracks[0].label == ids[0]  # still serving
