"""`clutch view RUN --dataset D` in headless Chromium: Generate, driven through the page, animates motion
of the asked length, samples side by side; bad input shows the CLI's message and the server keeps
serving; a second click while a job runs is refused; Caption and Download work; a run without a
language model says so. One server and one browser (plus a server without a browser for the run
without a model)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from clutch_cli import main
from clutch_core.render.render import HAND_COLORS
from tests.fixtures.cdp import (Browser, canvas_screenshot, click_button, fill, hand_pixels, install_panel_helpers,
                                keep_for_docs, require_chromium, until)
from tests.fixtures.lm_run import LM_SMALL, copy_run, shift_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(dataset, run): a tiny SHIFT run with its pretrain language-model stage trained 4 steps."""
    import torch

    from clutch_core.lm.config import preset_config
    from clutch_core.lm.train import run_stage

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset, base = shift_run(tmp_path_factory)
        run = copy_run(dataset, base, tmp_path_factory.mktemp("view_lm") / "run")
        run_stage("pretrain", dataset, run, preset_config("tiny", max_steps=4, **LM_SMALL), progress=False)
    finally:
        torch.set_num_threads(threads)
    return dataset, run


@pytest.fixture(scope="module")
def page(trained, tmp_path_factory):
    from clutch_core.view import serve

    require_chromium()
    dataset, run = trained
    served = serve(run, dataset=str(dataset), port=0, autoplay=False)
    browser = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1100, height=700, deviceScaleFactor=1, mobile=False)
        _open(browser, served)
        yield served, browser
    finally:
        browser.close()
        served.stop()


def _open(browser, served) -> None:
    browser.goto(served.url)
    browser.wait_for("document.body && document.body.innerText.includes('Generate')", what="the playground")
    install_panel_helpers(browser)
    until(lambda: len(served.viewer.server.get_clients()) == 1, "the browser to connect")


def _ask(browser, viewer, text: str, seconds: str, samples: str = "1") -> None:
    """Fill the playground as a user would, each value reaching the server before the next is typed."""
    for label, value, handle, want in (("Text", text, viewer._text, text), ("Seconds", seconds, viewer._seconds,
                                                                            float(seconds)),
                                       ("Samples", samples, viewer._samples, int(samples))):
        fill(browser, label, value)
        until(lambda: handle.value == want, f"{label} = {value!r} on the server")


def _page_says(browser, text: str, timeout: float = 60) -> None:
    browser.wait_for(f"document.body.innerText.includes({text!r})", timeout, what=f"{text!r} on the page")


def test_generate_in_the_browser_animates_motion_of_the_asked_length(page, tmp_path):
    served, browser = page
    viewer = served.viewer
    _ask(browser, viewer, "the right hand waves", "2", "2")
    click_button(browser, "Generate")
    _page_says(browser, "generated 2 sample(s) of 30 frames")
    assert [m.motion.shape for m in viewer.generated] == [(30, 198), (30, 198)]
    assert all(np.isfinite(m.motion).all() and m.presence.shape == (30, 2) for m in viewer.generated)
    assert [t.label for t in viewer.scene.tracks] == ["sample 1", "sample 2"] and viewer.scene.frames == 30
    state = viewer.scene.state()
    assert {"/tracks/0/left/bones", "/tracks/1/right/joints"} <= set(state)
    x0 = state["/tracks/0/left/joints"]["points"][:, 0].mean()
    x1 = state["/tracks/1/left/joints"]["points"][:, 0].mean()
    assert x1 - x0 > 0.05  # side by side
    click_button(browser, "Play")
    until(lambda: viewer.scene.frame > 2, "the samples to play")
    click_button(browser, "Pause")
    img = canvas_screenshot(browser, tmp_path / "canvas.png")
    assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50
    assert max(hand_pixels(img, c) for c in HAND_COLORS) > 30
    keep_for_docs(browser.screenshot(tmp_path / "page.png"), "view-playground.png")


def _cli_message(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    return capsys.readouterr().err.strip().split("error: ", 1)[1]


def test_bad_input_shows_the_cli_message_and_the_server_keeps_serving(page, trained, capsys, tmp_path):
    served, browser = page
    viewer = served.viewer
    _, run = trained
    out = str(tmp_path / "m.npz")
    before = list(viewer.generated)
    for text, seconds, argv in (("", "2", ["generate", str(run), "", "--out", out, "--seconds", "2"]),
                                ("wave", "30", ["generate", str(run), "wave", "--out", out, "--seconds", "30"])):
        message = _cli_message(capsys, argv)
        _ask(browser, viewer, text, seconds)
        click_button(browser, "Generate")
        _page_says(browser, message)
        assert viewer.messages[-1] == message and viewer.generated == before
    _ask(browser, viewer, "both hands clap", "1")  # the server still serves
    click_button(browser, "Generate")
    _page_says(browser, "generated 1 sample(s) of 15 frames")


def test_a_second_click_while_a_job_runs_is_refused(page):
    import threading

    served, browser = page
    viewer = served.viewer
    gate = threading.Event()
    assert viewer.jobs.start("generate", lambda: gate.wait(60), lambda _: None, lambda _: None)  # a long job
    try:
        before = list(viewer.generated)
        click_button(browser, "Generate")
        _page_says(browser, "busy: generate is running")
        click_button(browser, "Caption")
        until(lambda: viewer.messages[-1].startswith("busy:"), "the caption click to be refused")
    finally:
        gate.set()
        viewer.jobs.wait(60)
    assert viewer.generated == before


def test_caption_and_download_what_is_on_screen(page, tmp_path):
    served, browser = page
    viewer = served.viewer
    until(lambda: viewer.jobs.running is None, "no job")
    click_button(browser, "Caption")
    until(lambda: viewer.messages[-1].startswith("caption: "), "a caption")
    assert viewer.messages[-1][len("caption: "):].strip()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    click_button(browser, "Download")
    until(lambda: [p for p in downloads.glob("*.npz")] and not list(downloads.glob("*.crdownload")), "the .npz")
    (path,) = downloads.glob("*.npz")
    z = np.load(path)
    track = viewer.scene.tracks[0]
    assert np.array_equal(z["motion"], track.motion) and np.array_equal(z["presence"], track.presence)
    assert str(z["caption"]) == track.caption


def test_a_run_without_a_language_model_says_so(trained, tmp_path, capsys):
    """The same checks as the page's buttons, on a second server (no browser: the page path is tested above)."""
    from clutch_core.view import serve

    _, run = trained
    bare = tmp_path / "bare"
    shutil.copytree(run / "shift", bare / "shift")
    message = _cli_message(capsys, ["generate", str(bare), "wave", "--out", str(tmp_path / "m.npz")])
    assert "no trained language model" in message
    served = serve(bare, port=0, autoplay=False)
    try:
        viewer = served.viewer
        assert viewer.generate("wave", 2.0, 1, 0) is False and viewer.messages[-1] == message
        assert viewer.caption() is False and viewer.messages[-1] == message
        assert viewer.jobs.running is None and viewer.generated == []
    finally:
        served.stop()
