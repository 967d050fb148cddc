"""VideoPose3D's files: its 2D datasets, its 3D dataset and its exported predictions.

* 2D (``data_2d_<dataset>_<detections>.npz``, also the custom-video files of
  ``prepare_data_2d_custom.py``): ``positions_2d[subject][action]`` is a list of ``(T, 17, 2)``
  pixel arrays, one per camera, and ``metadata`` holds ``layout_name`` (``"h36m"`` or
  ``"coco"``) and, for custom videos, ``video_metadata[video] = {"w", "h"}`` (there the subject
  is the video and the action ``"custom"``). Both are *pickled dictionaries*: they are read
  only with ``--allow-pickle`` (pickle can run code: trusted files only).
* 3D estimate (``--3d``): the ``(T, 17, 3)`` ``.npy`` of ``run.py --viz-export``, camera frame,
  metres (root-relative). It belongs to one 2D sequence: ``--sequence NAME`` picks it when the
  2D file holds several (names: ``<subject>_<action>_cam<k>``, or the video for custom files).
* Ground truth (``--gt data_3d_h36m.npz``, pickled too): ``positions_3d[subject][action]`` is
  ``(T, 32, 3)`` world metres; VideoPose3D's 17 of the 32 joints are kept and moved into each
  camera with ``--cameras`` (JSON ``{subject: [{"orientation": [w, x, y, z], "translation":
  [x, y, z] (mm)}, ...]}``, one per camera, VideoPose3D's extrinsics: ``X_cam = R^T (X - t)``).
  2D frames beyond the 3D ones are dropped, as VideoPose3D does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from d3prefine.errors import InputError
from d3prefine.formats.base import SourceData, check_shape, expect_shape, read_json, read_npy, write_npy_like
from d3prefine.formats.options import ConvertOptions

SUFFIXES = (".npz", ".npy")
#: VideoPose3D's 2D ``layout_name`` -> d3prefine keypoint layout.
LAYOUTS = {"h36m": "h36m17", "coco": "coco17"}
#: The 17 of Human3.6M's 32 mocap joints that VideoPose3D keeps, in ``h36m17`` order.
H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

write = write_npy_like


def _pickled(path: Path, key: str, allow_pickle: bool) -> Any:
    """The pickled dictionary ``key`` of a VideoPose3D ``.npz`` (only with ``allow_pickle``)."""
    if not allow_pickle:
        raise InputError(
            f"{path}: VideoPose3D files hold pickled dictionaries, which can run code when loaded; "
            "if you trust the file, convert it with --allow-pickle"
        )
    try:
        with np.load(path, allow_pickle=True) as npz:
            if key not in npz.files:
                raise InputError(f"{path}: missing key {key!r} (has {', '.join(npz.files)})")
            return npz[key].item()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not a readable VideoPose3D .npz ({error})") from None


def _camera_rotations(path: Path, subject: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(R, t)`` per camera of ``subject``: ``R`` rotates camera to world, ``t`` metres."""
    from scipy.spatial.transform import Rotation  # scipy loads on first use: the command line starts faster

    cameras = read_json(path)
    entries = cameras.get(subject) if isinstance(cameras, dict) else None
    if not isinstance(entries, list):
        raise InputError(f"{path}: no cameras for subject {subject!r}, expected {{subject: [{{orientation, translation}}, ...]}}")
    try:
        return [
            (Rotation.from_quat(np.asarray(c["orientation"], dtype=float), scalar_first=True).as_matrix(),
             np.asarray(c["translation"], dtype=float) / 1000.0)
            for c in entries
        ]
    except (TypeError, KeyError, ValueError):
        raise InputError(f"{path}: subject {subject!r}: expected cameras with 'orientation' (w, x, y, z) and 'translation' (mm)") from None


