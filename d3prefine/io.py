"""Pose files: the :class:`PoseSequence` data class and its ``.npz`` / HDF5 reader and writer.

Layouts on disk (see README "File format"):

* ``.npz`` with one sequence: arrays at top level (``poses_2d``, ``poses_3d``, ``gt_3d``,
  ``poses_3d_refined``, ``uncertainty``) and metadata as small arrays: ``name``, ``units``,
  ``joint_layout`` and ``provenance`` (a JSON object) as 0-d unicode arrays, ``fps`` as a 0-d
  float, ``image_size`` as ``(2,)`` integers ``(width, height)``. No object arrays, never unpickled.
* ``.npz`` with several sequences: the same keys prefixed ``<name>/`` (the prefix is the name).
* HDF5 (``.h5``, ``.hdf5``): one group per sequence (the group name is the sequence name),
  arrays as datasets and metadata as group attributes. A file whose arrays lie at the top level
  is read as a single sequence (named by a root ``name`` attribute, else the file stem).

Every loaded sequence is validated; problems raise :class:`InputError` with a one-line
message naming the file, the sequence, the key and what was expected versus found.
Writing is atomic and never replaces an input file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from d3prefine.errors import InputError, OutputError
from d3prefine.outputfile import atomic_file
from d3prefine.skeleton import DEFAULT_LAYOUT, JointLayout, get_layout

if TYPE_CHECKING:  # h5py is imported where HDF5 is read or written: the CLI starts faster
    import h5py

#: Pose arrays: key -> trailing dimensions after ``(T, J)``.
ARRAY_DIMS: dict[str, tuple[int, ...]] = {
    "poses_2d": (2,),
    "poses_3d": (3,),
    "gt_3d": (3,),
    "poses_3d_refined": (3,),
    "uncertainty": (),
    "filled": (),
}
#: Boolean arrays (all others are float): ``filled`` marks what ``refine --fill`` interpolated.
MASK_ARRAYS = ("filled",)
REQUIRED_ARRAYS = ("poses_2d", "poses_3d")
POSE_3D_ARRAYS = ("poses_3d", "gt_3d", "poses_3d_refined")
#: Arrays that may hold NaN gaps (``load_poses(allow_nan=True)``, :func:`fill_gaps`).
GAP_ARRAYS = ("poses_2d", "poses_3d")
METADATA_KEYS = ("fps", "units", "joint_layout", "image_size", "provenance")
#: Plausible human bone lengths in metres; used to catch millimetre and centimetre files.
BONE_RANGE_M = (0.05, 0.6)
#: Normalized screen coordinates stay within a few units; larger 2D values are pixels.
MAX_NORMALIZED_2D = 10.0
#: Largest accepted image side in pixels (``image_size``).
MAX_IMAGE_SIDE = 1_000_000
#: Largest magnitude accepted in a 3D array (metres) and in ``poses_2d`` (pixels or normalized):
#: anything larger is a damaged file and would overflow the float32 arithmetic downstream.
MAX_ABS_3D_M = 1e4
MAX_ABS_2D = 1e7
#: Deepest nesting of lists and objects accepted in ``provenance``.
MAX_PROVENANCE_DEPTH = 64
#: Largest total size in bytes of the arrays of one pose file, as its headers declare them (npz
#: members uncompressed, HDF5 datasets): checked before anything is read, so a damaged or hostile
#: file cannot make a reader allocate more. 2 GiB holds 10 million frames of ``(17, 3)`` float32.
MAX_FILE_BYTES = 2 * 1024**3


def valid_sequence_name(name: str) -> bool:
    """Whether ``name`` can name a sequence in every format: non-empty, no ``/`` or NUL, not ``.`` or ``..``."""
    return bool(name) and "/" not in name and "\x00" not in name and name not in (".", "..")


def _json_depth(value: Any) -> int:
    """Nesting depth of lists and objects in decoded JSON (0 for a scalar), without recursion."""
    depth, level = 0, [node for node in [value] if isinstance(node, (dict, list))]
    while level:
        depth += 1
        children = [item for node in level for item in (node.values() if isinstance(node, dict) else node)]
        level = [node for node in children if isinstance(node, (dict, list))]
    return depth


class PoseFormat(str, Enum):
    """On-disk container of a pose file, chosen by its suffix."""

    NPZ = "npz"
    HDF5 = "hdf5"


SUFFIXES: dict[str, PoseFormat] = {".npz": PoseFormat.NPZ, ".h5": PoseFormat.HDF5, ".hdf5": PoseFormat.HDF5}


@dataclass
class PoseSequence:
    """One pose sequence of T frames and J joints (``J = layout.num_joints``).

    Attributes:
        name: sequence name (unique within a file).
        poses_2d: ``(T, J, 2)`` float32; pixels (x right, y down) if ``image_size`` is set,
            else normalized screen coordinates.
        poses_3d: ``(T, J, 3)`` float32, metres, camera frame (the estimator's output).
        gt_3d: ``(T, J, 3)`` float32, metres, camera frame; ground truth.
        poses_3d_refined: ``(T, J, 3)`` float32, metres; written by ``d3prefine refine``.
        uncertainty: ``(T, J)`` float32, metres; per-joint std over refinement samples.
        filled: ``(T, J)`` bool; the joints of the frames ``refine --fill`` interpolated (NaN in
            ``poses_2d`` or ``poses_3d``, which keep their NaN). NaN there is valid on loading.
        image_size: ``(width, height)`` in pixels.
        fps: frames per second.
        units: unit of the 3D arrays; only ``"m"`` is accepted.
        joint_layout: name of a registered :class:`~d3prefine.skeleton.JointLayout`.
        provenance: JSON-serializable description of who produced the file.
    """

    name: str
    poses_2d: np.ndarray
    poses_3d: np.ndarray
    gt_3d: np.ndarray | None = None
    poses_3d_refined: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    filled: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    units: str = "m"
    joint_layout: str = DEFAULT_LAYOUT
    provenance: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return len(self.poses_3d)

    @property
    def layout(self) -> JointLayout:
        """The :class:`JointLayout` named by ``joint_layout``."""
        return get_layout(self.joint_layout)

    def arrays(self) -> dict[str, np.ndarray]:
        """The pose arrays that are present, by key, in ``ARRAY_DIMS`` order."""
        return {key: getattr(self, key) for key in ARRAY_DIMS if getattr(self, key) is not None}


def pose_format(path: Path) -> PoseFormat | None:
    """The container format of ``path`` from its suffix (case-insensitive), or ``None``."""
    return SUFFIXES.get(Path(path).suffix.lower())


# ---------------------------------------------------------------------------------------------
# Validation: raw items (arrays and metadata read from a file) -> PoseSequence
# ---------------------------------------------------------------------------------------------


def _as_text(value: Any, where: str, key: str) -> str:
    """A string stored as a 0-d unicode/bytes array (npz) or a string attribute (HDF5)."""
    array = np.asarray(value)
    if array.ndim == 0 and array.dtype.kind == "U":
        return str(array)
    if array.ndim == 0 and array.dtype.kind == "S":
        return bytes(array).decode("utf-8", errors="replace")
    raise InputError(f"{where}: key {key!r}: expected a string, got {array.dtype} array of shape {array.shape}")


def _decode_metadata(items: dict[str, Any], where: str) -> dict[str, Any]:
    """Decode and check the metadata entries of ``items`` into PoseSequence keyword arguments."""
    meta: dict[str, Any] = {}
    if "units" in items:
        meta["units"] = _as_text(items["units"], where, "units")
        if meta["units"] != "m":
            raise InputError(
                f"{where}: key 'units': expected 'm' (metres), got {meta['units']!r}; convert the 3D arrays to metres"
            )
    if "joint_layout" in items:
        meta["joint_layout"] = _as_text(items["joint_layout"], where, "joint_layout")
    if "fps" in items:
        fps = np.asarray(items["fps"])
        if fps.ndim != 0 or fps.dtype.kind not in "iuf" or not np.isfinite(fps) or fps <= 0:
            raise InputError(f"{where}: key 'fps': expected a positive number, got {fps.tolist()!r} ({fps.dtype})")
        meta["fps"] = float(fps)
    if "image_size" in items:
        size = np.asarray(items["image_size"])
        integral = size.dtype.kind in "iu" or (
            size.dtype.kind == "f" and bool(np.isfinite(size).all()) and np.array_equal(size, np.round(size))
        )
        if size.shape != (2,) or not integral or (size <= 0).any() or (size > MAX_IMAGE_SIDE).any():
            raise InputError(
                f"{where}: key 'image_size': expected 2 positive integers (width, height) up to {MAX_IMAGE_SIDE:,} pixels, "
                f"got {size.tolist()!r} ({size.dtype})"
            )
        meta["image_size"] = (int(size[0]), int(size[1]))
    if "provenance" in items:
        text = _as_text(items["provenance"], where, "provenance")
        try:
            provenance = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: key 'provenance': expected a JSON object, got invalid JSON ({error.msg})") from None
        except RecursionError:
            raise InputError(f"{where}: key 'provenance': expected a JSON object, got JSON nested too deeply to read") from None
        if not isinstance(provenance, dict):
            raise InputError(f"{where}: key 'provenance': expected a JSON object, got {type(provenance).__name__}")
        if _json_depth(provenance) > MAX_PROVENANCE_DEPTH:
            raise InputError(f"{where}: key 'provenance': expected a JSON object nested at most {MAX_PROVENANCE_DEPTH} levels deep")
        meta["provenance"] = provenance
    return meta


def _check_array(value: Any, key: str, layout: JointLayout, where: str) -> np.ndarray:
    """Check dtype and shape ``(T, J, *ARRAY_DIMS[key])`` of one pose array; return it as float32
    (bool for :data:`MASK_ARRAYS`)."""
    array = np.asarray(value)
    expected = "(" + ", ".join(["T", str(layout.num_joints), *map(str, ARRAY_DIMS[key])]) + ")"
    if key in MASK_ARRAYS and array.dtype.kind != "b":
        raise InputError(f"{where}: key {key!r}: expected a boolean array {expected}, got dtype {array.dtype}")
    if key not in MASK_ARRAYS and array.dtype.kind != "f":
        raise InputError(f"{where}: key {key!r}: expected a floating-point array {expected}, got dtype {array.dtype}")
    if array.ndim != 2 + len(ARRAY_DIMS[key]) or array.shape[2:] != ARRAY_DIMS[key]:
        raise InputError(f"{where}: key {key!r}: expected shape {expected}, got {array.shape}")
    if array.shape[1] != layout.num_joints:
        raise InputError(
            f"{where}: key {key!r}: expected {layout.num_joints} joints for layout {layout.name!r} "
            f"(shape {expected}), got {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=bool if key in MASK_ARRAYS else np.float32)


def _check_finite(array: np.ndarray, key: str, where: str, allow_nan: bool, marked: np.ndarray | None) -> None:
    """Refuse inf, values beyond the plausible range, and NaN unless ``allow_nan`` or ``marked``
    ``(T, J)`` (the ``filled`` mask) marks its joint and frame."""
    infinite = int(np.isinf(array).sum())
    if infinite:
        raise InputError(f"{where}: key {key!r}: expected finite values, got {infinite} inf of {array.size}")
    nan = np.isnan(array)
    missing = int((nan & ~marked[..., None]).sum()) if marked is not None else int(nan.sum())
    if missing and not allow_nan:
        unmarked = " not marked in 'filled'" if marked is not None else ""
        raise InputError(f"{where}: key {key!r}: expected finite values, got {missing} NaN{unmarked} of {array.size}")
    limit = MAX_ABS_2D if key == "poses_2d" else MAX_ABS_3D_M
    largest = float(np.abs(array[~nan]).max(initial=0.0))
    if largest > limit:
        raise InputError(f"{where}: key {key!r}: expected values within ±{limit:g}, got {largest:.3g} (a damaged file?)")


def _check_metres(poses: np.ndarray, key: str, layout: JointLayout, where: str) -> None:
    """Reject 3D poses ``(T, J, 3)`` whose median bone length is not that of a human in metres."""
    parents, children = np.array(layout.bones).T
    lengths = np.linalg.norm(poses[:, children] - poses[:, parents], axis=-1)
    if np.isnan(lengths).all():
        return
    median = float(np.nanmedian(lengths))
    low, high = BONE_RANGE_M
    if low <= median <= high:
        return
    if median >= 50.0:
        looks = "looks like millimetres"
    elif 5.0 <= median < 50.0:
        looks = "looks like centimetres"
    else:
        looks = "has implausible bone lengths"
    raise InputError(
        f"{where}: key {key!r} {looks} (median bone {median:.1f}), expected metres (human bones {low}-{high} m)"
    )


def _build_sequence(name: str, items: dict[str, Any], where: str, *, allow_nan: Collection[str]) -> PoseSequence:
    """Validate raw ``items`` (arrays and metadata of one sequence) and build the sequence."""
    unknown = sorted(set(items) - set(ARRAY_DIMS) - set(METADATA_KEYS))
    if unknown:
        known = ", ".join([*ARRAY_DIMS, *METADATA_KEYS])
        raise InputError(f"{where}: unknown key {unknown[0]!r} (expected keys: {known})")
    missing = [key for key in REQUIRED_ARRAYS if key not in items]
    if missing:
        raise InputError(f"{where}: missing key {missing[0]!r} (required: {', '.join(REQUIRED_ARRAYS)})")
    meta = _decode_metadata(items, where)
    try:
        layout = get_layout(meta.get("joint_layout", DEFAULT_LAYOUT))
    except InputError as error:
        raise InputError(f"{where}: key 'joint_layout': {error}") from None
    arrays = {key: _check_array(items[key], key, layout, where) for key in ARRAY_DIMS if key in items}
    frames = len(arrays["poses_3d"])
    if frames == 0:
        raise InputError(f"{where}: key 'poses_3d': empty sequence (T=0), expected at least 1 frame")
    for key, array in arrays.items():
        if len(array) != frames:
            raise InputError(f"{where}: key {key!r}: expected {frames} frames like 'poses_3d', got {len(array)}")
    for key, array in arrays.items():
        if key not in MASK_ARRAYS:
            _check_finite(array, key, where, key in allow_nan, arrays.get("filled") if key in GAP_ARRAYS else None)
    for key in POSE_3D_ARRAYS:
        if key in arrays:
            _check_metres(arrays[key], key, layout, where)
    if "uncertainty" in arrays and (arrays["uncertainty"] < 0).any():
        raise InputError(f"{where}: key 'uncertainty': expected standard deviations >= 0, got negative values")
    if "image_size" not in meta:
        largest = float(np.nanmax(np.abs(arrays["poses_2d"]), initial=0.0))
        if largest > MAX_NORMALIZED_2D:
            raise InputError(
                f"{where}: key 'poses_2d' looks like pixels (max |value| {largest:.1f}) but 'image_size' is missing; "
                "expected normalized screen coordinates or an image_size (width, height)"
            )
    return PoseSequence(name=name, **arrays, **meta)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _group_npz_keys(items: dict[str, np.ndarray], path: Path) -> list[tuple[str, dict[str, Any], str]]:
    """Split npz members into ``(name, items, where)`` per sequence (top level or ``<name>/<key>``)."""
    prefixed = [key for key in items if "/" in key]
    if not prefixed:
        top = dict(items)
        name = _as_text(top.pop("name"), str(path), "name") if "name" in top else path.stem
        return [(name, top, f"{path}: sequence {name!r}")]
    if len(prefixed) != len(items):
        plain = next(key for key in items if "/" not in key)
        raise InputError(f"{path}: key {plain!r}: mixes top-level keys with '<sequence>/<key>' keys, expected one style")
    groups: dict[str, dict[str, Any]] = {}
    for key, value in items.items():
        name, _, member = key.partition("/")
        groups.setdefault(name, {})[member] = value
    return [(name, members, f"{path}: sequence {name!r}") for name, members in groups.items()]


def _size_text(nbytes: int) -> str:
    """``nbytes`` for a message: GiB, MiB or bytes."""
    if nbytes >= 1024**3:
        return f"{nbytes / 1024**3:,.1f} GiB"
    return f"{nbytes / 1024**2:.1f} MiB" if nbytes >= 1024**2 else f"{nbytes:,} bytes"


def _check_total_size(where: str, key: str, nbytes: int, total: int) -> int:
    """``total + nbytes``; :class:`InputError` if that is more than :data:`MAX_FILE_BYTES`."""
    if total + nbytes > MAX_FILE_BYTES:
        raise InputError(
            f"{where}: key {key!r}: declares {_size_text(nbytes)} of array data, more than the "
            f"{_size_text(MAX_FILE_BYTES)} a pose file may hold (damaged or hostile file?)"
        )
    return total + nbytes


def _check_npz_sizes(path: Path, archive: zipfile.ZipFile) -> None:
    """Check the sizes every member of an npz archive declares before any array is read: the
    uncompressed sizes in the zip headers against :data:`MAX_FILE_BYTES`, and each ``.npy`` header's
    shape and dtype against the bytes its member holds (numpy allocates the declared shape first)."""
    total = 0
    for info in archive.infolist():
        key = info.filename.removesuffix(".npy")
        total = _check_total_size(str(path), key, info.file_size, total)
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise InputError(f"{path}: key {key!r}: unsupported .npy format version {version[0]}.{version[1]}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
            if dtype.hasobject:  # pickled: refused when it is read, never unpickled
                continue
            declared = math.prod(shape) * dtype.itemsize
            if member.tell() + declared > info.file_size:
                raise InputError(
                    f"{path}: key {key!r}: header declares shape {tuple(shape)} {dtype} "
                    f"({_size_text(declared)}) but the archive holds {_size_text(info.file_size)} for it "
                    "(corrupt or truncated file)"
                )


def _read_npz(path: Path, keep: Callable[[str], bool] | None = None) -> list[tuple[str, dict[str, Any], str]]:
    """Raw ``(name, items, where)`` per sequence; with ``keep``, the members whose key it rejects
    are listed as ``None`` without being read."""
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a valid npz archive (corrupt or truncated file)")
    items: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            _check_npz_sizes(path, archive)
        with np.load(path, allow_pickle=False) as npz:
            for key in npz.files:
                if keep is not None and not keep(key.rpartition("/")[2]):
                    items[key] = None
                    continue
                try:
                    items[key] = npz[key]
                except ValueError as error:
                    if "pickle" not in str(error):
                        raise
                    raise InputError(
                        f"{path}: key {key!r}: holds a pickled object array, which is never loaded "
                        "(expected numeric arrays and plain strings)"
                    ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, MemoryError, OverflowError) as error:
        raise InputError(f"{path}: not a valid npz archive (corrupt or truncated file: {type(error).__name__} {error})") from None
    if not items:
        raise InputError(f"{path}: empty npz archive, expected keys {', '.join(REQUIRED_ARRAYS)}")
    return _group_npz_keys(items, path)


def _hdf5_nodes(group: h5py.Group, where: str) -> list[tuple[str, Any]]:
    """``(name, node)`` of the members of ``group``; a link to nothing (soft or external) is an error."""
    nodes = list(group.items())
    broken = next((key for key, node in nodes if node is None), None)
    if broken is not None:
        raise InputError(f"{where}: key {broken!r}: a link to a missing object (soft or external link)")
    return nodes


def _hdf5_items(group: h5py.Group, where: str, total: list[int], keep: Callable[[str], bool] | None) -> dict[str, Any]:
    """Datasets and attributes of one HDF5 group as raw items; ``total[0]``: the bytes the file's
    datasets read so far declare (each is checked against :data:`MAX_FILE_BYTES` before it is read).
    A dataset whose key ``keep`` rejects is listed as ``None`` without being read."""
    import h5py

    items: dict[str, Any] = {}
    for key, node in _hdf5_nodes(group, where):
        if not isinstance(node, h5py.Dataset):
            raise InputError(f"{where}: key {key!r}: expected a dataset, got a group")
        if keep is not None and not keep(key):
            items[key] = None
            continue
        total[0] = _check_total_size(where, key, math.prod(node.shape or ()) * node.dtype.itemsize, total[0])
        items[key] = node[()]
    for key, value in group.attrs.items():
        if key in items:
            raise InputError(f"{where}: key {key!r}: present both as a dataset and as an attribute")
        items[key] = value
    return items


def _read_hdf5(path: Path, keep: Callable[[str], bool] | None = None) -> list[tuple[str, dict[str, Any], str]]:
    """Raw ``(name, items, where)`` per sequence (``keep`` as in :func:`_hdf5_items`)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            nodes = _hdf5_nodes(handle, str(path))
            datasets = [key for key, node in nodes if isinstance(node, h5py.Dataset)]
            total = [0]
            if datasets:
                items = _hdf5_items(handle, str(path), total, keep)
                name = _as_text(items.pop("name"), str(path), "name") if "name" in items else path.stem
                return [(name, items, f"{path}: sequence {name!r}")]
            sequences = [
                (name, _hdf5_items(group, f"{path}: sequence {name!r}", total, keep), f"{path}: sequence {name!r}")
                for name, group in nodes
            ]
    except (OSError, RuntimeError, KeyError, ValueError, MemoryError, OverflowError) as error:
        raise InputError(f"{path}: not a valid HDF5 file (corrupt or truncated file: {error})") from None
    if not sequences:
        raise InputError(f"{path}: empty HDF5 file, expected one group per sequence or top-level datasets")
    return sequences


def load_poses(path: str | os.PathLike, *, allow_nan: bool | Collection[str] = False) -> list[PoseSequence]:
    """Read and validate every sequence of a pose file.

    Args:
        path: ``.npz``, ``.h5`` or ``.hdf5`` file.
        allow_nan: ``True`` accepts NaN in ``poses_2d`` and ``poses_3d`` (missing detections) so
            that :func:`fill_gaps` can repair them; a collection names the arrays that may hold
            NaN (e.g. ``("gt_3d",)``). NaN that a ``filled`` mask marks is always accepted.

    Returns:
        The sequences in file order; arrays are float32.

    Raises:
        InputError: missing or unreadable file, unknown suffix, or any invalid content.
    """
    path = Path(path)
    raw = _read_raw(path)
    nan_keys = GAP_ARRAYS if allow_nan is True else () if allow_nan is False else tuple(allow_nan)
    return [_build_sequence(name, items, where, allow_nan=nan_keys) for name, items, where in raw]


@dataclass(frozen=True)
class SequenceMetadata:
    """The metadata of one sequence of a pose file (as in :class:`PoseSequence`), without its arrays."""

    name: str
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    units: str = "m"
    joint_layout: str = DEFAULT_LAYOUT
    provenance: dict = field(default_factory=dict)


def load_metadata(path: str | os.PathLike) -> list[SequenceMetadata]:
    """Read the metadata (:data:`METADATA_KEYS`) of every sequence of a pose file without reading
    or validating its pose arrays: a quick look at many large files (e.g. which estimator each
    holds). The metadata is checked as :func:`load_poses` checks it.

    Raises:
        InputError: missing or unreadable file, unknown suffix, invalid sequence names or metadata.
    """
    path = Path(path)
    raw = _read_raw(path, keep=lambda key: key in METADATA_KEYS or key == "name")
    return [
        SequenceMetadata(name, **_decode_metadata({key: items[key] for key in METADATA_KEYS if key in items}, where))
        for name, items, where in raw
    ]


def _read_raw(path: Path, keep: Callable[[str], bool] | None = None) -> list[tuple[str, dict[str, Any], str]]:
    """The checked file's raw ``(name, items, where)`` per sequence, names checked (``keep`` as in
    :func:`_read_npz`)."""
    fmt = pose_format(path)
    if fmt is None:
        raise InputError(f"{path}: unknown file suffix {path.suffix!r}, expected one of {', '.join(SUFFIXES)}")
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as error:  # e.g. a name too long for the file system
        raise InputError(f"{path}: cannot read file ({error.strerror})") from None
    if not exists:
        raise InputError(f"{path}: file not found")
    if not is_file:
        raise InputError(f"{path}: expected a file, got a directory or special file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read file (permission denied)")
    raw = _read_npz(path, keep) if fmt is PoseFormat.NPZ else _read_hdf5(path, keep)
    names = [name for name, _, _ in raw]
    invalid = next((name for name in names if not valid_sequence_name(name)), None)
    if invalid is not None:
        raise InputError(f"{path}: invalid sequence name {invalid!r}, expected a non-empty name without '/' or NUL, not '.' or '..'")
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate is not None:
        raise InputError(f"{path}: sequence {duplicate!r} appears more than once, expected unique names")
    return raw


# ---------------------------------------------------------------------------------------------
# Gap filling
# ---------------------------------------------------------------------------------------------


def _nan_runs(missing: np.ndarray) -> list[tuple[int, int]]:
    """``(start, length)`` of every run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def _fill_array(array: np.ndarray, max_gap: int, layout: JointLayout, where: str) -> tuple[np.ndarray, int]:
    """Fill NaN runs of ``array`` ``(T, J, C)`` along time; returns the new array and the count."""
    missing = np.isnan(array)
    if not missing.any():
        return array, 0
    filled = array.copy()
    frames = np.arange(len(array))
    for joint, coord in zip(*np.nonzero(missing.any(axis=0)), strict=True):
        gaps = missing[:, joint, coord]
        label = f"joint {joint} {layout.joint_names[joint]!r}, coordinate {'xyz'[coord]}"
        if gaps.all():
            raise InputError(f"{where}: all {len(array)} frames are NaN ({label}), nothing to interpolate from")
        start, length = max(_nan_runs(gaps), key=lambda run: run[1])
        if length > max_gap:
            raise InputError(
                f"{where}: NaN gap of {length} frames at frames {start}-{start + length - 1} ({label}), "
                f"longer than the longest gap to fill ({max_gap} frames)"
            )
        valid = ~gaps
        filled[gaps, joint, coord] = np.interp(frames[gaps], frames[valid], array[valid, joint, coord])
    return filled, int(missing.sum())


def fill_gaps(seq: PoseSequence, max_gap: int, *, file: str | os.PathLike | None = None) -> tuple[PoseSequence, int]:
    """Linearly interpolate short NaN gaps in ``poses_2d`` and ``poses_3d`` over time.

    Every joint coordinate is filled on its own: a run of NaN frames between two valid frames
    is interpolated linearly; a run at the start or end repeats the nearest valid value.

    Args:
        seq: a sequence, e.g. from ``load_poses(path, allow_nan=True)``.
        max_gap: longest run of consecutive NaN frames (per joint coordinate) to fill, >= 0.
        file: the file ``seq`` was read from, named in errors.

    Returns:
        ``(new_sequence, number_of_filled_values)``; ``seq`` itself is not modified. The new
        sequence's ``filled`` ``(T, J)`` marks the joints of the frames that had NaN in either
        array (``None`` if there was none).

    Raises:
        InputError: a gap is longer than ``max_gap`` or a joint coordinate is NaN in every frame.
    """
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    layout = seq.layout
    filled: dict[str, np.ndarray] = {}
    count = 0
    for key in GAP_ARRAYS:
        where = f"{'' if file is None else f'{file}: '}sequence {seq.name!r}: key {key!r}"
        filled[key], n = _fill_array(getattr(seq, key), max_gap, layout, where)
        count += n
    mask = np.isnan(seq.poses_2d).any(-1) | np.isnan(seq.poses_3d).any(-1)
    return replace(seq, **filled, filled=mask if mask.any() else None), count


def interpolated(seq: PoseSequence) -> PoseSequence:
    """``seq`` with the NaN its ``filled`` mask marks interpolated as :func:`fill_gaps` did for
    ``refine --fill``: the input the refinement was given (``seq`` itself without NaN)."""
    if not (np.isnan(seq.poses_2d).any() or np.isnan(seq.poses_3d).any()):
        return seq
    return fill_gaps(seq, seq.num_frames)[0]


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _encode(seq: PoseSequence) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Arrays (float32) and metadata (strings, numbers, small arrays) of a sequence as stored."""
    arrays = {
        key: np.ascontiguousarray(value, dtype=bool if key in MASK_ARRAYS else np.float32) for key, value in seq.arrays().items()
    }
    meta: dict[str, Any] = {
        "units": np.str_(seq.units),
        "joint_layout": np.str_(seq.joint_layout),
        "provenance": np.str_(json.dumps(seq.provenance)),
    }
    if seq.fps is not None:
        meta["fps"] = np.float64(seq.fps)
    if seq.image_size is not None:
        meta["image_size"] = np.asarray(seq.image_size, dtype=np.int64)
    return arrays, meta


def _write_npz(path: Path, sequences: Sequence[PoseSequence]) -> None:
    members: dict[str, np.ndarray] = {}
    for seq in sequences:
        arrays, meta = _encode(seq)
        prefix = "" if len(sequences) == 1 else f"{seq.name}/"
        if len(sequences) == 1:
            members["name"] = np.asarray(seq.name)
        members.update({prefix + key: np.asarray(value) for key, value in {**arrays, **meta}.items()})
    with open(path, "wb") as handle:
        np.savez(handle, **members)


def _write_hdf5(path: Path, sequences: Sequence[PoseSequence]) -> None:
    import h5py

    with h5py.File(path, "w", track_order=True) as handle:
        for seq in sequences:
            arrays, meta = _encode(seq)
            group = handle.create_group(seq.name, track_order=True)
            for key, array in arrays.items():
                group.create_dataset(key, data=array)
            for key, value in meta.items():
                group.attrs[key] = str(value) if isinstance(value, np.str_) else value


class FileSet:
    """Files compared by resolved path and by inode (hard links), indexed once: a batch that checks
    each of N outputs against all N inputs costs N look-ups, not N squared path resolutions."""

    def __init__(self, paths: Sequence[str | os.PathLike]) -> None:
        self._by_path: dict[Path, str | os.PathLike] = {}
        self._by_inode: dict[tuple[int, int], str | os.PathLike] = {}
        for source in paths:
            self._by_path.setdefault(Path(source).resolve(), source)
            identity = _inode(Path(source))
            if identity is not None:
                self._by_inode.setdefault(identity, source)

    def find(self, path: Path) -> str | os.PathLike | None:
        """The member that is ``path`` (same resolved path or same inode), else ``None``."""
        found = self._by_path.get(path.resolve())
        if found is None and self._by_inode:
            identity = _inode(path)
            found = None if identity is None else self._by_inode.get(identity)
        return found


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


def check_output_path(
    path: str | os.PathLike, *, overwrite: bool, inputs: Sequence[str | os.PathLike] | FileSet = ()
) -> None:
    """Raise :class:`OutputError` unless ``path`` may be written.

    It may not be any of ``inputs`` (compared after resolving links, and by inode; pass a
    :class:`FileSet` to check many outputs against the same inputs), may not exist unless
    ``overwrite``, and its directory must exist. :func:`save_poses` checks this itself; call it
    early to fail before a long computation.
    """
    path = Path(path)
    source = (inputs if isinstance(inputs, FileSet) else FileSet(inputs)).find(path)
    if source is not None:
        raise OutputError(f"{path}: refusing to write over input file {source}")
    try:
        is_dir, exists, parent_is_dir = path.is_dir(), path.exists(), path.parent.is_dir()
    except OSError as error:  # e.g. a name too long for the file system
        raise OutputError(f"{path}: cannot write ({error.strerror})") from None
    if is_dir:
        raise OutputError(f"{path}: is a directory, expected a file path")
    if exists and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    if not parent_is_dir:
        raise OutputError(f"{path}: directory {path.parent} does not exist")


def check_output_suffix(path: str | os.PathLike) -> PoseFormat:
    """The format a pose file ``path`` is written in; :class:`OutputError` for an unknown suffix."""
    fmt = pose_format(Path(path))
    if fmt is None:
        raise OutputError(f"{path}: unknown file suffix {Path(path).suffix!r}, expected one of {', '.join(SUFFIXES)}")
    return fmt


def save_poses(
    path: str | os.PathLike,
    sequences: Sequence[PoseSequence],
    *,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] | FileSet = (),
) -> None:
    """Write sequences to a ``.npz`` or HDF5 file atomically.

    The file is written to a temporary file in the same directory, fsynced and renamed over
    ``path``; on failure nothing is left behind. Whatever is written loads back equal with
    :func:`load_poses` (with ``allow_nan`` naming the arrays that hold NaN ``filled`` does not mark).

    Args:
        path: output file; its suffix picks the format.
        sequences: at least one; names unique, non-empty, without ``/``.
        overwrite: replace an existing file.
        inputs: files this output must never replace (the command's inputs).

    Raises:
        OutputError: invalid sequences, unknown suffix, ``path`` is an input or exists without
            ``overwrite``, its directory is missing or unwritable, or writing failed.
    """
    path = Path(path)
    fmt = check_output_suffix(path)
    if not sequences:
        raise OutputError(f"{path}: no sequences to write")
    names = [seq.name for seq in sequences]
    for name in names:
        if not valid_sequence_name(name) or names.count(name) > 1:
            raise OutputError(f"{path}: invalid sequence name {name!r}, expected unique non-empty names without '/' or NUL, not '.' or '..'")
    for seq in sequences:
        try:
            json.dumps(seq.provenance)
        except (TypeError, ValueError) as error:
            raise OutputError(
                f"{path}: sequence {seq.name!r}: key 'provenance': expected JSON-serializable data ({error})"
            ) from None
        arrays, meta = _encode(seq)
        try:
            _build_sequence(seq.name, {**arrays, **meta}, f"sequence {seq.name!r}", allow_nan=(*GAP_ARRAYS, "gt_3d"))
        except InputError as error:
            raise OutputError(f"{path}: refusing to write an invalid {error}") from None
    check_output_path(path, overwrite=overwrite, inputs=inputs)
    writer = _write_npz if fmt is PoseFormat.NPZ else _write_hdf5
    with atomic_file(path) as temp:
        try:
            writer(temp, sequences)
        except OSError as error:
            raise OutputError(f"{path}: writing failed ({error})") from None
