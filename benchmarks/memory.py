"""Peak RSS of `clutch build` on long videos made by concatenating the sample.

Makes a 2-minute and a 20-minute video (benchmarks/make_long_video.py: the sample's forward,
reversed, mirrored and zoomed segments in turn, re-encoded at 640x360 H.264 to keep disk and
encode time small; the decoder works at <= 480p either way), builds each into a fresh dataset with `/usr/bin/time -v`
(or resource.getrusage of the children when that is missing) and prints a Markdown table.
The goal: under 3 GB and the same for both lengths (decoding and tracking stream in chunks).

    python benchmarks/memory.py [--minutes 2,20] [--keep DIR]

Run it alone; it takes about as long as tracking 22 minutes of video.
"""
from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "videos" / "ego_kitchen_4s.mp4"
CLUTCH = str(Path(sys.executable).with_name("clutch"))


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak resident set size of `cmd` (MB), by /usr/bin/time -v when present."""
    if Path("/usr/bin/time").exists():
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        if r.returncode not in (0, 3):
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024  # the largest child so far: run this script once per length to be exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", default="2,20")
    ap.add_argument("--video", default=str(SAMPLE))
    ap.add_argument("--keep", help="make the videos here and keep them (default: a temporary folder)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmarks.make_long_video import make_long_video
    from benchmarks.shift import cpu_facts

    work = Path(args.keep or tempfile.mkdtemp(prefix="memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for m in (float(x) for x in args.minutes.split(",")):
            v = work / f"long_{m:g}min.mp4"
            if not v.exists():
                make_long_video(Path(args.video), v, m * 60, (640, 360))
            out = work / f"ds_{m:g}min"
            shutil.rmtree(out, ignore_errors=True)
            rows.append((m, peak_rss_mb([CLUTCH, "build", str(v), "--out", str(out), "--no-progress"])))
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    f = cpu_facts()
    print(f"\nCPU: {f['cpu']}; native bf16: {f['native_bf16']}; load average (1 min): {f['load_avg_1min']:.2f}; "
          f"videos: {Path(args.video).name} in segments (benchmarks/make_long_video.py), 640x360 H.264 30 fps\n")
    print("| video | peak RSS of `clutch build` (MB) |\n|---|---|")
    for m, mb in rows:
        print(f"| {m:g} min | {mb:.0f} |")


if __name__ == "__main__":
    main()
