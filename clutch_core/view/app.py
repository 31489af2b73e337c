"""`clutch view`: the page. A viser server shows the hands in 3D with a timeline, and

- with a dataset: a clip picker filtered by SQL, the source frame with the 2D keypoints, the clip's
  captions and quality fields;
- with a run: a playground (text, seconds, samples, seed -> Generate; Caption of what is on
  screen; Download of it as .npz).

Model calls run as OneJob jobs (one at a time, off the UI thread). Every problem a user can cause
is shown on the page with the message the CLI gives, and the server keeps serving.
"""
from __future__ import annotations

import io
import logging
import re
import threading
import time
from pathlib import Path

import numpy as np

from clutch_core.view.jobs import OneJob
from clutch_core.view.scene import HandsScene
from clutch_core.view.tracks import make_track
from layout import FPS

log = logging.getLogger(__name__)

DEFAULT_TEXT = "the left hand waves"
MAX_SAMPLES = 8  # side by side on one screen


class Viewer:
    """One page's server-side state; all clients see the same scene."""

    def __init__(self, server, dataset: Path | None = None, run: Path | None = None, where: str | None = None,
                 mano_dir: str | None = None, stage: str | None = None, autoplay: bool = True):
        from clutch_core.view.clips import ClipCatalog

        self.server, self.dataset, self.run, self.stage = server, dataset, run, stage
        self.catalog = ClipCatalog(dataset) if dataset is not None else None
        if self.catalog is not None and not self.catalog.total:
            raise ValueError(f"dataset {dataset} has no clips (no shard in {Path(dataset) / 'shards'})")
        first = self.catalog.clip_ids(where) if self.catalog else None  # a bad --where stops here
        self.meshes = _meshes(mano_dir)
        self.scene = HandsScene(server)
        self.jobs = OneJob()
        self.messages: list[str] = []  # every message shown on the page, newest last
        self.generated: list = []  # Motion samples of the last Generate
        self.video = None
        self.playing = autoplay
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        server.gui.configure_theme(dark_mode=True, show_share_button=False, control_width="large", control_layout="fixed")
        self._status = server.gui.add_markdown("")
        self._timeline_gui()
        if run is not None:
            self._playground_gui()
        if self.catalog is not None:
            self._clips_gui(where, first)
        self._player = threading.Thread(target=self._play_loop, name="clutch-view-player", daemon=True)
        self._player.start()

    # ------------------------------------------------------------------ messages

    def say(self, text: str, error: bool = False) -> None:
        """Show a message on the page (status line and a notification to every client)."""
        self.messages.append(text)
        (log.warning if error else log.info)("%s", text)
        self._status.content = f"{'⚠️ ' if error else ''}{text}"
        for client in self.server.get_clients().values():
            client.add_notification("Problem" if error else "Done", text, color="red" if error else "green",
                                    auto_close_seconds=None if error else 6.0)

    # ------------------------------------------------------------------ timeline

    def _timeline_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Timeline"):
            self._play = gui.add_button("Pause" if self.playing else "Play", icon="player-pause" if self.playing
                                        else "player-play")
            self._slider = gui.add_slider("Frame", min=0, max=1, step=1, initial_value=0)
            self._time = gui.add_markdown("")
        self._play.on_click(lambda _: self.set_playing(not self.playing))
        self._slider.on_update(lambda _: self._goto(int(self._slider.value)))

    def set_playing(self, playing: bool) -> None:
        self.playing = bool(playing)
        self._play.label = "Pause" if self.playing else "Play"
        self._play.icon = "player-pause" if self.playing else "player-play"

    def _goto(self, t: int) -> None:
        n = self.scene.frames
        if not n:
            return
        t = max(0, min(int(t), n - 1))
        self.scene.show(t)
        self._time.content = f"{t / FPS:.2f} s / {n / FPS:.2f} s (frame {t + 1} of {n})"
        if self.video is not None:
            self._image.image = self.video.frame(t)

    def _play_loop(self) -> None:
        """Advance the timeline at the data's frame rate while playing (looping) and someone watches."""
        while not self._stop.is_set():
            start = time.monotonic()
            n = self.scene.frames
            if self.playing and n > 1 and self.server.get_clients():
                self._slider.value = (int(self._slider.value) + 1) % n  # its callback draws the frame
            self._stop.wait(max(0.0, 1 / FPS - (time.monotonic() - start)))

    def show_tracks(self, tracks, video=None) -> None:
        """Put tracks on screen from frame 0, with the timeline sized to the longest."""
        self.video = video
        self.scene.set_tracks(tracks)
        self._slider.max = max(self.scene.frames - 1, 1)
        if int(self._slider.value) == 0:
            self._goto(0)
        else:
            self._slider.value = 0

    def close(self) -> None:
        self._stop.set()
        self._player.join(timeout=2)
        self.jobs.wait(timeout=30)

    # ------------------------------------------------------------------ dataset

    def _clips_gui(self, where: str | None, first) -> None:
        gui = self.server.gui
        ids, n = first
        with gui.add_folder("Clips"):
            self._where = gui.add_text("Filter (SQL)", where or "", hint="a WHERE clause over the clips view, "
                                       "e.g. quality.presence_left > 0.5")
            apply = gui.add_button("Apply filter", icon="filter")
            self._matches = gui.add_markdown("")
            self._picker = gui.add_dropdown("Clip", ids or ["(none)"], initial_value=(ids or ["(none)"])[0])
            self._image = gui.add_image(np.zeros((9, 16, 3), np.uint8), label="Source video", visible=False)
            self._video_note = gui.add_markdown("")
            self._info = gui.add_markdown("")
        apply.on_click(lambda _: self.apply_filter(self._where.value))
        self._picker.on_update(lambda _: self.load_clip(self._picker.value))
        self._show_matches(ids, n)
        if ids:
            self.load_clip(ids[0])

    def _show_matches(self, ids: list[str], n: int) -> None:
        shown = f" (the first {len(ids)} listed)" if n > len(ids) else ""
        self._matches.content = f"{n} of {self.catalog.total} clips match{shown}"

    def apply_filter(self, where: str) -> None:
        """New picker entries from a WHERE clause; a bad clause is reported and changes nothing."""
        try:
            ids, n = self.catalog.clip_ids(where)
        except ValueError as e:
            self.say(str(e), error=True)
            return
        self._show_matches(ids, n)
        if not ids:
            self.say(f"no clip matches {where!r}", error=True)
            return
        self._picker.options = ids
        self._picker.value = ids[0]  # its callback loads the clip (unless it was already picked)
        if not self.scene.tracks or self.scene.tracks[0].label != ids[0]:
            self.load_clip(ids[0])

    def load_clip(self, clip_id: str) -> None:
        """Show a dataset clip: hands, source frames with keypoints (when reachable), facts."""
        from clutch_core.render.render import clip_joints
        from clutch_core.view.clips import SourceVideo, describe

        if clip_id == "(none)":
            return
        with self._load_lock:
            try:
                row = self.catalog.row(clip_id)
            except KeyError as e:
                self.say(str(e).strip('"'), error=True)
                return
            caps = row.get("captions") or []
            track = make_track(clip_id, row["motion"], row["presence"], clip_joints(row, self.meshes is not None),
                               caps[0]["text"] if caps else "", self.meshes)
            video = SourceVideo.open(row, self.dataset)
            self._image.visible = video is not None
            self._video_note.content = "" if video is not None else \
                f"Source video not reachable (`{row.get('source_uri')}`): only the 3D hands are shown."
            self._info.content = describe(row)
            self.show_tracks([track], video)

    # ------------------------------------------------------------------ playground

    def _playground_gui(self) -> None:
        gui = self.server.gui
        with gui.add_folder("Playground"):
            self._text = gui.add_text("Text", DEFAULT_TEXT, hint="what the hands should do")
            self._seconds = gui.add_number("Seconds", 3.0, step=0.1, hint="length, 0 < S <= 9.6")
            self._samples = gui.add_number("Samples", 1, step=1, max=MAX_SAMPLES, hint="motions shown side by side")
            self._seed = gui.add_number("Seed", 0, step=1)
            generate = gui.add_button("Generate", icon="player-play", color="blue")
            caption = gui.add_button("Caption", icon="message")
            download = gui.add_button("Download", icon="download")
            self._model_out = gui.add_markdown("")
        generate.on_click(lambda _: self.generate(self._text.value, self._seconds.value, self._samples.value,
                                                  self._seed.value))
        caption.on_click(lambda _: self.caption())
        download.on_click(lambda event: self.download(event.client))

    def generate(self, text: str, seconds: float, samples: int, seed: int) -> bool:
        """Check the request, then generate on the job thread; False when refused (bad input or busy)."""
        from clutch_core.lm.api import generate
        from clutch_core.usage import UsageError, check_generate

        try:
            check_generate(self.run, text, seconds, int(samples), self.stage)
        except UsageError as e:
            self.say(str(e), error=True)
            return False
        work = lambda: generate(self.run, [text], seconds=float(seconds), samples=int(samples),  # noqa: E731
                                seed=int(seed), stage=self.stage)[0]
        if not self.jobs.start("generate", work, lambda motions: self._generated(text, motions), self._failed):
            self.say(self.jobs.busy_message(), error=True)
            return False
        self._model_out.content = f"generating {int(samples)} sample(s) of {float(seconds):g} s ..."
        return True

    def _generated(self, text: str, motions) -> None:
        self.generated = list(motions)
        tracks = [make_track(f"sample {k + 1}", m.motion, m.presence, caption=text, meshes=self.meshes)
                  for k, m in enumerate(motions)]
        self.show_tracks(tracks)
        self._model_out.content = f"**{text}**: {len(motions)} sample(s), {motions[0].motion.shape[0]} frames"
        self.say(f"generated {len(motions)} sample(s) of {motions[0].motion.shape[0]} frames "
                 f"({motions[0].motion.shape[0] / FPS:.1f} s) for {text!r}")

    def _failed(self, e: BaseException) -> None:
        if isinstance(e, (ValueError, FileNotFoundError)):  # what the CLI reports as a usage error
            self.say(str(e), error=True)
        else:
            log.error("viewer job failed", exc_info=e)
            self.say(f"failed: {type(e).__name__}: {e}", error=True)
        self._model_out.content = ""

    def caption(self) -> bool:
        """Caption every track on screen (dataset clip or generated samples) on the job thread."""
        from clutch_core.lm.api import captions
        from clutch_core.usage import UsageError, check_language_model

        try:
            check_language_model(self.run, self.stage)
        except UsageError as e:
            self.say(str(e), error=True)
            return False
        tracks = list(self.scene.tracks)
        if not tracks:
            self.say("nothing on screen to caption: pick a clip or generate motion first", error=True)
            return False
        work = lambda: captions(self.run, [(t.motion, t.presence) for t in tracks], stage=self.stage)  # noqa: E731
        if not self.jobs.start("caption", work, lambda texts: self._captioned(tracks, texts), self._failed):
            self.say(self.jobs.busy_message(), error=True)
            return False
        self._model_out.content = "captioning ..."
        return True

    def _captioned(self, tracks, texts: list[str]) -> None:
        self._model_out.content = "\n".join(f"- **{t.label}**: {c}" for t, c in zip(tracks, texts))
        self.say("caption: " + " | ".join(texts))

    def download_files(self) -> list[tuple[str, bytes]]:
        """The tracks on screen as .npz files (the format of `clutch generate --out X.npz`)."""
        from clutch_core.render.render import save_motion_file

        tracks = list(self.scene.tracks)
        name = (tracks[0].caption or tracks[0].label) if tracks else ""
        stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:48] or "motion"
        out = []
        for k, t in enumerate(tracks):
            buf = io.BytesIO()
            save_motion_file(buf, t.motion, t.presence, t.caption)
            out.append((f"{stem}{f'_{k}' if len(tracks) > 1 else ''}.npz", buf.getvalue()))
        return out

    def download(self, client) -> None:
        files = self.download_files()
        if not files:
            self.say("nothing on screen to download: pick a clip or generate motion first", error=True)
            return
        for name, data in files:
            client.send_file_download(name, data, save_immediately=True)
        self.say(f"sent {', '.join(n for n, _ in files)}")


def _meshes(mano_dir: str | None):
    if not mano_dir:
        return None
    from clutch_core.render.mesh import ManoMeshes

    return ManoMeshes(mano_dir)
