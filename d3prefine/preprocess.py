"""Coordinate preprocessing shared by refinement, training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def normalize_screen(poses_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates to normalized screen coordinates (VideoPose3D convention).

    ``u = x / width * 2 - 1`` and ``v = y / width * 2 - height / width``: the image's x range
    maps to ``[-1, 1]`` and y keeps the aspect ratio, centred on 0.

    Args:
        poses_2d: ``(..., 2)`` pixels, x right and y down, origin at the top-left corner.
        image_size: ``(width, height)`` in pixels, both positive.

    Returns:
        ``(..., 2)`` normalized coordinates, float dtype of the input (float64 for integers).
    """
    width, height = image_size
    if width <= 0 or height <= 0:
        raise ValueError(f"image_size must be positive (width, height), got {image_size}")
    poses_2d = np.asarray(poses_2d)
    if poses_2d.shape[-1:] != (2,):
        raise ValueError(f"expected 2D poses of shape (..., 2), got {poses_2d.shape}")
    if poses_2d.dtype.kind != "f":
        poses_2d = poses_2d.astype(np.float64)
    offset = np.array([1.0, height / width], dtype=poses_2d.dtype)
    return poses_2d / poses_2d.dtype.type(width) * 2 - offset


def root_relative(poses: np.ndarray, root: int) -> np.ndarray:
    """Poses relative to their root joint: joint ``root`` is subtracted from every joint.

    Args:
        poses: ``(..., J, C)`` joint positions (e.g. ``(T, J, 3)`` metres).
        root: index of the root joint, ``0 <= root < J``.

    Returns:
        ``(..., J, C)`` array of the same dtype whose root joint is all zeros.
    """
    poses = np.asarray(poses)
    return poses - poses[..., root : root + 1, :]


@dataclass(frozen=True)
class ModelInputs:
    """A sequence as the denoiser sees it (the same in training and refinement).

    Attributes:
        p: ``(T, J, 2)`` float32 2D pose, normalized screen units, relative to the root joint.
        y: ``(T, J, 3)`` float32 estimator pose, metres, camera frame, relative to the root joint.
        root: ``(T, 3)`` float32 root trajectory of the estimator pose (added back after refinement).
    """

    p: np.ndarray
    y: np.ndarray
    root: np.ndarray


def model_inputs(poses_2d: np.ndarray, poses_3d: np.ndarray, image_size: tuple[int, int] | None, root: int) -> ModelInputs:
    """Normalize ``poses_2d (T, J, 2)`` (pixels if ``image_size`` is given, else already
    normalized) and split ``poses_3d (T, J, 3)`` metres into root-relative pose and root trajectory."""
    p = normalize_screen(poses_2d, image_size) if image_size is not None else np.asarray(poses_2d)
    poses_3d = np.asarray(poses_3d, np.float32)
    return ModelInputs(
        p=root_relative(p, root).astype(np.float32),
        y=root_relative(poses_3d, root),
        root=poses_3d[:, root].copy(),
    )


def error_triple(poses_2d: np.ndarray, poses_3d: np.ndarray, gt_3d: np.ndarray, image_size: tuple[int, int] | None, root: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(p, y, x)`` for fitting the noise model: root-relative normalized 2D ``(T, J, 2)``,
    estimator pose and ground truth ``(T, J, 3)`` metres (see :func:`model_inputs`)."""
    inputs = model_inputs(poses_2d, poses_3d, image_size, root)
    return inputs.p, inputs.y, root_relative(np.asarray(gt_3d, np.float32), root)
