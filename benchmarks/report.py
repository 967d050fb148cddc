"""What every benchmark report shares: run metadata, PASS/FAIL checks, JSON and Markdown output.

A report is written as two files next to each other: ``<out>.json`` (every number at full
precision, NaN and inf as ``null``, for machines) and ``<out>.md`` (rounded tables, for people).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import numpy as np
import torch

from d3prefine import __version__
from d3prefine.errors import OutputError, UsageError
from d3prefine.io import atomic_file
from d3prefine.refine import Refiner
from d3prefine.runtime import jsonable, log, resolve_device, run_reporting

REPO_ROOT = Path(__file__).resolve().parent.parent
WORSE_MM = 0.01  # a rise in MPJPE (mm) that :func:`made_worse` counts as harm


def made_worse(after_mm: np.ndarray | float, before_mm: np.ndarray | float) -> np.ndarray:
    """Whether each sequence's MPJPE ``after_mm`` (mm) lies above ``before_mm`` by more than
    :data:`WORSE_MM`: float rounding, e.g. of re-chained poses or of a fallback that returns the
    input, is no harm."""
    return np.asarray(after_mm) > np.asarray(before_mm) + WORSE_MM


def parse_device(parser: argparse.ArgumentParser, device: str) -> str:
    """``--device`` as a torch device name; an unavailable device is a usage error (exit 2)."""
    try:
        return resolve_device(device)
    except UsageError as error:
        parser.error(str(error))


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """``--weights`` and ``--noise``: which trained files to load (default: the shipped ``weights/``)."""
    parser.add_argument("--weights", type=Path, default=None, help="denoiser file or folder (default: the shipped weights/)")
    parser.add_argument("--noise", type=Path, default=None, help="noise statistics (default: noise.safetensors next to the weights)")


def weights_digest(refiner: Refiner) -> dict:
    """``{"denoiser", "noise"}``: :func:`file_digest` of the files a refiner was loaded from."""
    return {"denoiser": file_digest(refiner.weights_path), "noise": file_digest(refiner.noise_path)}


def _git(*args: str) -> str | None:
    """Output of a read-only git command in the repository, ``None`` if git or the repo is missing."""
    try:
        command = ["git", "--no-optional-locks", *args]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return model or platform.processor() or platform.machine()


def machine_info(devices: list[str]) -> dict:
    """CPU count, torch build and threads, and the name of every device in ``devices``."""
    names = {d: torch.cuda.get_device_name(0) if d == "cuda" else _cpu_name() for d in devices}
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "d3prefine": __version__,
        "devices": names,
    }


def run_info(script: str, argv: list[str], devices: list[str]) -> dict:
    """Provenance of a run: the exact command line, UTC date, git commit (and whether the
    working tree had changes) and :func:`machine_info`. Call it before the work starts, so that
    date and tree are those of the code that ran, not of edits made while it ran."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "command": shlex.join(["python", "-m", script, *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "machine": machine_info(devices),
    }


def run_summary(run: dict) -> str:
    """One line of a :func:`run_info` for a Markdown report: date, commit, torch, CPUs."""
    commit = (run["git_commit"] or "unknown")[:12] + (" (with uncommitted changes)" if run["git_dirty"] else "")
    machine = run["machine"]
    return f"{run['date']}, commit {commit}, torch {machine['torch']}, {machine['cpu_count']} CPUs"


def report_head(title: str, run: dict) -> list[str]:
    """The first Markdown lines of a report: its title, the command that made it and :func:`run_summary`."""
    return [f"# {title}", "", f"`{run['command']}`", "", run_summary(run) + ".", ""]


def file_digest(path: Path) -> dict:
    """``{"path", "sha256"}`` of a weights file (the first 16 hex digits identify it)."""
    return {"path": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]}


class Compare(str, Enum):
    """How a measured value must relate to its threshold to pass."""

    AT_MOST = "<="
    AT_LEAST = ">="


