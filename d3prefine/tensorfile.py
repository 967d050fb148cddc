"""Safetensors files written atomically and read with a format check (never pickle).

Every file d3prefine writes (denoiser weights, noise statistics, training checkpoints) is a
safetensors file whose metadata holds ``format`` plus JSON strings describing its contents.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from d3prefine.errors import WeightsError
from d3prefine.io import atomic_file

#: Largest magnitude accepted in denoiser weights and noise statistics (the shipped ones stay below 2).
MAX_PARAMETER = 1e4


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write atomically (see :func:`d3prefine.io.atomic_file`): never a partial file."""
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    with atomic_file(Path(path)) as temp:
        temp.write_bytes(data)  # keeps the permissions atomic_file created (save_file would make it 0600)


def read_tensors(
    path: str | Path, expected_format: str, *, max_abs: float | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a file whose ``format`` is ``expected_format``.

    ``max_abs`` bounds the magnitude of floating-point values: bytes overwritten at random read
    as values up to 3e38, which overflow every computation.

    Raises:
        WeightsError: missing file, not safetensors, another format, or a tensor holding NaN,
            inf or a value beyond ``max_abs``.
    """
    path = Path(path)
    metadata = read_metadata(path, expected_format)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from None
    broken = next((name for name, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())), None)
    if broken is not None:
        raise WeightsError(f"{path}: tensor {broken!r} holds NaN or inf (a corrupt or diverged file)")
    if max_abs is not None:
        huge = next((name for name, t in tensors.items() if t.is_floating_point() and t.numel() and float(t.abs().max()) > max_abs), None)
        if huge is not None:
            raise WeightsError(f"{path}: tensor {huge!r} holds values beyond ±{max_abs:g} (a corrupt or diverged file)")
    return tensors, metadata


def read_metadata(path: str | Path, expected_format: str) -> dict[str, str]:
    """The string metadata of a safetensors file whose ``format`` is ``expected_format`` (tensors not read).

    Raises:
        WeightsError: missing file, not safetensors, or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from None
    if metadata.get("format") != expected_format:
        raise WeightsError(f"{path}: expected a {expected_format} file, got format {metadata.get('format')!r}")
    return metadata
