"""Pinhole cameras with Brown-Conrady distortion: Human3.6M cameras and random viewpoints.

World frame: right-handed, Z up, metres. Camera frame: OpenCV / Human3.6M (x right, y down,
z forward). A camera stores ``rotation`` (camera -> world, ``(3, 3)``) and ``centre`` (camera
centre in world, metres); ``X_cam = rotation.T @ (X_world - centre)``.

Distortion (OpenCV's Brown-Conrady form) of normalized coordinates ``(x, y) = X_cam[:2] / z``::

    r2 = x^2 + y^2,  radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
    x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)
    y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y
    pixel = focal * (x_d, y_d) + principal_point

(Human3.6M's own MATLAB code uses a slightly different tangential term; with its |p| < 3e-3 the
two differ by well under a pixel inside the image.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError

MM_TO_M = 0.001


@dataclass(frozen=True)
class Camera:
    """One calibrated camera.

    Attributes:
        id: name stored in provenance (Human3.6M serial number or ``"random"``).
        focal: ``(fx, fy)`` pixels.
        principal_point: ``(cx, cy)`` pixels.
        radial: ``(k1, k2, k3)``.
        tangential: ``(p1, p2)``.
        resolution: ``(width, height)`` pixels.
        rotation: ``(3, 3)`` camera -> world rotation (columns: camera x, y, z axes in world).
        centre: ``(3,)`` camera centre in world coordinates, metres.
    """

    id: str
    focal: np.ndarray
    principal_point: np.ndarray
    radial: np.ndarray
    tangential: np.ndarray
    resolution: tuple[int, int]
    rotation: np.ndarray
    centre: np.ndarray

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` metres -> camera frame ``(..., 3)`` metres."""
        return (points - self.centre) @ self.rotation

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame points ``(..., 3)`` metres (z > 0) -> distorted pixels ``(..., 2)``."""
        xy = points_cam[..., :2] / points_cam[..., 2:3]
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        k1, k2, k3 = self.radial
        p1, p2 = self.tangential
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return np.stack([xd, yd], axis=-1) * self.focal + self.principal_point

    def in_image(self, pixels: np.ndarray) -> np.ndarray:
        """Boolean mask ``(...)`` of pixels ``(..., 2)`` inside the image."""
        w, h = self.resolution
        return (pixels[..., 0] >= 0) & (pixels[..., 0] < w) & (pixels[..., 1] >= 0) & (pixels[..., 1] < h)


def quaternion_to_matrix(wxyz: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a quaternion given as ``(w, x, y, z)`` (normalized here)."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def load_h36m_cameras(path: str | Path) -> list[Camera]:
    """The cameras of ``h36m_cameras.json`` (millimetres converted to metres)."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())["cameras"]
        return [
            Camera(
                id=str(c["id"]),
                focal=np.array(c["focal_length"], dtype=np.float64),
                principal_point=np.array(c["center"], dtype=np.float64),
                radial=np.array(c["radial_distortion"], dtype=np.float64),
                tangential=np.array(c["tangential_distortion"], dtype=np.float64),
                resolution=(int(c["res_w"]), int(c["res_h"])),
                rotation=quaternion_to_matrix(c["orientation"]),
                centre=np.array(c["translation"], dtype=np.float64) * MM_TO_M,
            )
            for c in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: cannot read camera parameters ({type(exc).__name__}: {exc})") from None


def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera -> world rotation ``(3, 3)`` of a camera at ``centre`` looking at ``target`` (Z-up world, no roll)."""
    forward = target - centre
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


@dataclass(frozen=True)
class ViewpointRange:
    """Ranges of random viewpoints around a subject standing near the world origin.

    Attributes:
        distance: horizontal camera distance from the origin, metres ``(min, max)``.
        height: camera height above the floor, metres ``(min, max)``.
        target_height: height of the look-at point above the origin, metres ``(min, max)``.
        focal_scale: multiplier of the template camera's focal length ``(min, max)``.
    """

    distance: tuple[float, float] = (3.5, 6.0)
    height: tuple[float, float] = (0.8, 2.0)
    target_height: tuple[float, float] = (0.7, 1.0)
    focal_scale: tuple[float, float] = (0.9, 1.1)


DEFAULT_VIEWPOINTS = ViewpointRange()


def fitted_pinhole_projection(points_cam: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``points_cam (T, J, 3)`` metres (z > 0) projected by the distortion-free pinhole whose focal
    length and principal point (per image axis) best fit ``pixels (T, J, 2)`` (least squares over
    the finite ones): exact 2D for a sequence whose camera is not stored, from its detections.

    Raises:
        InputError: fewer than two finite pixels, or all of them at one depth-normalized position.
    """
    normalized = points_cam[..., :2] / points_cam[..., 2:3]
    projected = np.empty(normalized.shape, dtype=np.float64)
    for axis in (0, 1):
        x, u = normalized[..., axis].ravel(), pixels[..., axis].ravel()
        finite = np.isfinite(u) & np.isfinite(x)
        design = np.stack([x[finite], np.ones(int(finite.sum()))], axis=1)
        if len(design) < 2 or np.ptp(design[:, 0]) == 0:
            raise InputError("fitted_pinhole_projection: too few distinct finite points to fit a camera")
        (focal, centre), *_ = np.linalg.lstsq(design, u[finite], rcond=None)
        projected[..., axis] = focal * normalized[..., axis] + centre
    return projected


def random_camera(rng: np.random.Generator, templates: list[Camera], ranges: ViewpointRange = DEFAULT_VIEWPOINTS) -> Camera:
    """A camera at a random azimuth around the origin looking at the subject's centre.

    Intrinsics are those of a random template (Human3.6M camera) with its focal length scaled.
    """
    template = templates[rng.integers(len(templates))]
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    distance = rng.uniform(*ranges.distance)
    centre = np.array([distance * np.cos(azimuth), distance * np.sin(azimuth), rng.uniform(*ranges.height)])
    target = np.array([0.0, 0.0, rng.uniform(*ranges.target_height)])
    return Camera(
        id="random",
        focal=template.focal * rng.uniform(*ranges.focal_scale),
        principal_point=template.principal_point,
        radial=template.radial,
        tangential=template.tangential,
        resolution=template.resolution,
        rotation=look_at(centre, target),
        centre=centre,
    )


def yaw_matrix(angle: float) -> np.ndarray:
    """Rotation ``(3, 3)`` by ``angle`` radians about the world z (up) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def recentre(poses_world: np.ndarray, root: int = 0, yaw: float = 0.0) -> np.ndarray:
    """Move a window ``(T, J, 3)`` so the mean horizontal root position is the origin, then rotate by ``yaw`` about z."""
    shift = poses_world[:, root, :2].mean(axis=0)
    moved = poses_world.copy()
    moved[..., :2] -= shift
    return moved @ yaw_matrix(yaw).T