@dataclass(frozen=True)
class Check:
    """One target: ``value`` (in ``unit``) must be ``compare`` ``threshold``.

    A ``None`` value (not measured, e.g. in a quick run) neither passes nor fails.
    """

    name: str
    subject: str
    value: float | None
    compare: Compare
    threshold: float
    unit: str

    @property
    def passed(self) -> bool | None:
        if self.value is None or not math.isfinite(self.value):
            return None
        return self.value <= self.threshold if self.compare is Compare.AT_MOST else self.value >= self.threshold

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]

    @property
    def requirement(self) -> str:
        """E.g. ``"<= -15 %"``."""
        return f"{self.compare.value} {self.threshold:,g} {self.unit}"

    def measured(self, digits: int = 1, *, signed: bool = False) -> str:
        """The value with its unit and verdict, e.g. ``"-18.2 % PASS"``."""
        return f"{fmt(self.value, digits, ' ' + self.unit, signed=signed)} {self.verdict}"

    def to_json(self) -> dict:
        return {
            "name": self.name, "subject": self.subject, "value": self.value, "compare": self.compare.value,
            "threshold": self.threshold, "unit": self.unit, "pass": self.passed,
        }


def change_pct(value: float, base: float) -> float | None:
    """``100 * (value - base) / base``: negative means lower (better for an error); ``None``
    when either is not finite or the base is 0."""
    if not (math.isfinite(value) and math.isfinite(base)) or base == 0:
        return None
    return 100.0 * (value - base) / base


def fmt(value: float | None, digits: int = 1, suffix: str = "", *, signed: bool = False) -> str:
    """A number for a table cell (``signed``: always with its sign); ``None`` or NaN is an em dash."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:{'+' if signed else ''},.{digits}f}{suffix}"


def markdown_table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> str:
    """A GitHub Markdown table; columns from ``align_right_from`` on are right-aligned (numbers)."""
    rule = ["---" if k < align_right_from else "---:" for k in range(len(header))]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines)


def write_report(out: Path, document: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md`` atomically (folders created); returns both paths."""
    paths = out.with_name(out.name + ".json"), out.with_name(out.name + ".md")
    texts = json.dumps(jsonable(document), indent=1) + "\n", markdown.rstrip() + "\n"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, texts):
            with atomic_file(path) as temp:
                temp.write_text(text)
    except OSError as error:
        raise OutputError(f"{out}: cannot write the report ({error.strerror})") from None
    return paths


def run_and_write(out: Path, build: Callable[[], tuple[dict, str]]) -> int:
    """Run a benchmark (``build`` returns its JSON document and Markdown), write ``<out>.json`` and
    ``<out>.md``; returns the exit code (a bad input, weights or output path: one error line, 1)."""

    def action() -> None:
        json_path, md_path = write_report(out, *build())
        log(f"wrote {json_path} and {md_path}")

    return run_reporting(action)


def count(text: str) -> int:
    """An argparse type: a whole number >= 1 (a usage error otherwise, at parse time, before any work)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_probe(
    module: str,
    doc: str,
    argv: list[str],
    add_arguments: Callable[[argparse.ArgumentParser], None],
    measure: Callable[[Refiner, argparse.Namespace], dict],
    markdown: Callable[[dict], str],
) -> int:
    """``main`` of a CPU probe script: its parser (description from ``doc``, ``--weights``,
    ``--noise``, ``--seed``, ``--threads`` (2), ``--out`` plus ``add_arguments``), the refiner on the
    CPU, and a report ``{"benchmark", "run", "weights", **measure(refiner, args)}``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=" ".join(doc.split("\n\n")[0].split()))
    add_weights_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the windows or sequences drawn")
    parser.add_argument("--threads", type=count, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    add_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def build() -> tuple[dict, str]:
        provenance = run_info(module, argv, ["cpu"])
        refiner = Refiner.from_pretrained(args.weights, args.noise, device="cpu")
        document = {"benchmark": module.rsplit(".", 1)[-1], "run": provenance, "weights": weights_digest(refiner), **measure(refiner, args)}
        return document, markdown(document)

    return run_and_write(args.out, build)
