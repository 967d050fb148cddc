"""Copy a few short validation sequences from a finished build into ``examples/``.

    python -m recipes.make_examples --data data/ --out examples/

Picks, deterministically (first match in name order), a walk and a right-hand wave of the
validation actor filmed by a Human3.6M camera, with the TemporalLifter's output, plus the same
walk with the FrameLifter's output. Each is written as a single-sequence ``.npz`` in the project
format (with ``gt_3d``), well under 1 MB in total.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from d3prefine.errors import InputError, OutputError
from d3prefine.io import PoseSequence, load_poses, save_poses
from d3prefine.runtime import run_reporting

console = Console(stderr=True)


@dataclass(frozen=True)
class Example:
    """Which sequence to copy: ``file`` is a build output, ``content`` the Bandai motion content."""

    output: str
    file: str
    content: str
    min_frames: int = 100
    max_frames: int = 300


EXAMPLES = (
    Example("walk.npz", "val_temporal.h5", "walk"),
    Example("wave.npz", "val_temporal.h5", "wave-right-hand"),
    Example("walk_frame_lifter.npz", "val_frame.h5", "walk"),
)


def pick(sequences: list[PoseSequence], example: Example) -> PoseSequence:
    """First sequence (by name) of the example's content, a Human3.6M camera and an allowed length."""
    for seq in sorted(sequences, key=lambda s: s.name):
        prov = seq.provenance
        if prov.get("content") == example.content and prov.get("camera") != "random" and example.min_frames <= seq.num_frames <= example.max_frames:
            return seq
    raise InputError(f"{example.file}: no {example.content!r} sequence of {example.min_frames}-{example.max_frames} frames from a Human3.6M camera")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipes.make_examples", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="build output directory")
    parser.add_argument("--out", type=Path, default=Path("examples"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    return run_reporting(lambda: write_examples(args.data, args.out, args.overwrite))


def write_examples(data: Path, out: Path, overwrite: bool) -> None:
    """Pick every example from the build in ``data`` and save it to ``out`` (created if missing)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{out}: cannot create the examples folder ({error.strerror})") from None
    loaded: dict[str, list[PoseSequence]] = {}
    for example in EXAMPLES:
        if example.file not in loaded:
            loaded[example.file] = load_poses(data / example.file)
        seq = pick(loaded[example.file], example)
        path = out / example.output
        save_poses(path, [seq], overwrite=overwrite)
        console.print(f"{path}: {seq.name} ({seq.num_frames} frames, {seq.provenance['estimator']}), {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    sys.exit(main())
