"""MotionBERT in-the-wild output: ``X3D.npy`` with its 2D from AlphaPose (Halpe-26 JSON).

* ``X3D.npy``: ``(T, 17, 3)`` Human3.6M-17 joints in MotionBERT's normalised units (the 2D of
  the clip scaled to [-1, 1], so a person is about 2 units tall; x right, y down, z depth).
  It has no physical scale: ``--scale-to-height METRES`` sets it (see README).
* AlphaPose ``alphapose-results.json``: a list of detections ``{"image_id": "12.jpg",
  "keypoints": [x, y, score] * 26, "score": s, "idx": track}``. Per frame the detection of
  track ``--person`` is taken, else the highest-scoring one. Frames without a detection are left
  out, as MotionBERT does, so the detected frames must be as many as ``X3D.npy``'s. Pixels; needs
  ``--image-size``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.formats.base import SourceData, expect_shape, frame_number, read_json, read_npy, write_npy_like
from d3prefine.formats.options import ConvertOptions
from d3prefine.keypoints import HALPE_26
from d3prefine.skeleton import H36M_17

SUFFIXES = (".npy",)


def read_alphapose(path: Path, person: int | None) -> tuple[np.ndarray, list[int]]:
    """``(F, 26, 2)`` pixels of one detection per detected frame, and the frame numbers."""
    detections = read_json(path)
    if not isinstance(detections, list) or not detections:
        raise InputError(f"{path}: expected AlphaPose results, a non-empty JSON list of detections")
    best: dict[int, tuple[float, list]] = {}
    for k, det in enumerate(detections):
        if not isinstance(det, dict) or "image_id" not in det or not isinstance(det.get("keypoints"), list):
            raise InputError(f"{path}: detection {k}: expected an object with 'image_id' and 'keypoints'")
        if len(det["keypoints"]) != HALPE_26.num_source * 3:
            raise InputError(
                f"{path}: detection {k}: expected {HALPE_26.num_source * 3} keypoint values (Halpe-26 x, y, score), got {len(det['keypoints'])}"
            )
        if person is not None and det.get("idx") != person:
            continue
        frame, score = frame_number(det["image_id"], f"{path}: detection {k}"), float(det.get("score", 0.0))
        if frame not in best or score > best[frame][0]:
            best[frame] = (score, det["keypoints"])
    if not best:
        raise InputError(f"{path}: no detection of person (idx) {person}")
    frames = sorted(best)
    try:
        keypoints = np.array([best[f][1] for f in frames], dtype=np.float64).reshape(len(frames), HALPE_26.num_source, 3)
    except (TypeError, ValueError):
        raise InputError(f"{path}: expected numeric keypoints") from None
    return keypoints[..., :2], frames


def read(options: ConvertOptions) -> list[SourceData]:
    """One sequence: ``--3d X3D.npy`` with ``--2d`` AlphaPose JSON."""
    path_3d = options.required("poses_3d", "--3d", "MotionBERT needs its X3D.npy")
    path_2d = options.required("poses_2d", "--2d", "MotionBERT needs the AlphaPose JSON it was run on")
    options.image_size_for(path_2d, "AlphaPose results do not hold the image size")
    poses_3d = expect_shape(read_npy(path_3d), H36M_17.num_joints, 3, str(path_3d))
    poses_2d, frames = read_alphapose(path_2d, options.person)
    if len(frames) != len(poses_3d):
        raise InputError(f"{path_2d}: {len(frames)} frames with a detection, but {path_3d} has {len(poses_3d)} frames")
    return [
        SourceData(
            name=options.name or path_3d.stem,
            poses_2d=poses_2d,
            layout_2d=HALPE_26.name,
            poses_3d=poses_3d,
            layout_3d=H36M_17.name,
            metres_per_unit=None,
            image_size=options.image_size,
            fps=options.fps,
            details={"person": options.person, "first_frame": frames[0], "last_frame": frames[-1]},
        )
    ]


#: ``poses_3d`` ``(T, 17, 3)`` (MotionBERT units) back as an ``.npy`` of the source's dtype.
write = write_npy_like
