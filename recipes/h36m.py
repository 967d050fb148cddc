"""Human3.6M with real Stacked-Hourglass detections -> camera-frame views in d3prefine's layout.

Input (what a Human3.6M user has on disk; see README, "Human3.6M"):

* ``S1.npz`` ... ``S8.npz``: plain arrays, ``<action>/world_3d`` ``(T, 17, 3)`` float metres in
  the world frame (``h36m17`` order, 50 fps) and ``<action>/sh_2d/<camera>`` ``(T, 16, 2)``
  float pixels, the Stacked-Hourglass detections of that camera (``sh16`` order,
  :data:`d3prefine.keypoints.SH_16`).
* ``cameras.json``: ``{subject: {camera: {"R", "T", "f", "c", "k", "p", "width", "height"}}}``
  with ``X_cam = (X_world - T) @ R`` (R as stored, on the right; T metres in world) and pixels
  ``f * (x, y) / z + c`` (plus radial ``k`` and tangential ``p`` distortion).

:func:`read_subject` gives one :class:`H36MView` per (action, camera): ground truth in the
camera frame (metres), the detections mapped to ``h36m17`` (pixels) and the camera's image size.
:func:`to_sequence` turns a view and an estimator's output into a :class:`~d3prefine.io.PoseSequence`
whose provenance names the subject, action, camera and what fills the joints the detector lacks.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.io import PoseSequence
from d3prefine.keypoints import SH_16, KeypointMapping
from recipes.cameras import Camera

FPS = 50.0
SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
DATASET = "Human3.6M (research licence; never redistributed), Stacked-Hourglass detections of Martinez et al. 2017"
CAMERA_KEYS = ("R", "T", "f", "c", "k", "p", "width", "height")


@dataclass(frozen=True)
class H36MView:
    """One action of one subject seen by one camera.

    Attributes:
        subject: ``"S1"`` ... ``"S8"``.
        action: Human3.6M action name with its take, e.g. ``"Directions 1"``.
        camera: the camera (``id`` is its serial number).
        poses_2d: ``(T, 17, 2)`` float32 pixels, ``h36m17`` order (mapped detections).
        gt_3d: ``(T, 17, 3)`` float32 metres, camera frame (x right, y down, z forward).
    """

    subject: str
    action: str
    camera: Camera
    poses_2d: np.ndarray
    gt_3d: np.ndarray

    @property
    def name(self) -> str:
        """Sequence name ``<subject>_<action with _ for spaces>_<camera>``, e.g. ``S8_Directions_1_54138969``."""
        return f"{self.subject}_{self.action.replace(' ', '_')}_{self.camera.id}"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.camera.resolution


def action_group(action: str) -> str:
    """The action without its take number (``"Eating 2"`` -> ``"Eating"``): the unit of Human3.6M's per-action averages."""
    base, _, take = action.rpartition(" ")
    return base if base and take.isdigit() else action


