"""MediaPipe Pose (BlazePose, 33 landmarks): a JSON list with one entry per video frame.

Each entry is ``null`` (no person found) or an object with the fields of MediaPipe's result:
``"landmarks"``: 33 objects ``{"x", "y", "z", "visibility"}`` in normalised image coordinates
(x / width, y / height, origin top-left), and ``"world_landmarks"``: 33 objects ``{"x", "y", "z"}``
in metres around the centre of the hips (x right, y down, z away from the camera, the camera
frame d3prefine uses). Pixels need ``--image-size``. Missing frames become NaN (``refine --fill``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.formats.base import SourceData, read_json, write_json
from d3prefine.formats.options import ConvertOptions
from d3prefine.keypoints import MEDIAPIPE_33

SUFFIXES = (".json",)


def _landmarks(entry: object, key: str, channels: int, where: str) -> np.ndarray:
    if entry is None:
        return np.full((MEDIAPIPE_33.num_source, channels), np.nan)
    points = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(points, list) or len(points) != MEDIAPIPE_33.num_source:
        found = f"{len(points)} entries" if isinstance(points, list) else type(points).__name__
        raise InputError(f"{where}: key {key!r}: expected a list of {MEDIAPIPE_33.num_source} landmarks, got {found}")
    try:
        return np.array([[float(p[axis]) for axis in "xyz"[:channels]] for p in points])
    except (TypeError, KeyError, ValueError):
        raise InputError(f"{where}: key {key!r}: expected landmarks with numeric x, y, z") from None


def _frames(path: Path) -> list:
    data = read_json(path)
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list with one entry per frame")
    return data


def read(options: ConvertOptions) -> list[SourceData]:
    """One sequence from the MediaPipe JSON given as ``--3d`` (it holds the 2D too)."""
    path = options.required("poses_3d", "--3d", "MediaPipe needs its landmarks JSON")
    width, height = options.image_size_for(path, "MediaPipe landmarks are normalised to the image")
    frames = _frames(path)
    poses_2d = np.stack([_landmarks(e, "landmarks", 2, f"{path}: frame {t}") for t, e in enumerate(frames)]) * (width, height)
    poses_3d = np.stack([_landmarks(e, "world_landmarks", 3, f"{path}: frame {t}") for t, e in enumerate(frames)])
    missing = sum(entry is None for entry in frames)
    return [
        SourceData(
            name=options.name or path.stem,
            poses_2d=poses_2d,
            layout_2d=MEDIAPIPE_33.name,
            poses_3d=poses_3d,
            layout_3d=MEDIAPIPE_33.name,
            metres_per_unit=1.0,
            image_size=options.image_size,
            fps=options.fps,
            details={"frames_without_person": missing},
        )
    ]


def write(source: Path, details: dict, poses_3d: np.ndarray, output: Path) -> None:
    """The source JSON with every frame's ``world_landmarks`` x, y, z replaced by ``poses_3d`` ``(T, 33, 3)``."""
    frames = _frames(source)
    for entry, pose in zip(frames, poses_3d):
        if entry is not None:
            for landmark, xyz in zip(entry["world_landmarks"], pose.tolist()):
                landmark.update(x=xyz[0], y=xyz[1], z=xyz[2])
    write_json(output, frames)
