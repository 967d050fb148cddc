"""Speed benchmark: refinement throughput, base-estimator time, and time and peak memory
versus sequence length.

    python -m benchmarks.speed --out benchmarks/results/speed [--threads 2] [--device auto] [--quick]

* Throughput: frames/s of ``Refiner.refine_many`` (shipped weights) for every K and batch size
  on the CPU with ``--threads`` torch threads, plus the same rows on CUDA when it is used. The
  input is a fixed set of sequences tiled from ``--input`` (default: the first
  ``examples/*.npz``, else a synthetic walk: the values do not change the cost). Only the
  ``refine_many`` call is timed, after one warm-up call, ``repeats`` times; a row reports the
  median (and the fastest and slowest), since single timings on a shared machine vary by 10-20 %.
* Base estimators: ``TemporalLifter`` and ``FrameLifter`` (``recipes/estimators.py``) on the
  same frames, from ``--estimators`` (skipped with a note where the weights are missing).
* Scaling: one sequence of each length refined with the default settings, each in a fresh
  subprocess, which reports its wall time, its RSS after loading and its peak RSS (VmHWM).
* Many small files: ``d3prefine refine`` (the command, in this process after a warm-up call)
  on 1,000 files of 150 frames and on one file of the same frames, one after the other in the
  same run, with ``--threads``, the default K and batch size and ``--continue-on-error`` (as
  batch jobs run it); the target is the ratio of their throughputs.
* Start-up: wall time and CPU time (user + system) of fresh ``python -m d3prefine`` processes
  for ``--help``, ``info`` on the input file, a usage error and a whole ``refine`` of the input
  file (medians of ``startup_repeats``). The start-up targets are checked on the CPU time: on a
  machine busier than its cores, a process waits for a core and its wall time says more about
  the load than about the program.
* The load average of the machine before and after the run is recorded: timings on a shared
  machine depend on it.

Writes ``<out>.json`` and ``<out>.md`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.report import (
    REPO_ROOT,
    Check,
    Compare,
    add_weights_arguments,
    file_digest,
    fmt,
    markdown_table,
    parse_device,
    run_and_write,
    run_info,
    run_summary,
    weights_digest,
)
from d3prefine.cli import app
from d3prefine.io import load_poses
from d3prefine.preprocess import normalize_screen
from d3prefine.refine import DEFAULT_BATCH_SIZE, DEFAULT_STEPS, Refiner
from d3prefine.runtime import log, run_reporting

FPS = 30.0
TARGET_FPS, TARGET_THREADS = 5_000.0, 2
TARGET_PEAK_MB, TARGET_PEAK_FRAMES = 1e9 / 2**20, 100_000  # "below 1 GB": 10^9 bytes, 953.7 MiB
# Peak-memory growth per added frame between the two longest runs. Only the sequence's own arrays
# may grow (inputs, blending buffers and output, about 2.5 KB per frame); network activations of
# all windows at once would add tens of KB per frame.
MAX_GROWTH_KIB_PER_FRAME = 4.0
MAX_SOURCE_FRAMES = 10_000  # frames of --input kept for tiling
MIN_MANY_FILES_RATIO = 0.8  # throughput on many small files / on one file of the same frames
MAX_HELP_S, MAX_INFO_S = 0.5, 1.0  # start-up targets (wall seconds of a fresh process)
ESTIMATOR_FILES = {"TemporalLifter": "temporal.safetensors", "FrameLifter": "frame.safetensors"}

# A standing Human3.6M-17 pose (metres, camera frame: x right, y down), root at the origin.
REST_POSE = np.array([
    [0.0, 0.0, 0.0], [-0.13, 0.0, 0.0], [-0.13, 0.45, 0.0], [-0.13, 0.89, 0.0], [0.13, 0.0, 0.0], [0.13, 0.45, 0.0],
    [0.13, 0.89, 0.0], [0.0, -0.23, 0.0], [0.0, -0.48, 0.0], [0.0, -0.59, -0.03], [0.0, -0.71, 0.0], [0.15, -0.48, 0.0],
    [0.15, -0.2, 0.0], [0.15, 0.05, 0.0], [-0.15, -0.48, 0.0], [-0.15, -0.2, 0.0], [-0.15, 0.05, 0.0],
])


@dataclass(frozen=True)
class Plan:
    """What to measure: K and batch sizes of the throughput rows, their input size and timings
    per row, scaling lengths, the many-files comparison (files, frames per file) and the
    timings per start-up row."""

    steps: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    frames: int
    sequence_frames: int
    repeats: int
    scaling: tuple[int, ...]
    many_files: tuple[int, int]
    startup_repeats: int


FULL = Plan(steps=(1, 2, 5), batch_sizes=(64,), frames=10_000, sequence_frames=300, repeats=3, scaling=(1_000, 10_000, 100_000),
            many_files=(1_000, 150), startup_repeats=5)
QUICK = Plan(steps=(1,), batch_sizes=(DEFAULT_BATCH_SIZE,), frames=2_000, sequence_frames=300, repeats=2, scaling=(200, 2_000),
             many_files=(12, 50), startup_repeats=1)


def synthetic_walk(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Normalized 2D ``(T, 17, 2)`` and 3D ``(T, 17, 3)`` metres of a swaying pose 4.5 m from a
    pinhole camera (focal 1145 px, 1000x1000 image)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / FPS
    sway = 0.04 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (17, 3)) * t + rng.uniform(0, 2 * np.pi, (17, 3)))
    sway[:, 0] = 0.0
    poses_3d = REST_POSE + sway + np.array([0.0, 0.0, 4.5]) + 0.2 * np.sin(2 * np.pi * 0.1 * t) * np.array([1.0, 0.0, 0.0])
    pixels = 1145.0 * poses_3d[..., :2] / poses_3d[..., 2:] + 500.0
    return normalize_screen(pixels, (1000, 1000)).astype(np.float32), poses_3d.astype(np.float32)


def source_frames(path: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Frames to tile: normalized 2D ``(N, J, 2)``, 3D ``(N, J, 3)`` metres, and their origin."""
    if path is None:
        path = next(iter(sorted((REPO_ROOT / "examples").glob("*.npz"))), None)
    if path is None:
        return (*synthetic_walk(MAX_SOURCE_FRAMES), "synthetic walk (benchmarks.speed.synthetic_walk)")
    sequences = load_poses(path)
    p2d = [normalize_screen(s.poses_2d, s.image_size) if s.image_size else s.poses_2d for s in sequences]
    p3d = [s.poses_3d for s in sequences]
    return np.concatenate(p2d)[:MAX_SOURCE_FRAMES].astype(np.float32), np.concatenate(p3d)[:MAX_SOURCE_FRAMES], str(path)