def _sequences_2d(options: ConvertOptions) -> list[tuple[str, str, str, int, np.ndarray, tuple[int, int] | None, str]]:
    """``(name, subject, action, camera, (T, 17, 2), image_size, layout)`` of every 2D sequence
    (the arrays as stored: only the one picked is converted)."""
    path = options.required("poses_2d", "--2d", "VideoPose3D needs its data_2d_*.npz")
    positions = _pickled(path, "positions_2d", options.allow_pickle)
    metadata = _pickled(path, "metadata", options.allow_pickle)
    layout = LAYOUTS.get(metadata.get("layout_name")) if isinstance(metadata, dict) else None
    if layout is None:
        found = metadata.get("layout_name") if isinstance(metadata, dict) else None
        raise InputError(f"{path}: key 'metadata': layout_name {found!r}, expected one of {', '.join(LAYOUTS)}")
    videos = metadata.get("video_metadata", {})
    found = []
    for subject, actions in positions.items():
        for action, cameras in actions.items():
            for camera, array in enumerate(cameras):
                custom = subject in videos
                name = str(subject) if custom and len(cameras) == 1 else f"{subject}_{action}_cam{camera}"
                size = (int(videos[subject]["w"]), int(videos[subject]["h"])) if custom else options.image_size
                where = f"{path}: positions_2d[{subject!r}][{action!r}][{camera}]"
                found.append((name, subject, action, camera, check_shape(array, 17, 2, where), size, layout))
    if not found:
        raise InputError(f"{path}: positions_2d holds no sequence")
    return found


def read(options: ConvertOptions) -> list[SourceData]:
    """The 2D sequence(s) with their ``--3d`` estimate (and ``--gt`` ground truth)."""
    path_3d = options.required("poses_3d", "--3d", "VideoPose3D needs the estimate (.npy of run.py --viz-export) to refine")
    sequences = _sequences_2d(options)
    names = [s[0] for s in sequences]
    if options.sequence is not None:
        sequences = [s for s in sequences if s[0] == options.sequence]
        if not sequences:
            raise InputError(f"{options.poses_2d}: no sequence {options.sequence!r} (has {', '.join(names[:20])})")
    elif len(sequences) > 1:
        raise InputError(f"{options.poses_2d}: holds {len(sequences)} sequences; pick the one of {path_3d} with --sequence (e.g. {names[0]!r})")
    name, subject, action, camera, poses_2d, size, layout = sequences[0]
    poses_2d = poses_2d.astype(np.float64)
    if size is None:
        raise InputError(f"{options.poses_2d}: Human3.6M 2D is in pixels: give --image-size WIDTH HEIGHT (1000 1002 or 1000 1000)")
    poses_3d = expect_shape(read_npy(path_3d), 17, 3, str(path_3d))
    gt = None
    if options.gt is not None:
        positions = _pickled(options.gt, "positions_3d", options.allow_pickle)
        try:
            world = expect_shape(positions[subject][action], 32, 3, f"{options.gt}: positions_3d[{subject!r}][{action!r}]")
        except KeyError:
            raise InputError(f"{options.gt}: positions_3d has no [{subject!r}][{action!r}]") from None
        cameras = _camera_rotations(options.required("cameras", "--cameras", "ground truth in world coordinates needs the camera extrinsics"), subject)
        if camera >= len(cameras):
            raise InputError(f"{options.cameras}: subject {subject!r} has {len(cameras)} cameras, the 2D uses camera {camera}")
        rotation, translation = cameras[camera]
        gt = (world[:, H36M_32_TO_17] - translation) @ rotation  # X_cam = R^T (X - t), row vectors
        poses_2d = poses_2d[: len(gt)]
    if len(poses_3d) != len(poses_2d):
        raise InputError(f"{path_3d}: {len(poses_3d)} frames, but 2D sequence {name!r} has {len(poses_2d)}")
    return [
        SourceData(
            name=options.name or name,
            poses_2d=poses_2d,
            layout_2d=layout,
            poses_3d=poses_3d,
            layout_3d="h36m17",
            metres_per_unit=1.0,
            image_size=size,
            fps=options.fps,
            gt_3d=gt,
            details={"sequence": name, "subject": str(subject), "action": str(action), "camera": camera},
        )
    ]
