"""Soak of build-3dhiw: hundreds of real-content videos, faults injected while it runs, a computed verdict.

Two steps:

    python benchmarks/soak.py corpus --out /tmp/soak/corpus [--videos 300] [--seed 0] [--sources DIR ...]
    python benchmarks/soak.py run --corpus /tmp/soak/corpus --work /tmp/soak/run \\
        [--kills 5] [--disk-full] [--late] [--growing] [--second-build] [--corrupt-shard] \\
        [--workers 2] [--task-runner thread|ray] [--kill-ray-workers] [--reference DIR] [--set KEY=VALUE ...]

**corpus** cuts N videos from the real footage in ../shared/data/videos (and any folder given):
segments of 1-60 s (log-uniform) played forward, reversed, mirrored or zoomed from a random start,
re-encoded as H.264, HEVC, VP9 or MJPEG at 480p-1080p and 24-60 fps, some rotated to portrait, some
mirrored, some with a variable frame rate; exact copies of earlier files (same content: built once);
and broken files at a known rate (truncated, cut half-way through a streamable file, zero bytes, not a
video, audio only, header only). One good video is held back to appear while a build runs (`late`),
one to be copied in slowly while a build discovers it (`growing`). CORPUS/manifest.json says what each
file is and what a build must do with it.

**run** runs `clutch build` on the corpus again and again, as a user would after each accident, with the
faults asked for:
- `--kills K`: SIGKILL of the build (or, with `--kill-ray-workers`, of a Ray worker) at K random moments;
- `--disk-full`: the output folder is a small tmpfs (root only); once, the disk is filled while the build
  runs, then the space is freed and the build resumed;
- `--late`: a video copied into the input folder while a build runs (the next build takes it);
- `--growing`: a video still being written when the build discovers it (skipped until it is whole);
- `--second-build`: a second `clutch build` on the same output while one runs (must exit 2, "busy");
- `--corrupt-shard`: a shard's bytes flipped between two runs (`clutch verify` must name it, the next build
  rebuilds it);
until every video of the manifest has its end state; then the same command once more (nothing to do) and
`clutch verify --deep`. A clean, fault-free build of the same corpus (`--reference`, or built here,
uninterrupted) is the yardstick: the verdict compares every clip's arrays with it. Throughput and memory are
sampled all along (both builds) and judged on the clean build, which is one process over the whole corpus
(a kill restarts the faulty build's process, and so would hide a leak). WORK/ gets samples-*.jsonl,
faults.json, verdict.json, soak.png and, with --disk-full, faulty-kept/ (the faulty dataset, copied off its
tmpfs); the last line printed is the summary. Do not change the code under test while a soak runs: every
rerun of the build imports it afresh.

    soak: videos 300 ..., clips N, faults injected K (...), lost 0, duplicated 0, mismatched 0, verify clean

Run it alone on a quiet machine when its throughput figures are to be quoted. Exit status: 0 when the
verdict holds, 1 when it does not.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # benchmarks/storage.py would shadow the `storage` package

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"
TIMELINE_FPS = 15
# codec -> (encoder, file extension, pixel format, encoder options); every encoder on one thread
CODECS = {
    "h264": ("libx264", ".mp4", "yuv420p", {"preset": "veryfast", "crf": "23", "threads": "1"}),
    "hevc": ("libx265", ".mp4", "yuv420p", {"preset": "ultrafast", "crf": "28",
                                            "x265-params": "log-level=error:pools=1:frame-threads=1"}),
    "vp9": ("libvpx-vp9", ".webm", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "crf": "36", "b": "0",
                                               "threads": "1", "row-mt": "0"}),
    "mjpeg": ("mjpeg", ".avi", "yuvj420p", {"q:v": "6"}),
}
CODEC_WEIGHTS = {"h264": 0.55, "hevc": 0.2, "vp9": 0.15, "mjpeg": 0.1}
HEIGHTS = (480, 720, 1080)
FPS = (24, 25, 30, 30, 30, 60)
BROKEN = ("truncated", "cut_halfway", "zero_bytes", "not_a_video", "audio_only", "header_only")


# ------------------------------------------------------------------------------------------------ corpus
@dataclass
class Entry:
    """One file of the soak corpus and what a build must do with it."""

    file: str  # relative to the corpus folder
    kind: str  # good | broken | copy
    expect: str  # done (zero or more clips) | quarantined
    seconds: float = 0.0
    width: int = 0
    height: int = 0
    fps: float = 0.0
    codec: str | None = None
    transform: str = "plain"  # plain | mirrored | portrait (rotated 90 degrees)
    vfr: bool = False
    broken: str | None = None
    same_as: str | None = None  # a copy's original
    held: str | None = None  # late | growing: not in videos/ at first
    video_id: str = ""
    timeline_frames: int = 0


class Footage:
    """The source frames (RGB, native size), walked as forward / reversed / mirrored / zoomed segments."""

    def __init__(self, sources: list[Path]):
        import av

        self.clips: list[list[np.ndarray]] = []
        for src in sources:
            with av.open(str(src)) as c:
                frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            if frames:
                self.clips.append(frames)
        if not self.clips:
            raise SystemExit(f"soak corpus: no decodable source video in {[str(s) for s in sources]}")

    def sequence(self, rng: random.Random, n: int, fps: float) -> list[np.ndarray]:
        """n frames at `fps` of a random walk over segments of the footage (30 fps sources)."""
        out: list[np.ndarray] = []
        while len(out) < n:
            frames = self.clips[rng.randrange(len(self.clips))]
            mode = rng.choice(("forward", "reversed", "mirrored", "zoomed"))
            seq = frames[::-1] if mode == "reversed" else frames
            start = rng.randrange(len(seq) // 2)
            step = 30.0 / fps
            k = start
            while k < len(seq) and len(out) < n:
                img = seq[int(k)]
                if mode == "mirrored":
                    img = img[:, ::-1]
                elif mode == "zoomed":
                    h, w = img.shape[:2]
                    img = img[int(h * 0.2):int(h * 0.97), int(w * 0.12):int(w * 0.88)]
                out.append(img)
                k += step
        return out


def _resize(img: np.ndarray, width: int, height: int, transform: str) -> np.ndarray:
    import cv2

    if transform == "mirrored":
        img = img[:, ::-1]
    if transform == "portrait":  # a phone held upright: the picture turned by 90 degrees
        img = np.rot90(img)
    return cv2.resize(np.ascontiguousarray(img), (width, height), interpolation=cv2.INTER_AREA)


def encode(path: Path, frames: list[np.ndarray], fps: float, codec: str, times: list[float] | None = None) -> None:
    """Write frames with one of CODECS; `times` (seconds) gives a variable frame rate."""
    import av

    enc, _, pix_fmt, opts = CODECS[codec]
    tb = Fraction(1, 1000) if times else Fraction(1, int(round(fps)))
    with av.open(str(path), "w") as c:
        s = c.add_stream(enc, rate=int(round(fps)))
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        s.options = dict(opts)
        s.codec_context.time_base = tb
        s.codec_context.thread_count = 1
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = int(round(times[i] * 1000)) if times else i
            f.time_base = tb
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _faststart(src: Path, dst: Path) -> None:
    """Remux with the index first (a streamable MP4): the test fixtures' helper, one definition."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.fixtures.bad_inputs import _faststart as remux

    remux(src, dst)