def tiled(p2d: np.ndarray, p3d: np.ndarray, frames: int, sequence_frames: int) -> list[tuple[np.ndarray, np.ndarray, None]]:
    """``frames`` frames repeating the source, cut into sequences of ``sequence_frames``."""
    index = np.arange(frames) % len(p3d)
    return [(p2d[chunk], p3d[chunk], None) for chunk in np.array_split(index, -(-frames // sequence_frames))]


def _rate(frames: int, seconds: float) -> dict:
    return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}


def _timed_refine(refiner: Refiner, inputs: list, repeats: int, **options) -> list[float]:
    """Seconds of ``repeats`` ``refine_many`` calls, after a warm-up call on the first sequence."""
    refiner.refine_many(inputs[:1], **options)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        refiner.refine_many(inputs, **options)
        seconds.append(time.perf_counter() - start)
    return seconds


def throughput_rows(refiner: Refiner, inputs: list, plan: Plan, threads: int) -> list[dict]:
    frames = sum(len(x[1]) for x in inputs)
    rows = []
    for steps in plan.steps:
        for batch_size in plan.batch_sizes:
            seconds = _timed_refine(refiner, inputs, plan.repeats, steps=steps, batch_size=batch_size)
            device = refiner.device.type
            config = {"device": device, "threads": threads if device == "cpu" else None, "steps": steps, "batch_size": batch_size}
            spread = {"repeats": len(seconds), "frames_per_s_min": frames / max(seconds), "frames_per_s_max": frames / min(seconds)}
            rate = _rate(frames, float(np.median(seconds)))
            rows.append({**config, **rate, **spread})
            log(f"  {device} K={steps} batch {batch_size}: {rate['frames_per_s']:,.0f} frames/s (median of {len(seconds)})")
    return rows


def estimator_rows(folder: Path, inputs: list) -> list[dict]:
    """CPU time of each base estimator on the 2D of ``inputs``; a row with ``skipped`` when its weights are missing."""
    from recipes.estimators import load_lifter, predict  # the recipes are not part of the package

    two_d = [x[0] for x in inputs]
    frames = sum(len(x) for x in two_d)
    rows = []
    for name, file in ESTIMATOR_FILES.items():
        path = folder / file
        if not path.is_file():
            rows.append({"estimator": name, "skipped": f"{path} not found"})
            log(f"  {name}: skipped ({path} not found)")
            continue
        model, _ = load_lifter(path)
        predict(model, two_d[:1])
        start = time.perf_counter()
        predict(model, two_d)
        seconds = time.perf_counter() - start
        rows.append({"estimator": name, "weights": file_digest(path), "device": "cpu", **_rate(frames, seconds)})
        log(f"  {name}: {frames / seconds:,.0f} frames/s")
    return rows


# ------------------------------------------------------------------------------------------ scaling


def memory_mb() -> tuple[float | None, float]:
    """Current and peak resident memory of this process in MiB (VmRSS and VmHWM; without
    ``/proc``: no current value and ``ru_maxrss`` as the peak)."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def scaling_child(frames: int, source: Path, weights: Path | None, noise: Path | None) -> dict:
    """In a fresh process: refine one ``frames``-long sequence with the default settings on the CPU."""
    with np.load(source, allow_pickle=False) as data:
        p2d, p3d = data["poses_2d"], data["poses_3d"]
    refiner = Refiner.from_pretrained(weights, noise, device="cpu")
    refiner.refine_many(tiled(p2d, p3d, 1, 1))  # warm-up: one window
    rss_load, _ = memory_mb()
    inputs = tiled(p2d, p3d, frames, frames)
    start = time.perf_counter()
    refiner.refine_many(inputs)
    seconds = time.perf_counter() - start
    _, peak = memory_mb()
    increase = None if rss_load is None else peak - rss_load
    return {**_rate(frames, seconds), "rss_after_load_mb": rss_load, "peak_rss_mb": peak, "peak_increase_mb": increase}


def _model_arguments(args: argparse.Namespace) -> list[str]:
    """``--weights PATH`` and ``--noise PATH`` as this benchmark was given them (absent where not
    given), for the ``d3prefine`` and child commands it runs."""
    return [arg for key in ("weights", "noise") if getattr(args, key) for arg in (f"--{key}", str(getattr(args, key)))]


def scaling_rows(plan: Plan, p2d: np.ndarray, p3d: np.ndarray, args: argparse.Namespace) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="d3prefine-speed-") as folder:
        source = Path(folder) / "source.npz"
        np.savez(source, poses_2d=p2d, poses_3d=p3d)
        for frames in plan.scaling:
            command = [sys.executable, "-m", "benchmarks.speed", "--scaling-child", str(frames), "--source", str(source)]
            command += ["--threads", str(args.threads), *_model_arguments(args)]
            done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"scaling run of {frames} frames failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.splitlines()[-1]))
            log(f"  {frames} frames: {rows[-1]['seconds']:.2f} s, peak RSS {rows[-1]['peak_rss_mb']:.0f} MiB")
    return rows


# ------------------------------------------------------------------------------------------ many files, start-up


def _refine_command(inputs: list[Path], out_dir: Path, device: str, args: argparse.Namespace) -> None:
    """``d3prefine refine`` in this process; raises unless it exits 0."""
    argv = ["refine", *map(str, inputs), "--out-dir", str(out_dir), "--device", device, "--threads", str(args.threads),
            "--continue-on-error", *_model_arguments(args)]
    try:
        app(argv, prog_name="d3prefine")
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise RuntimeError(f"'d3prefine {' '.join(argv)}' exited with {stop.code}") from None


def many_files_rows(plan: Plan, p2d: np.ndarray, p3d: np.ndarray, device: str, args: argparse.Namespace) -> list[dict]:
    """Throughput of ``refine`` on ``plan.many_files`` small files and on one file of the same frames."""
    count, length = plan.many_files
    sequences = tiled(p2d, p3d, count * length, length)
    rows = []
    with tempfile.TemporaryDirectory(prefix="d3prefine-speed-files-") as folder:
        root = Path(folder)
        (root / "many").mkdir()
        for k, (a, b, _) in enumerate(sequences):
            np.savez(root / "many" / f"seq{k:05d}.npz", poses_2d=a, poses_3d=b)
        np.savez(root / "one.npz", poses_2d=np.concatenate([a for a, _, _ in sequences]), poses_3d=np.concatenate([b for _, b, _ in sequences]))
        np.savez(root / "warm.npz", poses_2d=sequences[0][0], poses_3d=sequences[0][1])
        _refine_command([root / "warm.npz"], root / "out-warm", device, args)
        for name, files, inputs in ((f"1 file of {count * length:,} frames", 1, [root / "one.npz"]),
                                    (f"{count:,} files of {length} frames", count, [root / "many"])):
            start = time.perf_counter()
            _refine_command(inputs, root / f"out-{files}", device, args)
            rows.append({"device": device, "threads": args.threads if device == "cpu" else None, "input": name,
                         "files": files, **_rate(count * length, time.perf_counter() - start)})
            log(f"  {device} {name}: {rows[-1]['frames_per_s']:,.0f} frames/s")
    return rows


def startup_rows(plan: Plan, p2d: np.ndarray, p3d: np.ndarray, args: argparse.Namespace) -> list[dict]:
    """Wall seconds of fresh ``python -m d3prefine`` processes (median of ``plan.startup_repeats``),
    on a file of the first 300 source frames."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="d3prefine-speed-start-") as folder:
        source = Path(folder) / "walk.npz"
        np.savez(source, poses_2d=p2d[:300], poses_3d=p3d[:300])
        commands = {
            "d3prefine --help": (["--help"], 0),
            f"d3prefine info {source.name}": (["info", str(source)], 0),
            "usage error (refine --steps 0)": (["refine", str(source), "--steps", "0"], 2),
            f"d3prefine refine {source.name} (whole run, CPU)": (
                ["refine", str(source), "-o", str(Path(folder) / "out.npz"), "--overwrite", "--device", "cpu",
                 "--threads", str(args.threads), *_model_arguments(args)], 0),
        }
        for name, (argv, code) in commands.items():
            seconds, cpu = [], []
            for _ in range(plan.startup_repeats):
                before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "d3prefine", *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
                seconds.append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
                if done.returncode != code:
                    raise RuntimeError(f"{name}: exit {done.returncode}, expected {code}:\n{done.stderr[-2000:]}")
            rows.append({"command": name, "repeats": len(seconds), "seconds": float(np.median(seconds)),
                         "seconds_min": min(seconds), "seconds_max": max(seconds), "cpu_seconds": float(np.median(cpu))})
            log(f"  {name}: {rows[-1]['seconds']:.2f} s wall, {rows[-1]['cpu_seconds']:.2f} s CPU (medians of {len(seconds)})")
    return rows


# ------------------------------------------------------------------------------------------ verdicts and output


def checks(throughput: list[dict], scaling: list[dict], threads: int, many: list[dict], startup: list[dict]) -> list[Check]:
    """The targets of issues 5 and 17, plus the linearity of time in the sequence length."""
    default_key = ("cpu", DEFAULT_STEPS, DEFAULT_BATCH_SIZE)
    default = next((r for r in throughput if (r["device"], r["steps"], r["batch_size"]) == default_key), None)
    note = "" if threads == TARGET_THREADS else f" (n/a: measured with {threads} threads, the target is for {TARGET_THREADS})"
    longest = next((r for r in scaling if r["frames"] == TARGET_PEAK_FRAMES), None)
    rate = default["frames_per_s"] if default and threads == TARGET_THREADS else None
    result = [
        Check(f"refine throughput, default settings (K={DEFAULT_STEPS}, batch {DEFAULT_BATCH_SIZE}), CPU{note}", f"cpu, {threads} threads",
              rate, Compare.AT_LEAST, TARGET_FPS, "frames/s"),
        Check(f"peak RSS refining one {TARGET_PEAK_FRAMES:,}-frame sequence", "cpu", longest["peak_rss_mb"] if longest else None,
              Compare.AT_MOST, TARGET_PEAK_MB, "MiB"),
    ]
    if len(scaling) >= 2:  # per-frame time of the longest run relative to the next shorter one: ~1 if linear
        a, b = scaling[-2], scaling[-1]
        ratio = (b["seconds"] / b["frames"]) / (a["seconds"] / a["frames"])
        name = f"time per frame at {b['frames']:,} vs {a['frames']:,} frames (linear: ~1)"
        result.append(Check(name, "cpu", ratio, Compare.AT_MOST, 1.5, "x"))
        growth = (b["peak_increase_mb"] - a["peak_increase_mb"]) * 1024 / (b["frames"] - a["frames"])
        name = f"peak memory growth per frame, {a['frames']:,} -> {b['frames']:,} frames (windows streamed)"
        result.append(Check(name, "cpu", growth, Compare.AT_MOST, MAX_GROWTH_KIB_PER_FRAME, "KiB/frame"))
    for device in sorted({r["device"] for r in many}):
        one, files = (r for r in many if r["device"] == device)
        name = f"refine throughput on {files['input']} / on {one['input']} (same run)"
        result.append(Check(name, device, files["frames_per_s"] / one["frames_per_s"], Compare.AT_LEAST, MIN_MANY_FILES_RATIO, "x"))
    for row, limit in zip(startup[:2], (MAX_HELP_S, MAX_INFO_S)):
        result.append(Check(f"start-up: {row['command']} (median CPU time of a fresh process)", "cpu", row["cpu_seconds"],
                            Compare.AT_MOST, limit, "s"))
    return result


RATE_HEADER = ["frames", "time (s)", "frames/s"]


def _rate_cells(r: dict) -> list[str]:
    return [f"{r['frames']:,}", fmt(r["seconds"], 2), fmt(r["frames_per_s"], 0)]


def _throughput_cells(r: dict) -> list[str]:
    spread = f"{fmt(r['frames_per_s_min'], 0)} – {fmt(r['frames_per_s_max'], 0)}"
    return [r["device"], str(r["threads"] or "—"), str(r["steps"]), str(r["batch_size"]), *_rate_cells(r), spread]


def _estimator_cells(r: dict) -> list[str]:
    if "skipped" in r:
        return [r["estimator"], "skipped: " + r["skipped"], "—", "—"]
    return [r["estimator"], *_rate_cells(r)]


def _many_cells(r: dict) -> list[str]:
    return [r["device"], str(r["threads"] or "—"), r["input"], *_rate_cells(r)]


def _startup_cells(r: dict) -> list[str]:
    return [r["command"], fmt(r["cpu_seconds"], 2), fmt(r["seconds"], 2), f"{fmt(r['seconds_min'], 2)} – {fmt(r['seconds_max'], 2)}"]


def _scaling_cells(r: dict) -> list[str]:
    memory = [fmt(r[key], 0) for key in ("rss_after_load_mb", "peak_rss_mb", "peak_increase_mb")]
    return [*_rate_cells(r), *memory]


def markdown(document: dict) -> str:
    """The report for people; ``document`` holds the targets as :class:`Check`."""
    settings, plan = document["settings"], document["settings"]["plan"]
    scaling_header = [*RATE_HEADER, "RSS after load (MiB)", "peak RSS (MiB)", "peak - after load (MiB)"]
    sections = [
        ("## Refinement throughput", [
            f"`refine_many` on {plan['frames']:,} frames in sequences of {plan['sequence_frames']} frames, timed {plan['repeats']} times "
            "after one warm-up call: the median time, and the range of the frames/s.", "",
            markdown_table(["device", "threads", "K", "batch", *RATE_HEADER, "frames/s range"], list(map(_throughput_cells, document["throughput"])))],
         document["throughput"]),
        ("## Base estimators (CPU, same frames)", [markdown_table(["estimator", *RATE_HEADER], list(map(_estimator_cells, document["estimators"])))],
         document["estimators"]),
        ("## Scaling (one sequence, default settings, CPU, a fresh process per length)",
         [markdown_table(scaling_header, list(map(_scaling_cells, document["scaling"])))], document["scaling"]),
        ("## Many small files versus one file (`d3prefine refine`, same run)", [
            "Default K and batch size, `--continue-on-error`.", "",
            markdown_table(["device", "threads", "input", *RATE_HEADER], list(map(_many_cells, document["many_files"])))],
         document["many_files"]),
        (f"## Start-up (fresh `python -m d3prefine` processes, medians of {plan['startup_repeats']})", [
            "CPU: user + system time of the process; wall: elapsed time, which on a machine busier than its cores includes "
            "the wait for a core.", "",
            markdown_table(["command", "CPU (s)", "wall (s)", "wall range (s)"], list(map(_startup_cells, document["startup"])))],
         document["startup"]),
    ]
    load = settings["load_average"]
    lines = [
        "# d3prefine speed benchmark", "", f"`{document['run']['command']}`", "",
        f"{run_summary(document['run'])}; devices {document['run']['machine']['devices']}; input: {settings['input']}; "
        f"load average (1, 5, 15 min) {load['before']} before the run, {load['after']} after it.", "",
    ]
    for title, body, rows in sections:
        if rows:  # --startup-only measures the start-up alone
            lines += [title, "", *body, ""]
    lines += [
        "## Targets", "",
        markdown_table(["target", "required", "measured"],
                       [[c.name, c.requirement, c.measured(2 if c.unit in ("x", "s") else 0)] for c in document["targets"]], align_right_from=2),
    ]
    return "\n".join(lines)


def _load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages of the machine (``None`` where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--out", type=Path, help="writes OUT.json and OUT.md")
    add_weights_arguments(parser)
    parser.add_argument("--threads", type=int, default=TARGET_THREADS, help="torch CPU threads")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="cpu: CPU rows only; auto/cuda: CUDA rows too")
    parser.add_argument("--input", type=Path, default=None,
                        help="pose file whose frames are tiled (default: the first examples/*.npz, else a synthetic walk)")
    parser.add_argument("--estimators", type=Path, default=REPO_ROOT / "data" / "estimators", help="folder of the base estimators' weights")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    parser.add_argument("--startup-only", action="store_true", help="measure the start-up rows alone (a minute, not an hour)")
    parser.add_argument("--scaling-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scaling_child is None and args.out is None:
        parser.error("the following arguments are required: --out")
    args.device = parse_device(parser, args.device)
    return args


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    provenance = run_info("benchmarks.speed", argv, sorted({"cpu", args.device}))
    load_before = _load_average()
    plan = QUICK if args.quick else FULL
    p2d, p3d, origin = source_frames(args.input)
    if args.startup_only:
        log("start-up")
        startup = startup_rows(plan, p2d, p3d, args)
        targets = [c for c in checks([], [], args.threads, [], startup) if c.name.startswith("start-up")]
        return {
            "benchmark": "speed", "run": provenance,
            "settings": {"threads": args.threads, "device": args.device, "quick": args.quick, "input": origin, "plan": asdict(plan),
                         "load_average": {"before": load_before, "after": _load_average()}},
            "throughput": [], "estimators": [], "scaling": [], "many_files": [], "startup": startup, "targets": targets,
        }
    inputs = tiled(p2d, p3d, plan.frames, plan.sequence_frames)
    log(f"throughput on {plan.frames} frames from {origin}")
    refiner = Refiner.from_pretrained(args.weights, args.noise, device="cpu")
    throughput = throughput_rows(refiner, inputs, plan, args.threads)
    if args.device == "cuda":
        throughput += throughput_rows(Refiner.from_pretrained(args.weights, args.noise, device="cuda"), inputs, plan, args.threads)
    log("base estimators")
    estimators = estimator_rows(args.estimators, inputs)
    log("scaling")
    scaling = scaling_rows(plan, p2d, p3d, args)
    log("many small files versus one file")
    many = many_files_rows(plan, p2d, p3d, "cpu", args)
    if args.device == "cuda":
        many += many_files_rows(plan, p2d, p3d, "cuda", args)
    log("start-up")
    startup = startup_rows(plan, p2d, p3d, args)
    load = {"before": load_before, "after": _load_average()}
    return {
        "benchmark": "speed",
        "run": provenance,
        "settings": {"threads": args.threads, "device": args.device, "quick": args.quick, "input": origin, "plan": asdict(plan),
                     "weights": weights_digest(refiner), "load_average": load},
        "throughput": throughput,
        "estimators": estimators,
        "scaling": scaling,
        "many_files": many,
        "startup": startup,
        "targets": checks(throughput, scaling, args.threads, many, startup),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.scaling_child is not None:
        return run_reporting(lambda: print(json.dumps(scaling_child(args.scaling_child, args.source, args.weights, args.noise))))

    def build() -> tuple[dict, str]:
        document = run(args, argv)
        return {**document, "targets": [c.to_json() for c in document["targets"]]}, markdown(document)

    return run_and_write(args.out, build)


if __name__ == "__main__":
    sys.exit(main())