def load_cameras(path: str | Path) -> dict[str, dict[str, Camera]]:
    """``cameras.json`` -> ``{subject: {camera id: Camera}}`` (metres; ``X_cam = (X_world - T) @ R``)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        cameras: dict[str, dict[str, Camera]] = {}
        for subject, entries in raw.items():
            cameras[subject] = {}
            for cam_id, c in entries.items():
                missing = [k for k in CAMERA_KEYS if k not in c]
                if missing:
                    raise InputError(f"{path}: camera {subject}/{cam_id}: missing key {missing[0]!r}")
                rotation = np.asarray(c["R"], dtype=np.float64)
                if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
                    raise InputError(f"{path}: camera {subject}/{cam_id}: key 'R': expected a (3, 3) rotation matrix")
                cameras[subject][cam_id] = Camera(
                    id=str(cam_id),
                    focal=np.asarray(c["f"], dtype=np.float64).reshape(2),
                    principal_point=np.asarray(c["c"], dtype=np.float64).reshape(2),
                    radial=np.asarray(c["k"], dtype=np.float64).reshape(3),
                    tangential=np.asarray(c["p"], dtype=np.float64).reshape(2),
                    resolution=(int(c["width"]), int(c["height"])),
                    rotation=rotation,
                    centre=np.asarray(c["T"], dtype=np.float64).reshape(3),
                )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: cannot read cameras ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    return cameras


def _array(data, key: str, shape: tuple[int | None, ...], where: str) -> np.ndarray:
    if key not in data:
        raise InputError(f"{where}: missing key {key!r}")
    array = data[key]
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)) or array.dtype.kind != "f":
        want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{where}: key {key!r}: expected float array of shape {want}, got {array.dtype} {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{where}: key {key!r}: holds NaN or inf")
    return array


def read_subject(path: str | Path, subject: str, cameras: dict[str, Camera], mapping: KeypointMapping = SH_16) -> list[H36MView]:
    """All views of one subject's file, ordered by action then camera.

    Args:
        path: the subject's ``.npz`` (never unpickled).
        subject: its name, e.g. ``"S8"`` (used in sequence names and provenance).
        cameras: that subject's cameras by id (:func:`load_cameras`); every ``sh_2d/<camera>`` must have one.
        mapping: the detector's keypoint layout mapped to ``h36m17``.

    Raises:
        InputError: unreadable file, missing or malformed array, a detection without its 3D or
            with another frame count, an unknown camera.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({type(exc).__name__})") from None
    views: list[H36MView] = []
    with data:
        try:
            keys = list(data.keys())
            actions = sorted({k.split("/")[0] for k in keys})
            if not actions:
                raise InputError(f"{path}: no '<action>/world_3d' arrays")
            for action in actions:
                where = f"{path}: action {action!r}"
                world = _array(data, f"{action}/world_3d", (None, mapping.target.num_joints, 3), where).astype(np.float64)
                detections = sorted(k.split("/")[2] for k in keys if k.startswith(f"{action}/sh_2d/"))
                if not detections:
                    raise InputError(f"{where}: no '{action}/sh_2d/<camera>' detections")
                for cam_id in detections:
                    if cam_id not in cameras:
                        raise InputError(f"{where}: detections of camera {cam_id!r}, which cameras.json lacks for {subject}")
                    key = f"{action}/sh_2d/{cam_id}"
                    sh = _array(data, key, (None, mapping.num_source, 2), where)
                    if len(sh) != len(world):
                        raise InputError(f"{where}: key {key!r}: {len(sh)} frames, but world_3d has {len(world)}")
                    camera = cameras[cam_id]
                    gt = camera.world_to_camera(world)
                    views.append(H36MView(subject, action, camera, mapping.apply(sh).astype(np.float32), gt.astype(np.float32)))
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise InputError(f"{path}: corrupt array ({type(exc).__name__})") from None
    return views


def read_dataset(root: str | Path, subjects: tuple[str, ...] = SUBJECTS, mapping: KeypointMapping = SH_16) -> list[H36MView]:
    """The views of ``subjects`` from ``root/<subject>.npz`` and ``root/cameras.json``."""
    root = Path(root)
    cameras = load_cameras(root / "cameras.json")
    views = []
    for subject in subjects:
        if subject not in cameras:
            raise InputError(f"{root / 'cameras.json'}: no cameras for subject {subject!r}")
        views.extend(read_subject(root / f"{subject}.npz", subject, cameras[subject], mapping))
    return views


def to_sequence(view: H36MView, poses_3d: np.ndarray, estimator: dict, mapping: KeypointMapping = SH_16) -> PoseSequence:
    """A pose sequence of ``view`` with an estimator's root-relative output ``(T, 17, 3)`` metres.

    ``estimator`` (name, weights, training subjects, ...) goes into the provenance next to the
    subject, action, camera, 50 fps and what fills the joints the detector lacks.
    """
    return PoseSequence(
        name=view.name,
        poses_2d=view.poses_2d,
        poses_3d=np.asarray(poses_3d, dtype=np.float32),
        gt_3d=view.gt_3d,
        image_size=view.image_size,
        fps=FPS,
        provenance={
            "dataset": DATASET,
            "subject": view.subject,
            "action": view.action,
            "action_group": action_group(view.action),
            "camera": view.camera.id,
            "gt_3d": "Human3.6M mocap, camera frame X_cam = (X_world - T) @ R, metres",
            "poses_2d": mapping.describe(),
            **estimator,
        },
    )