def _audio_only(path: Path, seconds: float = 2.0) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=44100)
        n, t = 1024, 0
        while t < seconds * 44100:
            x = (0.2 * np.sin(2 * np.pi * 440 * (t + np.arange(n)) / 44100)).astype(np.float32)[None]
            f = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
            f.sample_rate, f.pts = 44100, t
            for pkt in s.encode(f):
                c.mux(pkt)
            t += n
        for pkt in s.encode():
            c.mux(pkt)


def _make_broken(kind: str, path: Path, footage: Footage, rng: random.Random, tmp: Path) -> None:
    """A broken file of `kind` (BROKEN) at `path`, cut from a short good video."""
    if kind == "zero_bytes":
        path.write_bytes(b"")
        return
    if kind == "not_a_video":
        path.write_text(f"notes of kitchen session {path.stem}, not a video\n" * 40)
        return
    if kind == "audio_only":
        _audio_only(path)
        return
    good = tmp / f"_good{path.suffix}"
    frames = [_resize(f, 854, 480, "plain") for f in footage.sequence(rng, 60, 30)]
    encode(good, frames, 30, "h264")
    data = good.read_bytes()
    if kind == "truncated":  # index (moov) at the end: cut before it
        path.write_bytes(data[: int(len(data) * rng.uniform(0.2, 0.6))])
    else:
        fast = tmp / f"_fast{path.suffix}"
        _faststart(good, fast)
        fdata = fast.read_bytes()
        mdat = fdata.find(b"mdat")
        cut = mdat + 4 if kind == "header_only" else len(fdata) // 2  # header only, or decodes half-way
        path.write_bytes(fdata[:cut])
        fast.unlink()
    good.unlink()


def _plan_entries(n: int, rng: random.Random, broken_rate: float, copies: int, min_s: float,
                  max_s: float) -> list[Entry]:
    entries: list[Entry] = []
    n_broken = int(round(n * broken_rate))
    n_good = n - n_broken - copies
    if n_good < 3:
        raise SystemExit(f"soak corpus: {n} videos leave {n_good} good ones; ask for more videos")
    for i in range(n_good):
        codec = rng.choices(list(CODEC_WEIGHTS), weights=list(CODEC_WEIGHTS.values()))[0]
        seconds = math.exp(rng.uniform(math.log(min_s), math.log(max_s)))
        height = rng.choice(HEIGHTS)
        if codec == "mjpeg":  # large files: keep them short and small, as such cameras record
            height, seconds = 480, min(seconds, 8.0)
        transform = rng.choices(("plain", "mirrored", "portrait"), weights=(0.7, 0.2, 0.1))[0]
        width = int(round(height * 16 / 9 / 2)) * 2
        if transform == "portrait":
            width, height = height, width
        fps = float(rng.choice(FPS)) if height <= 720 or transform == "portrait" else float(rng.choice(FPS[:5]))
        vfr = codec == "h264" and rng.random() < 0.1
        ext = CODECS[codec][1]
        entries.append(Entry(f"videos/v{i:04d}_{codec}_{min(width, height)}p{ext}", "good", "done",
                             round(seconds, 2), width, height, fps, codec, transform, vfr))
    for j in range(n_broken):
        kind = BROKEN[j % len(BROKEN)]
        entries.append(Entry(f"videos/broken{j:03d}_{kind}.mp4", "broken", "quarantined", broken=kind))
    goods = [e for e in entries if e.kind == "good"]
    late, growing = rng.sample([e for e in goods if e.seconds <= 20 and not e.vfr] or goods, 2)
    for e, what in ((late, "late"), (growing, "growing")):
        e.held = what
        e.file = e.file.replace("videos/", "held/")
    for k in range(copies):  # an exact copy under another name: the same content id, built once
        orig = rng.choice([e for e in goods if e.held is None])
        entries.append(Entry(f"videos/copy{k:03d}_of_{Path(orig.file).stem}{Path(orig.file).suffix}", "copy",
                             "done", same_as=orig.file))
    rng.shuffle(entries)
    return entries


