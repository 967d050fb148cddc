"""MMPose prediction JSON (``--save-predictions`` of its demos, MMPose 1.x).

Structure: ``{"meta_info": {...}, "instance_info": [{"frame_id": F, "instances": [{"keypoints":
[[x, y(, z)], ...], "keypoint_scores": [...], ...}, ...]}, ...]}``, one entry per frame.

* 3D (``body3d_pose_lifter_demo``): Human3.6M-17 joints in metres, stored in the demo's display
  axes ``k = -(x, z, y)`` of the camera frame (x right, y down, z forward); the demo may also
  shift ``k[2]`` so the lowest joint is at 0 (a vertical offset, kept as it is). The reader
  undoes the axes: ``x = -k0, y = -k2, z = -k1``.
* 2D: pixels; its layout is ``--layout-2d`` (the 3D demo's 2D stage detects COCO-17); needs ``--image-size``.

``--person K`` picks the K-th instance of every frame (default 0); a frame without it is NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.formats.base import SourceData, read_json, write_json
from d3prefine.formats.options import ConvertOptions
from d3prefine.keypoints import get_mapping
from d3prefine.skeleton import H36M_17

SUFFIXES = (".json",)
#: Camera frame = AXES @ MMPose demo axes (x = -k0, y = -k2, z = -k1); a rotation, so AXES.T undoes it.
AXES = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])


def _frames(path: Path, data: object = None) -> list[dict]:
    """The ``instance_info`` list of ``path`` (or of its already decoded ``data``)."""
    data = read_json(path) if data is None else data
    frames = data.get("instance_info") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) and isinstance(f.get("instances"), list) for f in frames):
        raise InputError(f"{path}: expected MMPose predictions {{'instance_info': [{{'frame_id', 'instances': [...]}}, ...]}}")
    return frames


def _keypoints(path: Path, person: int, joints: int, channels: int) -> np.ndarray:
    """``(T, joints, channels)`` keypoints of instance ``person`` of every frame (NaN where absent)."""
    frames = _frames(path)
    poses = np.full((len(frames), joints, channels), np.nan)
    for t, frame in enumerate(frames):
        if person >= len(frame["instances"]):
            continue
        keypoints = np.asarray(frame["instances"][person].get("keypoints"), dtype=object)
        if keypoints.shape != (joints, channels):
            raise InputError(
                f"{path}: frame {t}: instance {person}: expected keypoints of shape ({joints}, {channels}), got {keypoints.shape}"
            )
        try:
            poses[t] = keypoints.astype(np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{path}: frame {t}: instance {person}: expected numeric keypoints") from None
    return poses


def read(options: ConvertOptions) -> list[SourceData]:
    """One sequence: ``--3d`` the 3D predictions, ``--2d`` the 2D predictions (layout ``--layout-2d``)."""
    path_3d = options.required("poses_3d", "--3d", "MMPose needs its 3D predictions JSON")
    path_2d = options.required("poses_2d", "--2d", "MMPose needs its 2D predictions JSON")
    options.image_size_for(path_2d, "MMPose predictions do not hold the image size")
    person = options.person or 0
    layout_2d = get_mapping(options.layout_2d)
    poses_3d = _keypoints(path_3d, person, H36M_17.num_joints, 3)
    poses_2d = _keypoints(path_2d, person, layout_2d.num_source, 2)
    if len(poses_2d) != len(poses_3d):
        raise InputError(f"{path_2d}: {len(poses_2d)} frames, but {path_3d} has {len(poses_3d)}")
    return [
        SourceData(
            name=options.name or path_3d.stem,
            poses_2d=poses_2d,
            layout_2d=layout_2d.name,
            poses_3d=poses_3d,
            layout_3d=H36M_17.name,
            metres_per_unit=1.0,
            axes=AXES,
            image_size=options.image_size,
            fps=options.fps,
            details={"person": person},
        )
    ]


def write(source: Path, details: dict, poses_3d: np.ndarray, output: Path) -> None:
    """The source JSON with the chosen instance's keypoints replaced by ``poses_3d`` (demo axes)."""
    data = read_json(source)
    for frame, pose in zip(_frames(source, data), poses_3d):
        if details["person"] < len(frame["instances"]):
            frame["instances"][details["person"]]["keypoints"] = pose.tolist()
    write_json(output, data)
