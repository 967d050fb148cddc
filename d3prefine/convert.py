"""Other estimators' files to d3prefine pose sequences, and refined poses back to them.

    sequences = convert(SourceFormat.MOTIONBERT, ConvertOptions(poses_3d=..., poses_2d=..., image_size=(1920, 1080)),
                        scale_to_height=1.6)
    export_to_source(refined_sequence, "X3D.refined.npy")

Converting maps both keypoint layouts to ``h36m17`` (:mod:`d3prefine.keypoints`), turns the 3D
into metres in the camera frame (``metres = scale * axes @ source``) and records in the
provenance (key ``convert``) the format, input files, options, both layout mappings with every
synthesised joint, the scale and the axes. Exporting reads that record and writes the refined
poses in the source's layout, units and axes into a file shaped like the source file; it
re-reads the source 3D only when its layout has keypoints ``h36m17`` lacks (they follow their
anchor joints), and never unpickles.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from d3prefine.checks import body_height
from d3prefine.errors import InputError
from d3prefine.formats import FORMATS, SourceFormat
from d3prefine.formats.base import SourceData
from d3prefine.formats.options import ConvertOptions, Units
from d3prefine.io import PoseSequence, atomic_file, check_output_path
from d3prefine.keypoints import get_mapping
from d3prefine.skeleton import H36M_17

PROVENANCE_KEY = "convert"
_PATH_OPTIONS = ("poses_2d", "poses_3d", "gt", "cameras")


def _options_record(options: ConvertOptions) -> dict:
    record = asdict(options)
    for key in _PATH_OPTIONS:
        record[key] = None if record[key] is None else str(Path(record[key]).resolve())
    record["units"] = options.units.value
    record["image_size"] = list(options.image_size) if options.image_size else None
    return record


def _options_from_record(record: dict) -> ConvertOptions:
    values = dict(record)
    for key in _PATH_OPTIONS:
        values[key] = None if values[key] is None else Path(values[key])
    values["units"] = Units(values["units"])
    values["image_size"] = tuple(values["image_size"]) if values["image_size"] else None
    return ConvertOptions(**values)


def _scale(source: SourceData, camera_3d: np.ndarray, scale_to_height: float | None) -> float:
    """Metres per source unit: from ``scale_to_height`` (body height in metres), else the source's unit."""
    if scale_to_height is not None:
        if not scale_to_height > 0:
            raise ValueError(f"scale_to_height must be > 0, got {scale_to_height}")
        height = body_height(camera_3d)
        if not np.isfinite(height) or height <= 0:
            raise InputError(f"sequence {source.name!r}: cannot measure the body height of poses_3d to scale it")
        return scale_to_height / height
    if source.metres_per_unit is None:
        raise InputError(
            f"sequence {source.name!r}: the 3D is in normalised units without a physical scale; "
            "give --scale-to-height METRES (head top to ankle along the skeleton, about 0.93 x standing height)"
        )
    return source.metres_per_unit


def to_sequence(fmt: SourceFormat, options: ConvertOptions, source: SourceData, scale_to_height: float | None = None) -> PoseSequence:
    """One :class:`SourceData` as an ``h36m17`` pose sequence in metres, camera frame (NaN kept)."""
    if len(source.poses_2d) != len(source.poses_3d):
        raise InputError(f"sequence {source.name!r}: the 2D has {len(source.poses_2d)} frames, the 3D {len(source.poses_3d)}; expected the same frames")
    map_2d, map_3d = get_mapping(source.layout_2d), get_mapping(source.layout_3d)
    camera = map_3d.apply(source.poses_3d) @ np.asarray(source.axes).T
    scale = _scale(source, camera, scale_to_height)
    gt = None if source.gt_3d is None else (map_3d.apply(source.gt_3d) @ np.asarray(source.axes).T) * scale
    record = {
        "format": fmt.value,
        "options": _options_record(options),
        "layout_2d": map_2d.describe(),
        "layout_3d": map_3d.describe(),
        "source_joints_3d": source.poses_3d.shape[1],
        "metres_per_unit": scale,
        "scale_to_height": scale_to_height,
        "axes": np.asarray(source.axes).tolist(),
        **source.details,
    }
    return PoseSequence(
        name=source.name,
        poses_2d=map_2d.apply(source.poses_2d).astype(np.float32),
        poses_3d=(camera * scale).astype(np.float32),
        gt_3d=None if gt is None else gt.astype(np.float32),
        image_size=source.image_size,
        fps=source.fps,
        provenance={PROVENANCE_KEY: record},
    )


def convert(fmt: SourceFormat, options: ConvertOptions, *, scale_to_height: float | None = None) -> list[PoseSequence]:
    """Read ``fmt`` files named in ``options`` into ``h36m17`` sequences (metres, camera frame)."""
    return [to_sequence(fmt, options, source, scale_to_height) for source in FORMATS[SourceFormat(fmt)].read(options)]


def export_to_source(
    seq: PoseSequence, output: str | os.PathLike, *, key: str = "poses_3d_refined", source: str | os.PathLike | None = None,
    overwrite: bool = False, inputs: tuple = (),
) -> Path:
    """Write ``seq``'s ``key`` array back in the format, layout, units and axes it was converted from.

    Args:
        seq: a sequence made by :func:`convert` (then refined).
        output: the file to write (atomically); never one of ``inputs`` or the source file.
        key: the 3D array to export.
        source: the source 3D file, if it moved since the conversion (default: the recorded path).

    Returns:
        The output path.

    Raises:
        InputError: the sequence was not converted by d3prefine, the array is missing, or the
            source file is gone or no longer holds the sequence.
    """
    record = seq.provenance.get(PROVENANCE_KEY)
    if not isinstance(record, dict) or "options" not in record:
        raise InputError(f"sequence {seq.name!r}: not made by 'd3prefine convert' (no 'convert' provenance): export --to csv or bvh instead")
    poses = getattr(seq, key, None)
    if poses is None:
        raise InputError(f"sequence {seq.name!r}: missing key {key!r} to export")
    fmt = SourceFormat(record["format"])
    options = _options_from_record(record["options"])
    if source is not None:
        options = replace(options, poses_3d=Path(source))
    # back to source units and axes (axes is a rotation): source = axes^T @ camera / scale
    moved = (np.asarray(poses, dtype=np.float64) / record["metres_per_unit"]) @ np.asarray(record["axes"])
    mapping = get_mapping(record["layout_3d"]["source_layout"])
    if mapping.name != H36M_17.name:  # keypoints h36m17 lacks follow their anchors: re-read the source (never unpickled here)
        original = FORMATS[fmt].read(replace(options, name=seq.name, allow_pickle=False))[0]
        moved = mapping.follow(original.poses_3d, mapping.apply(original.poses_3d), moved)
    output = Path(output)
    check_output_path(output, overwrite=overwrite, inputs=[*inputs, options.poses_3d])
    with atomic_file(output) as temp:
        FORMATS[fmt].write(options.poses_3d, record, moved, temp)
    return output