def _write_entry(corpus: Path, e: Entry, footage: Footage, seed: int) -> Entry:
    """Write one good or broken file (copies come after their originals)."""
    from annotators.discovery import video_id

    rng = random.Random(f"{seed}:{e.file}")
    path = corpus / e.file
    path.parent.mkdir(parents=True, exist_ok=True)
    if e.kind == "broken":
        _make_broken(e.broken, path, footage, rng, path.parent)
    else:
        n = max(2, int(round(e.seconds * e.fps)))
        times = None
        if e.vfr:  # runs of frames at half and at the full rate
            times, t = [], 0.0
            for i in range(n):
                times.append(t)
                t += (2.0 if (i // 15) % 2 else 1.0) / e.fps
        src = footage.sequence(rng, n, e.fps)
        frames = [_resize(f, e.width, e.height, e.transform) for f in src]
        encode(path, frames, e.fps, e.codec, times)
        seconds = times[-1] + 1.0 / e.fps if times else n / e.fps
        e.seconds = round(seconds, 3)
        e.timeline_frames = int(math.floor(seconds * TIMELINE_FPS))
    e.video_id = video_id(path)
    return e


def make_corpus(out: Path, videos: int = 300, seed: int = 0, sources: list[Path] | None = None,
                broken_rate: float = 0.08, copies: int = 4, min_s: float = 1.0, max_s: float = 60.0,
                jobs: int = 1, progress: bool = True) -> list[Entry]:
    """Write the corpus and CORPUS/manifest.json; returns its entries."""
    from concurrent.futures import ProcessPoolExecutor

    files = sorted(p for d in (sources or [SHARED_VIDEOS]) for p in Path(d).iterdir()
                   if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi"))
    rng = random.Random(seed)
    entries = _plan_entries(videos, rng, broken_rate, copies, min_s, max_s)
    out.mkdir(parents=True, exist_ok=True)
    todo = [e for e in entries if e.kind != "copy"]
    done: dict[str, Entry] = {}
    t0 = time.monotonic()
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(files,)) as ex:
            for k, e in enumerate(ex.map(_write_in_worker, [(str(out), e, seed) for e in todo])):
                done[e.file] = e
                _tick(progress, k + 1, len(todo), t0)
    else:
        footage = Footage(files)
        for k, e in enumerate(todo):
            done[e.file] = _write_entry(out, e, footage, seed)
            _tick(progress, k + 1, len(todo), t0)
    for e in entries:
        if e.kind == "copy":
            orig = done[e.same_as]
            shutil.copyfile(out / orig.file, out / e.file)
            e.video_id, e.seconds, e.timeline_frames = orig.video_id, orig.seconds, orig.timeline_frames
    final = [done.get(e.file, e) for e in entries]
    manifest = {"seed": seed, "sources": [str(f) for f in files], "videos": [asdict(e) for e in final]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return final


_FOOTAGE: Footage | None = None


def _init_worker(files):
    global _FOOTAGE
    _FOOTAGE = Footage(files)


def _write_in_worker(args):
    out, e, seed = args
    return _write_entry(Path(out), e, _FOOTAGE, seed)


def _tick(progress: bool, k: int, n: int, t0: float) -> None:
    if progress and (k == n or k % 10 == 0):
        print(f"corpus: {k}/{n} files ({time.monotonic() - t0:.0f} s)", file=sys.stderr, flush=True)


def load_manifest(corpus: Path) -> list[Entry]:
    data = json.loads((Path(corpus) / "manifest.json").read_text())
    return [Entry(**e) for e in data["videos"]]


# ----------------------------------------------------------------------------------------------- monitor
class Monitor:
    """Samples a build's process tree, output folder and ledger every `period_s` into a JSONL file."""

    def __init__(self, out: Path, samples: Path, frames_by_name: dict[str, int], period_s: float = 2.0):
        self.out, self.path, self.frames_by_name, self.period = Path(out), Path(samples), frames_by_name, period_s
        self.proc: subprocess.Popen | None = None
        self.run = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a")

    def start(self) -> "Monitor":
        self._thread.start()
        return self

    def attach(self, proc: subprocess.Popen | None, run: int) -> None:
        self.proc, self.run = proc, run

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._fh.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self._fh.write(json.dumps(self.sample()) + "\n")
                self._fh.flush()
            except Exception as e:  # a sample must never stop the soak
                print(f"soak monitor: {type(e).__name__}: {e}", file=sys.stderr)

    def sample(self) -> dict:
        proc = self.proc
        alive = proc is not None and proc.poll() is None
        finished, frames = ledger_progress(self.out, self.frames_by_name)
        shards = list((self.out / "shards").glob("part-*.parquet")) if (self.out / "shards").exists() else []
        ledger_bytes = sum(p.stat().st_size for p in self.out.glob("ledger.sqlite*") if p.exists())
        return {"t": round(time.monotonic() - self.t0, 2), "run": self.run, "alive": alive,
                "procs": process_tree(proc.pid) if alive else [], "finished": finished, "frames": frames,
                "shards": len(shards), "shard_bytes": sum(_size(p) for p in shards), "ledger_bytes": ledger_bytes}


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except FileNotFoundError:
        return 0


def process_tree(pid: int) -> list[dict]:
    """RSS and open file descriptors of a process and its descendants, each tagged with its role."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in procs:
        try:
            cmd = " ".join(p.cmdline())
            role = ("server" if "temp_server" in cmd or "uvicorn" in cmd else
                    "ray-worker" if "ray::" in cmd or "default_worker.py" in cmd else
                    "ray" if "ray" in cmd else "build" if p.pid == pid else "other")
            out.append({"pid": p.pid, "role": role, "rss": p.memory_info().rss, "fds": p.num_fds()})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def ledger_progress(out: Path, frames_by_name: dict[str, int]) -> tuple[int, int]:
    """(videos finished, their 15 fps timeline frames) from the ledger, read-only."""
    path = Path(out) / "ledger.sqlite"
    if not path.exists():
        return 0, 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = db.execute("SELECT source_uri FROM videos WHERE state IN ('done', 'quarantined')").fetchall()
        finally:
            db.close()
    except sqlite3.Error:  # e.g. a full disk, where even a reader cannot map the WAL index: the last answer
        return _LAST_PROGRESS.get(str(path), (0, 0))
    _LAST_PROGRESS[str(path)] = out = (len(rows), sum(frames_by_name.get(Path(r[0]).name, 0) for r in rows))
    return out


_LAST_PROGRESS: dict[str, tuple[int, int]] = {}


# ------------------------------------------------------------------------------------------------ faults
GROWING_PREFIX = "0-"
@dataclass
class Fault:
    kind: str
    run: int
    at_finished: int | None = None
    detail: str = ""
    ok: bool = True  # the build behaved as it must


@dataclass
class Schedule:
    """When each fault fires, as a number of finished videos (the first time it is reached)."""

    kills: list[tuple[int, float]] = field(default_factory=list)  # (finished, extra delay s)
    disk_full: int | None = None
    late: int | None = None
    second_build: int | None = None
    growing: bool = False
    corrupt_shard: bool = False


def make_schedule(rng: random.Random, n: int, kills: int, disk_full: bool, late: bool, second: bool,
                  growing: bool, corrupt: bool) -> Schedule:
    # kills in the first 80 %: the last batches may finish many videos at once
    span = range(1, max(2, int(n * 0.8)))
    points = sorted(rng.sample(span, min(kills, len(span)))) if kills else []
    s = Schedule(kills=[(p, round(rng.uniform(0.0, 1.0), 3)) for p in points], growing=growing,
                 corrupt_shard=corrupt)
    if disk_full:
        s.disk_full = rng.randrange(max(1, n // 3), max(2, 2 * n // 3))
    if late:
        s.late = rng.randrange(1, max(2, n // 2))
    if second:
        s.second_build = rng.randrange(1, max(2, n - 1))
    return s


class Tmpfs:
    """A small tmpfs for the output folder (needs root), to fill on purpose."""

    def __init__(self, path: Path, size_mb: int):
        self.path, self.size_mb = Path(path), size_mb
        self.ballast = self.path / ".soak-ballast"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "tmpfs", str(self.path)],
                           capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"soak --disk-full: cannot mount a tmpfs at {self.path} ({r.stderr.strip()}); "
                             "it needs root, or run without --disk-full")

    def fill(self, leave_bytes: int) -> int:
        """Fill the filesystem up to `leave_bytes` free; returns the ballast's size."""
        free = shutil.disk_usage(self.path).free
        n = max(0, free - leave_bytes)
        with open(self.ballast, "wb") as f:
            chunk = b"\0" * (1 << 20)
            left = n
            try:
                while left > 0:
                    left -= f.write(chunk[: min(len(chunk), left)])
            except OSError:
                pass
        return n

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


def corrupt_a_shard(out: Path, rng: random.Random) -> Path | None:
    shards = sorted((out / "shards").glob("part-*.parquet"))
    if not shards:
        return None
    p = rng.choice(shards)
    data = bytearray(p.read_bytes())
    at = len(data) // 2
    for k in range(at, min(len(data) - 8, at + 64)):
        data[k] ^= 0xFF
    p.write_bytes(bytes(data))
    return p


def slow_copy(src: Path, dst: Path, seconds: float, started: threading.Event) -> threading.Thread:
    """Copy src to dst in 40 pieces over `seconds` (a file still being written); `started` is set once
    the first pieces are on disk."""
    def run():
        data = src.read_bytes()
        steps = 40
        with open(dst, "wb") as f:
            for k in range(steps):
                f.write(data[k * len(data) // steps:(k + 1) * len(data) // steps])
                f.flush()
                if k == 3:
                    started.set()
                time.sleep(seconds / steps)
        started.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------------------------------------- soak
@dataclass
class SoakOptions:
    kills: int = 0
    disk_full: bool = False
    late: bool = False
    growing: bool = False
    second_build: bool = False
    corrupt_shard: bool = False
    kill_ray_workers: bool = False
    workers: int = 2
    batch_size: int = 4
    task_runner: str = "thread"
    retries: int = 1
    settings: dict = field(default_factory=dict)  # --set KEY=VALUE for every build
    disk_mb: int = 0  # tmpfs size (0: from the corpus size)
    disk_leave_kb: int = 64
    growing_s: float = 40.0
    run_timeout_s: float = 4 * 3600
    max_runs: int = 0  # 0: kills + 6
    sample_s: float = 2.0
    seed: int = 0


def build_command(inputs: list[Path], out: Path, o: SoakOptions, retry_failed: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "clutch_cli", "build", *map(str, inputs), "--out", str(out), "--no-progress",
           "--workers", str(o.workers), "--batch-size", str(o.batch_size), "--retries", str(o.retries),
           "--retry-delay-s", "1", "--task-runner", o.task_runner]
    for k, v in o.settings.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd + (["--retry-failed"] if retry_failed else [])


def _env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")


class FaultyRun:
    """The build run again and again on WORK/inputs -> WORK/faulty with the scheduled faults."""

    def __init__(self, corpus: Path, work: Path, entries: list[Entry], o: SoakOptions):
        self.corpus, self.work, self.entries, self.o = Path(corpus), Path(work), entries, o
        self.inputs, self.out, self.logs = self.work / "inputs", self.work / "faulty", self.work / "logs"
        self.rng = random.Random(o.seed)
        self.faults: list[Fault] = []
        n = len({e.video_id for e in entries})
        self.schedule = make_schedule(self.rng, n, o.kills, o.disk_full, o.late, o.second_build, o.growing,
                                      o.corrupt_shard)
        self.tmpfs: Tmpfs | None = None
        self.frames = {Path(e.file).name: e.timeline_frames for e in entries}

    def prepare(self) -> None:
        if self.work.exists():
            for sub in ("inputs", "logs"):
                shutil.rmtree(self.work / sub, ignore_errors=True)
        self.inputs.mkdir(parents=True)
        self.logs.mkdir(parents=True)
        held_back = {w for w, on in (("late", self.o.late), ("growing", self.o.growing)) if on}
        for e in self.entries:  # hard links: the same bytes, no copy (late/growing come later, when asked)
            if e.held not in held_back:
                os.link(self.corpus / e.file, self.inputs / Path(e.file).name)
        if os.path.ismount(self.out):
            Tmpfs(self.out, 0).umount()
        if self.o.disk_full:
            size = self.o.disk_mb or max(64, int(_corpus_clip_mb(self.entries) * 3) + 32)
            self.tmpfs = Tmpfs(self.out, size)
            self.tmpfs.mount()
        else:
            shutil.rmtree(self.out, ignore_errors=True)

    def held(self, what: str) -> Entry | None:
        return next((e for e in self.entries if e.held == what), None)

    def all_finished(self) -> bool:
        from storage.ledger import Ledger

        if not (self.out / "ledger.sqlite").exists():
            return False
        states = {r.video_id: r.state for r in Ledger(self.out).by_state()}
        return all(states.get(e.video_id) in ("done", "quarantined", "failed") for e in self.entries)

    def run(self, monitor: Monitor) -> None:
        max_runs = self.o.max_runs or self.o.kills + 6
        retry_failed = False
        for k in range(max_runs):
            growing = None
            if k == 0 and self.schedule.growing:
                growing = self._start_growing()
            rc, log = self._one_run(k, monitor, retry_failed)
            retry_failed = False
            if growing is not None:
                growing.join()
            if any(f.kind == "disk-full" and f.run == k for f in self.faults):
                self.tmpfs.free()
                retry_failed = True  # what a user does after freeing the space
            if rc in (-signal.SIGKILL, 137) and self.schedule.corrupt_shard and not self._done("corrupt-shard"):
                self._corrupt(k)
            if rc in (0, 3) and self.all_finished():
                if self.schedule.late is not None:  # not reached in a run: it appears early in the next one
                    self.schedule.late = 0
                    continue
                if self.schedule.second_build is not None and k + 1 < max_runs:  # deferred: fire in one more
                    self.schedule.second_build = 0
                    continue
                break
        for f in self.faults:  # the fault counts only if a build met the file while it was being written
            if f.kind == "growing" and "saw it while it was written" not in f.detail:
                f.ok, f.detail = False, f.detail + "; no run met it while it was written"
        self._final_checks(monitor)

    def _done(self, kind: str) -> bool:
        return any(f.kind == kind for f in self.faults)

    def _start_growing(self) -> threading.Thread:
        e = self.held("growing")
        started = threading.Event()
        name = GROWING_PREFIX + Path(e.file).name  # first in the build's order: reached while still written
        self.frames[name] = e.timeline_frames
        t = slow_copy(self.corpus / e.file, self.inputs / name, self.o.growing_s, started)
        started.wait(30)
        self.faults.append(Fault("growing", 0, None, f"{Path(e.file).name} copied in over {self.o.growing_s:.0f} s"))
        return t

    def _corrupt(self, k: int) -> None:
        p = corrupt_a_shard(self.out, self.rng)
        if p is None:
            return
        r = subprocess.run([sys.executable, "-m", "clutch_cli", "verify", str(self.out)], capture_output=True,
                           text=True, env=_env())
        ok = r.returncode == 1 and p.name in r.stdout
        self.faults.append(Fault("corrupt-shard", k, None, f"{p.name} flipped; clutch verify exit {r.returncode}"
                                 + ("" if ok else f": {r.stdout[-400:]}{r.stderr[-400:]}"), ok))

    def _one_run(self, k: int, monitor: Monitor, retry_failed: bool) -> tuple[int, str]:
        log_path = self.logs / f"run-{k:02d}.log"
        cmd = build_command([self.inputs], self.out, self.o, retry_failed)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            monitor.attach(proc, k)
            t0 = self._run_t0 = time.monotonic()
            self._run_finished0 = ledger_progress(self.out, self.frames)[0]
            pending_kill: float | None = None
            while proc.poll() is None:
                time.sleep(0.25)
                finished, _ = ledger_progress(self.out, self.frames)
                pending_kill = self._fire(k, proc, finished, pending_kill)
                if time.monotonic() - t0 > self.o.run_timeout_s:
                    self._kill(proc)
                    self.faults.append(Fault("hang", k, finished, f"no exit after {self.o.run_timeout_s:.0f} s",
                                             ok=False))
            monitor.attach(None, k)
        rc = proc.returncode
        _reap_group(proc)
        text = log_path.read_text(errors="replace")
        print(f"soak: run {k}: exit {rc} after {time.monotonic() - t0:.0f} s; "
              f"finished {ledger_progress(self.out, self.frames)[0]}", file=sys.stderr, flush=True)
        if "still being written" in text or "changed since the build found it" in text:
            for f in self.faults:
                if f.kind == "growing":
                    f.detail += f"; run {k} saw it while it was written"
        return rc, text

    def _fire(self, k: int, proc: subprocess.Popen, finished: int, pending_kill: float | None) -> float | None:
        s = self.schedule
        now = time.monotonic()
        if pending_kill is not None and now >= pending_kill:
            self._kill_one(k, proc, finished)
            return None
        if pending_kill is None and s.kills and finished >= s.kills[0][0]:
            at, share = s.kills.pop(0)  # a random moment within about one video's time from here
            per_video = (now - self._run_t0) / max(1, finished - self._run_finished0)
            return now + share * min(per_video, 10.0)
        if s.disk_full is not None and finished >= s.disk_full:
            n = self.tmpfs.fill(self.o.disk_leave_kb * 1024)
            self.faults.append(Fault("disk-full", k, finished, f"filled with {n / 1e6:.0f} MB, "
                                     f"{self.o.disk_leave_kb} kB left"))
            s.disk_full = None
        if s.late is not None and finished >= s.late:
            e = self.held("late")
            shutil.copyfile(self.corpus / e.file, self.inputs / Path(e.file).name)
            self.faults.append(Fault("late", k, finished, f"{Path(e.file).name} appeared"))
            s.late = None
        disk_full_now = any(f.kind == "disk-full" and f.run == k for f in self.faults)
        if s.second_build is not None and finished >= s.second_build and not disk_full_now:
            # (not while this run's disk is full: a build that ends on it frees the lock before its process
            # exits, and the second one would rightly report the full disk instead of "busy")
            s.second_build = None
            r = subprocess.run(build_command([self.inputs], self.out, self.o), capture_output=True, text=True,
                               env=_env(), timeout=300)
            busy = proc.poll() is None
            ok = r.returncode == 2 and "another build is running" in r.stderr
            if busy or ok:  # if the first one ended meanwhile, the second one may rightly have run
                self.faults.append(Fault("second-build", k, finished, f"exit {r.returncode}: "
                                         f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}", ok))
        return pending_kill

    def _kill_one(self, k: int, proc: subprocess.Popen, finished: int) -> None:
        if self.o.kill_ray_workers:
            workers = [p for p in process_tree(proc.pid) if p["role"] == "ray-worker"]
            if workers:
                target = self.rng.choice(workers)["pid"]
                os.kill(target, signal.SIGKILL)
                self.faults.append(Fault("kill", k, finished, f"SIGKILL of Ray worker {target}"))
                return
        self._kill(proc)
        self.faults.append(Fault("kill", k, finished, "SIGKILL of the build"))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def _final_checks(self, monitor: Monitor) -> None:
        k = max((f.run for f in self.faults), default=0) + 100
        rc, text = self._one_run(k, monitor, False)  # the same command once more: nothing left to do
        self.final_rebuild = {"exit": rc, "built_nothing": "this run built 0," in text}
        r = subprocess.run([sys.executable, "-m", "clutch_cli", "verify", str(self.out), "--deep"],
                           capture_output=True, text=True, env=_env())
        self.verify = {"exit": r.returncode, "output": r.stdout.strip().splitlines()[-1:] + r.stderr.strip()
                       .splitlines()[-3:]}


def _reap_group(proc: subprocess.Popen) -> None:
    """Whatever the killed build left (its server child dies with it; Ray's processes may not)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _corpus_clip_mb(entries: list[Entry]) -> float:
    """About the size of the shards a build writes (measured here: ~1.2 MB per minute of video)."""
    return sum(e.seconds for e in entries if e.kind == "good") / 60 * 1.2


def clean_build(entries: list[Entry], corpus: Path, out: Path, o: SoakOptions, monitor: Monitor,
                logs: Path) -> float:
    """The yardstick: one uninterrupted build of the whole corpus; returns its wall time."""
    shutil.rmtree(out, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    cmd = build_command([corpus / "videos", corpus / "held"], out, o)
    t0 = time.monotonic()
    with open(logs / "clean.log", "w") as log:
        proc = subprocess.Popen(cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        monitor.attach(proc, 0)
        proc.wait()
        monitor.attach(None, 0)
    _reap_group(proc)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"soak: the clean build failed (exit {proc.returncode}); see {logs / 'clean.log'}")
    return time.monotonic() - t0


# ------------------------------------------------------------------------------------------------ verdict
def _rows(dataset: Path) -> tuple[dict[str, dict], int]:
    """Clip rows by clip_id (created_at and source_uri dropped) and how many clip rows were stored twice."""
    import pyarrow.parquet as pq

    from storage.schema import table_to_rows

    rows, dup = {}, 0
    for shard in sorted((Path(dataset) / "shards").glob("part-*.parquet")):
        for r in table_to_rows(pq.read_table(shard)):
            r.pop("created_at", None)
            r.pop("source_uri", None)
            r["_shard"] = shard.name
            if r["clip_id"] in rows:
                dup += 1
            rows[r["clip_id"]] = r
    return rows, dup


def _differ(a: dict, b: dict) -> list[str]:
    """The fields in which two clip rows differ (arrays compared exactly, NaN equal to NaN)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if k == "_shard":
            continue
        v, w = a.get(k), b.get(k)
        if isinstance(v, np.ndarray) or isinstance(w, np.ndarray):
            if not (isinstance(v, np.ndarray) and isinstance(w, np.ndarray) and v.shape == w.shape
                    and np.array_equal(v, w, equal_nan=True)):
                out.append(k)
        elif isinstance(v, dict) and isinstance(w, dict):
            out += [f"{k}.{f}" for f in sorted(set(v) | set(w)) if v.get(f) != w.get(f)]
        elif v != w:
            out.append(k)
    return out


def _same(a: dict, b: dict) -> bool:
    return not _differ(a, b)


def verdict(entries: list[Entry], faulty: Path, clean: Path) -> dict:
    """Every good video built once and equal to the clean build, or in the ledger with a reason; every broken
    one quarantined with its reason; no clip twice."""
    from storage.ledger import Ledger

    rows, dup = _rows(faulty)
    ref, _ = _rows(clean)
    ledger = {r.video_id: r for r in Ledger(faulty).by_state()}
    clips_of: dict[str, list[str]] = {}
    for cid, r in rows.items():
        clips_of.setdefault(r["video_id"], []).append(cid)
    ref_of: dict[str, list[str]] = {}
    for cid, r in ref.items():
        ref_of.setdefault(r["video_id"], []).append(cid)
    lost, mismatched, misjudged, with_reason = [], [], [], []
    for vid in sorted({e.video_id for e in entries}):
        e = next(x for x in entries if x.video_id == vid)
        rec = ledger.get(vid)
        names = {Path(x.file).name for x in entries if x.video_id == vid}  # equal files share one id
        if e.expect == "quarantined":
            if rec is None or rec.state != "quarantined" or not rec.error or not any(n in rec.error for n in names):
                misjudged.append(f"{e.file}: {rec.state if rec else 'not in the ledger'} "
                                 f"({rec.error if rec else ''})")
            continue
        if rec is None or rec.state not in ("done", "failed", "quarantined"):
            lost.append(f"{e.file}: {rec.state if rec else 'not in the ledger'}")
            continue
        if rec.state != "done":
            with_reason.append(f"{e.file}: {rec.state}: {rec.error}")
        mine, theirs = sorted(clips_of.get(vid, [])), sorted(ref_of.get(vid, []))
        shards = {rows[c]["_shard"] for c in mine}
        if len(shards) > 1:
            dup += len(mine)
        if rec.state == "done" and (rec.num_clips or 0) != len(mine):
            mismatched.append(f"{e.file}: ledger says {rec.num_clips} clips, the shards hold {len(mine)}")
        elif mine != theirs or not all(_same(rows[c], ref[c]) for c in mine):
            fields = sorted({f for c in mine for f in _differ(rows[c], ref[c])}) if mine == theirs else []
            mismatched.append(f"{e.file}: {len(mine)} clips, the clean build {len(theirs)}"
                              + (f" (differ in {', '.join(fields)})" if fields else ""))
    stray = sorted(set(clips_of) - {e.video_id for e in entries})
    # ledger rows of no manifest video (a partial copy's id, say) must not linger as work to do
    stale = sorted(f"{r.video_id} ({r.source_uri}): {r.state}" for v, r in ledger.items()
                   if v not in {e.video_id for e in entries})
    return {"videos": len({e.video_id for e in entries}), "files": len(entries),
            "good": sum(e.kind == "good" for e in entries), "broken": sum(e.kind == "broken" for e in entries),
            "copies": sum(e.kind == "copy" for e in entries), "clips": len(rows), "clean_clips": len(ref),
            "lost": lost, "duplicated": dup, "mismatched": mismatched, "misjudged": misjudged,
            "good_with_reason": with_reason, "stray_videos": stray, "stale_ledger_rows": stale}


# ------------------------------------------------------------------------------------------------ metrics
def load_samples(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def throughput_windows(samples: list[dict], window_s: float) -> list[dict]:
    """Timeline frames per second of build time (the build process alive) in windows of `window_s` wall s."""
    out, t_prev, f_prev = [], None, 0
    acc: dict[int, list[float]] = {}
    for s in samples:
        if t_prev is not None:
            w = int(s["t"] // window_s)
            a = acc.setdefault(w, [0.0, 0.0])
            if s["alive"]:
                a[0] += s["t"] - t_prev
            a[1] += max(0, s["frames"] - f_prev)
        t_prev, f_prev = s["t"], s["frames"]
    for w in sorted(acc):
        alive, frames = acc[w]
        out.append({"window": w, "start_s": w * window_s, "alive_s": round(alive, 1), "frames": int(frames),
                    "frames_per_s": round(frames / alive, 2) if alive > 0 else None})
    return out


def rss_by_progress(samples: list[dict], role: str = "build") -> list[tuple[int, int]]:
    """(videos finished, peak RSS of the `role` processes at that count) along the run."""
    peak: dict[int, int] = {}
    for s in samples:
        rss = max((p["rss"] for p in s["procs"] if p["role"] == role), default=0)
        if rss:
            peak[s["finished"]] = max(peak.get(s["finished"], 0), rss)
    return sorted(peak.items())


def flatness(samples: list[dict], window_s: float, from_video: int = 50) -> dict:
    """The two figures the soak is judged by: last vs first window's frames/s, and peak worker RSS from
    video `from_video` to the end (thread runner: the build process; Ray: its workers)."""
    wins = [w for w in throughput_windows(samples, window_s) if w["frames_per_s"] and w["alive_s"] > window_s / 2]
    role = "ray-worker" if any(p["role"] == "ray-worker" for s in samples for p in s["procs"]) else "build"
    rss = rss_by_progress(samples, role)
    n_end = rss[-1][0] if rss else 0
    near = [r for v, r in rss if from_video <= v < from_video + max(5, n_end // 20)]
    end = [r for v, r in rss if v >= n_end - max(5, n_end // 20)]
    out = {"windows": len(wins), "role": role, "videos_finished": n_end}
    if len(wins) >= 2:
        out["first_frames_per_s"], out["last_frames_per_s"] = wins[0]["frames_per_s"], wins[-1]["frames_per_s"]
        out["last_over_first"] = round(wins[-1]["frames_per_s"] / wins[0]["frames_per_s"], 3)
    if near and end:
        out["rss_mb_at_video_%d" % from_video] = round(max(near) / 2**20, 1)
        out["rss_mb_at_end"] = round(max(end) / 2**20, 1)
        out["rss_end_over_start"] = round(max(end) / max(near), 3)
    peak_fds = [sum(p["fds"] for p in s["procs"]) for s in samples if s["procs"]]
    if peak_fds:
        out["fds_first"], out["fds_last"], out["fds_max"] = peak_fds[0], peak_fds[-1], max(peak_fds)
    return out


def plot(samples_by_name: dict[str, list[dict]], path: Path, window_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(16, 8.5))
    for name, samples in samples_by_name.items():
        if not samples:
            continue
        t = np.array([s["t"] for s in samples]) / 60
        wins = throughput_windows(samples, window_s)
        ax[0, 0].step([w["start_s"] / 60 for w in wins], [w["frames_per_s"] or 0 for w in wins], where="post",
                      label=name)
        for role in sorted({p["role"] for s in samples for p in s["procs"]}):
            ax[0, 1].plot(t, [max((p["rss"] for p in s["procs"] if p["role"] == role), default=np.nan) / 2**20
                              for s in samples], label=f"{name}: {role}", lw=1)
        ax[0, 2].plot(t, [sum(p["fds"] for p in s["procs"]) if s["procs"] else np.nan for s in samples],
                      label=name, lw=1)
        ax[1, 0].plot(t, [s["shards"] for s in samples], label=f"{name}: shards")
        ax[1, 1].plot(t, [s["shard_bytes"] / 1e6 for s in samples], label=name)
        ax[1, 2].plot(t, [s["ledger_bytes"] / 1e3 for s in samples], label=name)
    titles = [f"timeline frames/s per {window_s / 60:.0f}-min window", "peak RSS per process (MB)",
              "open file descriptors (build tree)", "shards", "shard bytes (MB)", "ledger file size (kB)"]
    for a, title in zip(ax.flat, titles):
        a.set_title(title)
        a.set_xlabel("minutes")
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ command
def soak(corpus: Path, work: Path, o: SoakOptions, reference: Path | None = None, window_s: float = 600.0,
         progress: bool = True) -> dict:
    """The whole soak (module docstring); returns the report that WORK/verdict.json holds."""
    corpus, work = Path(corpus).resolve(), Path(work).resolve()
    entries = load_manifest(corpus)
    run = FaultyRun(corpus, work, entries, o)
    run.prepare()
    t0 = time.monotonic()
    try:
        mon = Monitor(run.out, work / "samples-faulty.jsonl", run.frames, o.sample_s).start()
        try:
            run.run(mon)
        finally:
            mon.close()
        faulty_s = time.monotonic() - t0
        clean_s = None
        if reference is None:
            reference = work / "clean"
            mon = Monitor(reference, work / "samples-clean.jsonl", run.frames, o.sample_s).start()
            try:
                clean_s = clean_build(entries, corpus, reference, o, mon, run.logs)
            finally:
                mon.close()
        v = verdict(entries, run.out, Path(reference))
        if run.tmpfs is not None:  # kept for a look afterwards: the tmpfs goes
            shutil.rmtree(work / "faulty-kept", ignore_errors=True)
            shutil.copytree(run.out, work / "faulty-kept", ignore=shutil.ignore_patterns(".soak-ballast"))
    finally:
        if run.tmpfs is not None:
            run.tmpfs.umount()  # the verdict is taken: the faulty build's tmpfs goes
    clean_samples = load_samples(work / "samples-clean.jsonl")
    faulty_samples = load_samples(work / "samples-faulty.jsonl")
    report = {"verdict": v, "faults": [asdict(f) for f in run.faults], "final_rebuild": run.final_rebuild,
              "verify_deep": run.verify, "faulty_wall_s": round(faulty_s, 1),
              "clean_wall_s": round(clean_s, 1) if clean_s else None, "options": asdict(o),
              "clean": flatness(clean_samples, window_s), "faulty": flatness(faulty_samples, window_s),
              "clean_windows": throughput_windows(clean_samples, window_s),
              "frames": sum(e.timeline_frames for e in entries if e.kind == "good"), "load_avg": os.getloadavg()}
    report["ok"] = ok(report, o)
    (work / "verdict.json").write_text(json.dumps(report, indent=1, default=str))
    (work / "faults.json").write_text(json.dumps(report["faults"], indent=1))
    plot({"clean": clean_samples, "faulty": faulty_samples}, work / "soak.png", window_s)
    return report


def expected_faults(o: SoakOptions) -> dict[str, int]:
    return {k: n for k, n in (("kill", o.kills), ("disk-full", int(o.disk_full)), ("late", int(o.late)),
                              ("growing", int(o.growing)), ("second-build", int(o.second_build)),
                              ("corrupt-shard", int(o.corrupt_shard))) if n}


def ok(report: dict, o: SoakOptions) -> bool:
    v = report["verdict"]
    injected = {k: sum(f["kind"] == k for f in report["faults"]) for k in expected_faults(o)}
    return (not v["lost"] and not v["duplicated"] and not v["mismatched"] and not v["misjudged"]
            and not v["stray_videos"] and not v["stale_ledger_rows"] and report["verify_deep"]["exit"] == 0
            and report["final_rebuild"]["built_nothing"] and all(f["ok"] for f in report["faults"])
            and injected == expected_faults(o))


def summary_line(report: dict) -> str:
    v = report["verdict"]
    kinds: dict[str, int] = {}
    for f in report["faults"]:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    bad = [f["kind"] for f in report["faults"] if not f["ok"]]
    return (f"soak: videos {v['videos']} ({v['files']} files: {v['good']} good, {v['broken']} broken, "
            f"{v['copies']} copies), clips {v['clips']}, faults injected {sum(kinds.values())} "
            f"({', '.join(f'{k} {n}' for k, n in kinds.items()) or 'none'}"
            f"{'; misbehaved: ' + ', '.join(bad) if bad else ''}), lost {len(v['lost'])}, "
            f"duplicated {v['duplicated']}, mismatched {len(v['mismatched'])}, misjudged {len(v['misjudged'])}, "
            f"verify {'clean' if report['verify_deep']['exit'] == 0 else 'NOT clean'}"
            f"{'' if report['ok'] else ' -- FAILED'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus", help="make the soak corpus and its manifest")
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--videos", type=int, default=300)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--sources", nargs="*", type=Path, default=None, help="folders of real videos (default: "
                   "../shared/data/videos)")
    c.add_argument("--broken-rate", type=float, default=0.08)
    c.add_argument("--copies", type=int, default=4)
    c.add_argument("--min-s", type=float, default=1.0)
    c.add_argument("--max-s", type=float, default=60.0)
    c.add_argument("--jobs", type=int, default=2, help="encoder processes")
    r = sub.add_parser("run", help="run the soak on a corpus")
    r.add_argument("--corpus", required=True, type=Path)
    r.add_argument("--work", required=True, type=Path)
    r.add_argument("--reference", type=Path, default=None, help="a clean build of the same corpus, same settings "
                   "(default: build one after the faulty run)")
    r.add_argument("--window-s", type=float, default=600.0)
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="annotator setting, every build")
    for f in SoakOptions.__dataclass_fields__.values():
        if f.name == "settings":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            r.add_argument(flag, action="store_true")
        else:
            r.add_argument(flag, type=type(f.default), default=f.default)
    a = ap.parse_args(argv)
    if a.cmd == "corpus":
        entries = make_corpus(a.out, a.videos, a.seed, a.sources, a.broken_rate, a.copies, a.min_s, a.max_s, a.jobs)
        print(f"{a.out}/manifest.json: {len(entries)} files, "
              f"{sum(e.seconds for e in entries if e.kind == 'good') / 60:.1f} min of good video")
        return 0
    o = SoakOptions(**{k: getattr(a, k) for k in SoakOptions.__dataclass_fields__ if k != "settings"},
                    settings=dict(kv.split("=", 1) for kv in a.set))
    report = soak(a.corpus, a.work, o, a.reference, a.window_s)
    print(json.dumps({k: report[k] for k in ("clean", "faulty", "faulty_wall_s", "clean_wall_s")}, indent=1))
    for k in ("lost", "mismatched", "misjudged", "good_with_reason", "stale_ledger_rows"):
        for line in report["verdict"][k][:20]:
            print(f"{k}: {line}")
    print(summary_line(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
