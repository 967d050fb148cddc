"""What every source-format reader returns, and the file helpers they share.

A reader turns another estimator's files into :class:`SourceData`: arrays in the source's own
joint layout, units and axes, plus how to reach metres in the camera frame. A writer puts 3D
poses in that same layout, units and axes back into a file shaped like the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from d3prefine.errors import InputError

#: Axes of the camera frame d3prefine uses (x right, y down, z forward): the identity.
CAMERA_AXES = np.eye(3)


@dataclass
class SourceData:
    """One sequence as a source format holds it.

    Attributes:
        name: sequence name.
        poses_2d: ``(T, J2, 2)`` pixels (with ``image_size``) or normalized screen coordinates;
            NaN where the detector found nothing.
        layout_2d: keypoint layout of ``poses_2d`` (a name in :data:`d3prefine.keypoints.MAPPINGS`).
        poses_3d: ``(T, J3, 3)`` in the source's units and axes.
        layout_3d: keypoint layout of ``poses_3d``.
        metres_per_unit: metres per source 3D unit, ``None`` for normalised or arbitrary units
            (a scale must then be given).
        axes: ``(3, 3)``: camera-frame direction = ``axes @`` source direction.
        image_size: ``(width, height)`` pixels of ``poses_2d``.
        fps: frames per second, if the source says.
        gt_3d: ``(T, J3, 3)`` ground truth in the same units, axes and layout, if the source has it.
        details: JSON-ready facts for the provenance (selected person, sequence key, ...), also
            what the writer needs to find the sequence again.
    """

    name: str
    poses_2d: np.ndarray
    layout_2d: str
    poses_3d: np.ndarray
    layout_3d: str
    metres_per_unit: float | None
    axes: np.ndarray = field(default_factory=lambda: CAMERA_AXES)
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    gt_3d: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    """Decoded JSON of ``path``; :class:`InputError` naming the file if it is missing or invalid."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read file ({error})") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to read") from None


def read_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` array (never unpickled); :class:`InputError` otherwise."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except ValueError as error:
        if "pickle" in str(error):
            raise InputError(f"{path}: holds a pickled object array, expected a numeric array") from None
        raise InputError(f"{path}: not a valid .npy file ({error})") from None
    except (OSError, EOFError) as error:
        raise InputError(f"{path}: not a valid .npy file ({error})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "iuf":
        raise InputError(f"{path}: expected a numeric array, got {getattr(array, 'dtype', type(array).__name__)}")
    return array


def check_shape(array: np.ndarray, joints: int | None, channels: int, what: str) -> np.ndarray:
    """``array`` as it is (an ndarray, not copied) if it is ``(T, J, channels)`` with ``T >= 1``
    (``J = joints`` unless ``None``), else :class:`InputError`."""
    array = np.asarray(array)
    shape = f"(T, {joints if joints is not None else 'J'}, {channels})"
    if array.ndim != 3 or array.shape[2] != channels or (joints is not None and array.shape[1] != joints) or len(array) == 0:
        raise InputError(f"{what}: expected shape {shape}, got {array.shape}")
    return array


def expect_shape(array: np.ndarray, joints: int | None, channels: int, what: str) -> np.ndarray:
    """``array`` as float64 ``(T, J, channels)`` (:func:`check_shape`), else :class:`InputError`."""
    return check_shape(array, joints, channels, what).astype(np.float64)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` (a temporary file of :func:`d3prefine.io.atomic_file`)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def frame_number(image_id: Any, where: str) -> int:
    """Frame index of an ``image_id`` such as ``12``, ``"12.jpg"`` or ``"frame_000012.png"``."""
    if isinstance(image_id, int):
        return image_id
    digits = "".join(ch if ch.isdigit() else " " for ch in Path(str(image_id)).stem).split()
    if not digits:
        raise InputError(f"{where}: image_id {image_id!r} holds no frame number")
    return int(digits[-1])


def write_npy_like(source: Path, details: dict, poses_3d: np.ndarray, output: Path) -> None:
    """``poses_3d`` as an ``.npy`` with the dtype of the ``source`` array (float32 if it is gone)."""
    dtype = read_npy(source).dtype if source.is_file() else np.float32
    with open(output, "wb") as handle:
        np.save(handle, poses_3d.astype(dtype))
