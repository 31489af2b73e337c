"""`clutch browse DATASET --out SITE`: a static HTML browser of a dataset.

SITE/index.html + SITE/clips.js (the clip list as a JS assignment, because browsers
refuse fetch() of local JSON on file:// pages) + SITE/gifs/<clip_id>.gif. Plain
JavaScript filters by caption source and by word (also preset from the URL:
index.html?source=synthetic&word=cup); nothing is loaded from the network.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from tqdm import tqdm

from clutch_core.render.render import RenderConfig, row_frames, write_video
from layout import FPS

INDEX = "index.html"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>__TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#15161a;color:#e6e6e6}
header{padding:12px 18px;background:#202229;position:sticky;top:0;display:flex;gap:14px;align-items:center;flex-wrap:wrap}
h1{font-size:18px;margin:0 12px 0 0}
select,input{background:#2b2e37;color:#eee;border:1px solid #444;border-radius:4px;padding:5px 8px}
#count{color:#aaa;font-size:13px}
#grid{display:flex;flex-wrap:wrap;gap:14px;padding:16px}
.card{background:#202229;border-radius:8px;padding:8px;width:__CARDW__px}
.card img{max-width:100%;height:auto;border-radius:4px;background:#000;display:block;margin:0 auto}
.meta{font-size:11px;color:#999;margin:6px 0 4px}
.cap{font-size:13px;margin:3px 0}
.src{display:inline-block;font-size:10px;padding:1px 5px;border-radius:3px;background:#3b4252;color:#cfd8ff;margin-right:5px}
</style></head>
<body>
<header><h1>__TITLE__</h1>
<label>source <select id="source"><option value="">all</option></select></label>
<label>word <input id="word" type="search" placeholder="e.g. cup"></label>
<span id="count"></span></header>
<div id="grid"></div>
<script src="clips.js"></script>
<script>
(function () {
  var clips = window.CLUTCH_CLIPS || [];
  var grid = document.getElementById('grid');
  var sel = document.getElementById('source');
  var word = document.getElementById('word');
  var sources = {};
  clips.forEach(function (c) { c.captions.forEach(function (k) { sources[k.source] = 1; }); });
  Object.keys(sources).sort().forEach(function (s) {
    var o = document.createElement('option'); o.value = s; o.textContent = s; sel.appendChild(o);
  });
  function card(c) {
    var d = document.createElement('div'); d.className = 'card'; d.dataset.clipId = c.clip_id;
    var img = document.createElement('img'); img.src = c.gif; img.alt = c.clip_id; d.appendChild(img);
    var m = document.createElement('div'); m.className = 'meta';
    m.textContent = c.clip_id + ' \\u00b7 ' + c.split + ' \\u00b7 ' + c.seconds.toFixed(1) + ' s'; d.appendChild(m);
    c.captions.forEach(function (k) {
      var p = document.createElement('div'); p.className = 'cap';
      var s = document.createElement('span'); s.className = 'src'; s.textContent = k.source; p.appendChild(s);
      p.appendChild(document.createTextNode(k.text)); d.appendChild(p);
    });
    return d;
  }
  function render() {
    var src = sel.value, w = word.value.trim().toLowerCase();
    grid.innerHTML = '';
    var shown = 0;
    clips.forEach(function (c) {
      var caps = c.captions.filter(function (k) { return !src || k.source === src; });
      if (!caps.length) return;
      if (w && !caps.some(function (k) { return k.text.toLowerCase().split(/[^a-z0-9']+/).indexOf(w) >= 0; })) return;
      grid.appendChild(card({clip_id: c.clip_id, gif: c.gif, split: c.split, seconds: c.seconds, captions: caps}));
      shown++;
    });
    document.getElementById('count').textContent = shown + ' of ' + clips.length + ' clips';
  }
  var q = new URLSearchParams(window.location.search);  // ?source=...&word=... pre-sets the filters
  if (q.get('source')) sel.value = q.get('source');
  if (q.get('word')) word.value = q.get('word');
  sel.addEventListener('change', render); word.addEventListener('input', render);
  render();
})();
</script></body></html>
"""


def _safe_name(clip_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", clip_id)


def build_site(dataset: Path, out: Path, limit: int = 50, split: str | None = None, size: int = 160,
               progress: bool = True) -> Path:
    """Render up to `limit` clips (in shard order) to GIFs and write the page; returns index.html."""
    from storage.reader import ClipReader

    if limit < 1:
        raise ValueError("--limit must be at least 1")
    reader = ClipReader(dataset)
    ids = reader.clip_ids(split)[:limit]
    if not ids:
        raise ValueError(f"{dataset}: no clips" + (f" in split {split!r}" if split else ""))
    out = Path(out)
    (out / "gifs").mkdir(parents=True, exist_ok=True)
    cfg = RenderConfig(width=size)
    entries = []
    for cid in tqdm(ids, desc="clips", disable=not progress):
        row = reader.read_rows([cid])[0]
        gif = f"gifs/{_safe_name(cid)}.gif"
        write_video(row_frames(row, cfg, Path(dataset)), out / gif, float(row.get("fps") or FPS))
        entries.append({"clip_id": cid, "gif": gif, "split": row["split"], "seconds": row["num_frames"] / float(row["fps"]),
                        "captions": [{"source": c["source"], "text": c["text"]} for c in row["captions"]]})
    # '</' inside a string would end the script element early
    (out / "clips.js").write_text("window.CLUTCH_CLIPS = " + json.dumps(entries, indent=0).replace("</", "<\\/") + ";\n")
    title = html.escape(f"3D-HIW browser: {Path(dataset).resolve().name}")
    page = _PAGE.replace("__TITLE__", title).replace("__CARDW__", str(max(220, 2 * size + 16)))
    (out / INDEX).write_text(page)
    return out / INDEX
