"""Process helpers of the library, the command line, the benchmarks and the recipes.

Nothing here parses a command line or prints results: stderr logging and one-line error reports
(:func:`log`, :func:`report_error`, :func:`run_reporting` for a script's ``main``), the choice of
the torch device (:func:`resolve_device`), JSON-ready values (:func:`jsonable`) and seeded
draws (:func:`derived_seed`, :func:`subsample`). Atomic writes
and output checks live in :mod:`d3prefine.outputfile` (:func:`~d3prefine.outputfile.atomic_file`) and
:mod:`d3prefine.io` (:func:`~d3prefine.io.check_output_path`). torch is imported only when a device is resolved.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.text import Text

from d3prefine.errors import D3PrefineError, ExitCode, UsageError

#: Logs, progress, errors and summaries (stderr); stdout carries results only.
err_console = Console(stderr=True)


class Device(str, Enum):
    """Where models run: ``auto`` picks CUDA when available, else the CPU; ``cuda`` is the current
    CUDA device, ``cuda:N`` (see :func:`parse_device`) device N."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def parse_device(device: Device | str) -> str:
    """The device name ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (N >= 0) of ``device`` (any case).

    Raises:
        UsageError: any other name.
    """
    text = str(device.value if isinstance(device, Device) else device).strip().lower()
    if text in {d.value for d in Device} or _CUDA_INDEX.fullmatch(text):
        return text
    raise UsageError(f"expected auto, cpu, cuda or cuda:N (N = 0, 1, ...), got {text!r}")


def log(message: str) -> None:
    """Print a plain message on stderr (no markup, no wrapping)."""
    err_console.print(Text(message), soft_wrap=True, highlight=False)


def report_error(error: BaseException | str) -> None:
    """Print ``error: <message>`` in red on one line of stderr."""
    message = " ".join(str(error).split())
    err_console.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True, highlight=False)


def run_reporting(action: Callable[[], object]) -> ExitCode:
    """Run ``action`` for a script's ``main``: a :class:`D3PrefineError` becomes one error line
    on stderr and exit code 1 (2 for a :class:`UsageError`), success exit code 0."""
    try:
        action()
    except D3PrefineError as error:
        report_error(error)
        return ExitCode.USAGE if isinstance(error, UsageError) else ExitCode.FAILED
    return ExitCode.OK


def resolve_device(device: Device | str) -> str:
    """The torch device for ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        UsageError: unknown device name, or CUDA (device N) requested but not available.
    """
    device = parse_device(device)
    if device == Device.CPU:
        return "cpu"
    import torch  # imported here: commands without a model start faster

    if device == Device.AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise UsageError(f"{device} requested but CUDA is not available (torch {torch.__version__}, {build}); use --device cpu or auto")
    match = _CUDA_INDEX.fullmatch(device)
    if match and int(match.group(1)) >= torch.cuda.device_count():
        raise UsageError(
            f"{device} requested but this machine has {torch.cuda.device_count()} CUDA device(s), cuda:0 .. "
            f"cuda:{torch.cuda.device_count() - 1} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    return device


def jsonable(value: Any) -> Any:
    """``value`` with numpy values, paths and tuples converted for JSON; NaN and inf become null."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (Path, Enum)):
        return str(value.value if isinstance(value, Enum) else value)
    return value


def derived_seed(seed: int, *key: int) -> int:
    """A 64-bit seed for the stream ``key`` of ``seed`` (NumPy's ``SeedSequence``: independent
    streams for distinct keys, the same for the same key on every machine)."""
    return int(np.random.SeedSequence(seed, spawn_key=key).generate_state(1, np.uint64)[0])


def subsample(items: list, count: int | None, seed: int) -> list:
    """``count`` items drawn without replacement (seeded), in their original order; all if ``None``
    or at least ``len(items)``."""
    if count is None or count >= len(items):
        return items
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=count, replace=False))
    return [items[k] for k in keep]
