"""The `tiny` preset's wall time: all default train-clutch stages on `clutch synth --clips 1500`.

Runs `clutch train DATASET --out RUN --preset tiny` (every default stage) in a child process
for each setting of torch threads x OMP_WAIT_POLICY, once on quiet cores and once beside one
competing CPU-bound process (by default a second `clutch train` of the same settings: two
researchers on one machine), and prints a Markdown table: wall time, seconds per stage, and
the slow-down against the quiet figure of the same setting. With --compare-vqvae it also
trains the VQ-VAE baseline quietly and prints both tokenizers' val MPJPE (SHIFT must win).

Run it alone on the machine (state the load average it prints), e.g.
    python benchmarks/tiny_preset.py --work /tmp/tiny --threads 1,2 --wait-policy ACTIVE,PASSIVE --compare-vqvae
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STAGE_DIRS = ("shift", "pretrain", "refine", "instruct")  # tokenize writes into the dataset


# "unset": OpenMP's own default (libgomp spins a bounded while, then sleeps). torch is imported
# before clutch's main runs, so OpenMP has read its environment before clutch would set a policy.
UNSET_ENTRY = "import sys, torch; from clutch_cli import main; sys.exit(main(sys.argv[1:]))"


def clutch_argv(policy: str) -> list[str]:
    return [sys.executable, "-c", UNSET_ENTRY] if policy == "unset" else [sys.executable, "-m", "clutch_cli"]


def clutch(*args: str, env: dict | None = None, policy: str = "", **kw) -> subprocess.Popen:
    return subprocess.Popen([*clutch_argv(policy), *args], env=env, **kw)


def env_for(threads: int, policy: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PREFECT_API_URL", "OMP_WAIT_POLICY")}
    env.update(OMP_NUM_THREADS=str(threads))
    if policy != "unset":
        env.update(OMP_WAIT_POLICY=policy)
    return env


def train(dataset: Path, run: Path, threads: int, policy: str, extra: tuple[str, ...] = ()) -> tuple[float, dict]:
    """(wall seconds, {stage: training seconds}) of one `clutch train` from scratch."""
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(dataset / "tokens", ignore_errors=True)
    t0 = time.perf_counter()
    p = clutch("train", str(dataset), "--out", str(run), "--preset", "tiny", "--threads", str(threads),
               "--no-progress", *extra, env=env_for(threads, policy), policy=policy, stdout=subprocess.DEVNULL,
               stderr=subprocess.PIPE, text=True)
    _, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode:
        raise RuntimeError(f"clutch train failed ({p.returncode}):\n{err[-3000:]}")
    stages = {}
    for s in STAGE_DIRS:
        m = run / s / "metrics.json"
        if m.exists():
            stages[s] = json.loads(m.read_text()).get("train_seconds_this_run")
    return wall, stages


def competitor(dataset: Path, work: Path, threads: int, policy: str, kind: str,
               extra: tuple[str, ...] = ()) -> subprocess.Popen:
    """One CPU-bound process that runs until killed."""
    if kind == "python":  # one busy core, no OpenMP
        return subprocess.Popen([sys.executable, "-c", "while True: pass"])
    import shlex

    entry = " ".join(map(shlex.quote, clutch_argv(policy)))
    loop = (f"while true; do rm -rf {work}/competitor; {entry} train {dataset}c "
            f"--out {work}/competitor --preset tiny --threads {threads} --no-progress {' '.join(extra)} "
            ">/dev/null 2>&1; done")
    return subprocess.Popen(["bash", "-c", loop], env=env_for(threads, policy), start_new_session=True)


def stop(p: subprocess.Popen) -> None:
    """End the competitor and every process it started (SIGKILL: a Prefect run may outlive SIGTERM)."""
    import signal

    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        p.kill()
    p.wait()


def main(argv: list[str] | None = None) -> None:
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--work", type=Path, default=Path("runs/bench-tiny"))
    a.add_argument("--clips", type=int, default=1500)
    a.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    a.add_argument("--wait-policy", default="ACTIVE,PASSIVE", help="comma-separated OMP_WAIT_POLICY values; "
                   "unset: OpenMP's own default (clutch's PASSIVE not applied)")
    a.add_argument("--competitor", choices=["train", "python"], default="train",
                   help="the competing process: a second clutch train (default) or a pure-Python busy loop")
    a.add_argument("--compare-vqvae", action="store_true", help="also train the VQ-VAE baseline (quiet)")
    a.add_argument("--max-steps", type=int, help="cap every stage (a shorter, per-stage comparison); default: none")
    a.add_argument("--stages", help="stages to run (default: every default stage)")
    a.add_argument("--quiet-seconds", type=float,
                   help="skip the quiet runs and compare with this quiet wall time (one measured earlier, alone)")
    a.add_argument("--eval-split", choices=["train", "val", "test", "all"], default=None,
                   help="clips the eval stage scores (default: val; test only with --final)")
    a.add_argument("--final", action="store_true", help="the final reading: the eval stage may read the test split")
    args = a.parse_args(argv)
    from clutch_core.eval.data import TestSplitRefused, check_split

    try:
        check_split(args.eval_split, args.final)
    except TestSplitRefused as e:
        a.error(str(e))
    short = (("--max-steps", str(args.max_steps)) if args.max_steps else ()) + (
        ("--stages", args.stages) if args.stages else ()) + (
        ("--eval-split", args.eval_split) if args.eval_split else ()) + (("--final",) if args.final else ())

    args.work.mkdir(parents=True, exist_ok=True)
    dataset = args.work / "synth"
    for d in (dataset, Path(f"{dataset}c")):  # the competitor trains on its own copy
        if not (d / "shards").is_dir():
            subprocess.run([sys.executable, "-m", "clutch_cli", "synth", "--out", str(d), "--clips", str(args.clips),
                            "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    print(f"load average before: {os.getloadavg()}; cores available: {len(os.sched_getaffinity(0))}", flush=True)
    rows, quiet = [], {}
    settings = list(itertools.product([int(t) for t in args.threads.split(",")], args.wait_policy.split(",")))
    for (threads, policy), busy in itertools.product(settings, (False, True)):
        if not busy and args.quiet_seconds:
            quiet[(threads, policy)] = args.quiet_seconds
            continue
        comp = competitor(dataset, args.work, threads, policy, args.competitor, short) if busy else None
        try:
            if comp:
                time.sleep(20)  # let the competitor reach its training loop
            wall, stages = train(dataset, args.work / "run", threads, policy, short)
        finally:
            if comp:
                stop(comp)
        if not busy:
            quiet[(threads, policy)] = wall
        rows.append((threads, policy, busy, wall, stages, wall / quiet[(threads, policy)]))
        print(f"threads {threads} {policy} {'busy' if busy else 'quiet'}: {wall:.0f} s", flush=True)

    print("\n| threads | OMP_WAIT_POLICY | competing process | wall (min) | " +
          " | ".join(f"{s} (s)" for s in STAGE_DIRS) + " | vs quiet |")
    print("|---|---|---|---|" + "---|" * len(STAGE_DIRS) + "---|")
    for threads, policy, busy, wall, stages, ratio in rows:
        cells = " | ".join(f"{stages[s]:.0f}" if stages.get(s) is not None else "-" for s in STAGE_DIRS)
        print(f"| {threads} | {policy} | {args.competitor if busy else 'none'} | {wall / 60:.1f} | {cells} | {ratio:.1f}x |")

    if args.compare_vqvae:
        best = min(quiet, key=quiet.get)
        mm = {}
        for tok in ("shift", "vqvae"):
            run = args.work / f"tok-{tok}"
            train(dataset, run, best[0], best[1], ("--stages", "shift", "--tokenizer", tok))
            mm[tok] = json.loads((run / "shift" / "metrics.json").read_text())["val_mpjpe_mm"]
        print(f"\nval MPJPE (mm), tiny preset, default steps: SHIFT {mm['shift']:.2f}, VQ-VAE {mm['vqvae']:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
