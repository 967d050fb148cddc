"""Plain arrays: a 2D and a 3D file, each ``.npy`` ``(T, J, C)`` or ``.csv`` (one row per frame).

A CSV file has ``J * C`` numbers per row, joint-major (``j0_x, j0_y[, j0_z], j1_x, ...``), an
optional header line and an optional leading frame-number column (``J * C + 1`` columns). The
layouts (``--layout-2d``, ``--layout-3d``) and the 3D units (``--units``) are given by the user;
the 3D axes are d3prefine's camera frame (x right, y down, z forward).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.formats.base import SourceData, expect_shape, read_npy, write_npy_like
from d3prefine.formats.options import METRES_PER_UNIT, ConvertOptions
from d3prefine.keypoints import get_mapping

SUFFIXES = (".npy", ".csv")


def _csv_text(path: Path) -> tuple[str | None, list[str]]:
    """``(header line or None, data lines)`` of a CSV file."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({error})") from None
    if not lines:
        raise InputError(f"{path}: empty CSV file")
    first = lines[0].split(",")[0].strip()
    try:
        float(first)
    except ValueError:
        return lines[0], lines[1:]
    return None, lines


def read_array(path: Path, joints: int, channels: int) -> np.ndarray:
    """``(T, joints, channels)`` float64 from a ``.npy`` or ``.csv`` file."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return expect_shape(read_npy(path), joints, channels, str(path))
    if suffix != ".csv":
        raise InputError(f"{path}: unknown suffix {path.suffix!r}, expected one of {', '.join(SUFFIXES)}")
    _, lines = _csv_text(path)
    if not lines:
        raise InputError(f"{path}: no data rows below the header")
    cells = [line.split(",") for line in lines]
    if len({len(row) for row in cells}) > 1:
        raise InputError(f"{path}: rows of different lengths ({min(map(len, cells))} to {max(map(len, cells))} columns)")
    try:
        rows = np.array([[float(value) for value in row] for row in cells])
    except ValueError as error:
        raise InputError(f"{path}: expected numbers in every data row ({error})") from None
    width = joints * channels
    if rows.shape[1] not in (width, width + 1):
        raise InputError(f"{path}: expected {width} columns ({joints} joints x {channels}) or {width + 1} with a frame column, got {rows.shape[1]}")
    return expect_shape(rows[:, -width:].reshape(len(rows), joints, channels), joints, channels, str(path))


def read(options: ConvertOptions) -> list[SourceData]:
    """One sequence from ``options.poses_2d`` and ``options.poses_3d`` (layouts and units as given)."""
    path_2d = options.required("poses_2d", "--2d", "plain arrays need a 2D file")
    path_3d = options.required("poses_3d", "--3d", "plain arrays need a 3D file")
    layout_2d, layout_3d = get_mapping(options.layout_2d), get_mapping(options.layout_3d)
    poses_2d = read_array(path_2d, layout_2d.num_source, 2)
    poses_3d = read_array(path_3d, layout_3d.num_source, 3)
    return [
        SourceData(
            name=options.name or path_3d.stem,
            poses_2d=poses_2d,
            layout_2d=layout_2d.name,
            poses_3d=poses_3d,
            layout_3d=layout_3d.name,
            metres_per_unit=METRES_PER_UNIT[options.units],
            image_size=options.image_size,
            fps=options.fps,
            details={"units": options.units.value},
        )
    ]


def write(source: Path, details: dict, poses_3d: np.ndarray, output: Path) -> None:
    """Write ``poses_3d`` ``(T, J, 3)`` like ``source``: same suffix, dtype (npy) or header and frame column (csv)."""
    if source.suffix.lower() == ".npy":
        write_npy_like(source, details, poses_3d, output)
        return
    header, lines = _csv_text(source) if source.is_file() else (None, [])
    frame_column = bool(lines) and len(lines[0].split(",")) == poses_3d.shape[1] * 3 + 1
    flat = poses_3d.reshape(len(poses_3d), -1)
    with open(output, "w", encoding="utf-8") as handle:
        if header is not None:
            handle.write(header + "\n")
        for t, row in enumerate(flat):
            values = ",".join(f"{v:.9g}" for v in row)
            handle.write(f"{t},{values}\n" if frame_column else values + "\n")
