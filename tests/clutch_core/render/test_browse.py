"""`clutch browse`: the static site renders clip cards in a real (headless) browser, filters work."""
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from clutch_cli import main
from tests.fixtures.eval_data import ACTIONS, make_rows, write_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def needs_chromium():
    from tests.conftest import require

    require(CHROMIUM is not None, "chromium is not installed (apt-get install -y chromium)")


def chromium(tmp_path, url, *extra):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browse")
    ds = write_dataset(root / "ds", make_rows(6, seed=5))
    assert main(["browse", str(ds), "--out", str(root / "site"), "--limit", "4", "--size", "96"]) == 0
    return root / "site"


def test_site_files(site):
    gifs = sorted((site / "gifs").glob("*.gif"))
    assert len(gifs) == 4  # --limit
    assert Image.open(gifs[0]).n_frames > 10
    js = (site / "clips.js").read_text()
    assert js.startswith("window.CLUTCH_CLIPS = ") and js.count('"clip_id"') == 4
    html = (site / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from the network
    assert "img{width:100%" not in html and "max-width:100%" in html  # GIFs never upscaled (blurry)


@pytest.mark.slow
def test_page_renders_cards_in_headless_chromium(needs_chromium, site, tmp_path):
    url = (site / "index.html").resolve().as_uri()
    dom = chromium(tmp_path, url, "--dump-dom").stdout
    assert len(re.findall(r'class="card"', dom)) == 4  # cards exist only after the script ran
    assert "4 of 4 clips" in dom and ACTIONS[0][0] in dom
    # the filters, preset from the URL: caption source and word ("tapping" is only in clip 1's kinematic caption)
    dom = chromium(tmp_path, url + "?source=kinematic&word=tapping", "--dump-dom").stdout
    assert len(re.findall(r'class="card"', dom)) == 1
    assert 'class="src">kinematic' in dom and 'class="src">synthetic' not in dom and ACTIONS[1][1] in dom
    shot = tmp_path / "shot.png"
    chromium(tmp_path, url, f"--screenshot={shot}", "--window-size=1000,700")
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (700, 1000)
    assert img.std() > 10 and len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not a blank page
    # the GIFs were decoded and drawn: hand colours appear in the screenshot
    from clutch_core.render.render import HAND_COLORS

    assert any((np.abs(img - c).sum(-1) < 60).sum() > 20 for c in HAND_COLORS)
