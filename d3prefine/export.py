"""Refined poses out of d3prefine: back to the source format, to CSV, or to BVH.

* ``source``: the format, joint layout, units and axes the file was converted from
  (:func:`d3prefine.convert.export_to_source`);
* ``csv``: one row per frame, ``frame`` then ``<joint>_x, <joint>_y, <joint>_z`` for every joint
  of the layout, metres, camera frame (x right, y down, z forward);
* ``bvh``: an animation on a skeleton with the sequence's mean bone lengths (:mod:`d3prefine.bvh`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import Enum
from pathlib import Path

import numpy as np

from d3prefine.bvh import poses_to_bvh
from d3prefine.convert import export_to_source
from d3prefine.errors import InputError
from d3prefine.io import PoseSequence, atomic_file, check_output_path

#: Frame rate written into a BVH when the sequence has none.
DEFAULT_BVH_FPS = 30.0


class ExportTarget(str, Enum):
    """What ``d3prefine export`` writes."""

    SOURCE = "source"
    CSV = "csv"
    BVH = "bvh"


def csv_text(poses: np.ndarray, joint_names: Sequence[str]) -> str:
    """CSV of ``poses`` ``(T, J, 3)``: a header, then ``frame, j0_x, j0_y, j0_z, ...`` per frame."""
    header = ",".join(["frame", *(f"{name}_{axis}" for name in joint_names for axis in "xyz")])
    rows = (f"{t}," + ",".join(f"{v:.6f}" for v in pose.reshape(-1)) for t, pose in enumerate(poses))
    return "\n".join([header, *rows]) + "\n"


def export_sequence(
    seq: PoseSequence,
    target: ExportTarget,
    output: str | os.PathLike,
    *,
    key: str = "poses_3d_refined",
    source: str | os.PathLike | None = None,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> Path:
    """Write the ``key`` array of ``seq`` as ``target`` to ``output`` (atomically); returns ``output``.

    Raises:
        InputError: the array is missing or holds NaN (CSV, BVH), or the source cannot be re-read.
        OutputError: ``output`` may not be written.
    """
    target = ExportTarget(target)
    if target is ExportTarget.SOURCE:
        return export_to_source(seq, output, key=key, source=source, overwrite=overwrite, inputs=tuple(inputs))
    poses = getattr(seq, key, None)
    if poses is None:
        raise InputError(f"sequence {seq.name!r}: missing key {key!r} to export")
    if np.isnan(poses).any():
        raise InputError(f"sequence {seq.name!r}: key {key!r} holds NaN; refine with --fill first")
    text = csv_text(poses, seq.layout.joint_names) if target is ExportTarget.CSV else poses_to_bvh(poses, seq.fps or DEFAULT_BVH_FPS, seq.layout)
    output = Path(output)
    check_output_path(output, overwrite=overwrite, inputs=inputs)
    with atomic_file(output) as temp:
        temp.write_text(text, encoding="utf-8")
    return output
