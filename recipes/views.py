"""Camera views of motion windows: ground truth in the camera frame, its pixels and noisy detections.

A motion (world frame, Z up, metres) is cut into windows short enough in time and in travelled
distance to stay in view; each window is re-centred on the world origin, turned by a random yaw
and filmed by fixed Human3.6M cameras and/or random viewpoints.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from recipes.cameras import DEFAULT_VIEWPOINTS, Camera, ViewpointRange, random_camera
from recipes.detector import DEFAULT_NOISE, DetectorNoise, simulate_detections


@dataclass(frozen=True)
class ViewConfig:
    """Windowing and visibility rules.

    Attributes:
        max_frames: longest window, frames.
        max_extent_m: largest diagonal of a window's horizontal root bounding box, metres.
        min_frames: shortest window, frames (shorter motions are skipped).
        min_depth_m: every joint must be at least this far in front of the camera, metres.
        min_in_image: random viewpoints are redrawn until this fraction of joints is in the image.
        max_redraws: give up redrawing after this many tries (keep the best viewpoint).
    """

    max_frames: int = 300
    max_extent_m: float = 3.5
    min_frames: int = 32
    min_depth_m: float = 0.5
    min_in_image: float = 0.98
    max_redraws: int = 50


def split_windows(root_xy: np.ndarray, config: ViewConfig = ViewConfig()) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` equal-length windows of a root trajectory ``(T, 2)`` metres.

    The fewest windows of at most ``max_frames`` frames whose horizontal extent stays within
    ``max_extent_m``; windows never get shorter than ``min_frames`` (then the extent may be
    exceeded). Empty for ``T < min_frames``.
    """
    num_frames = len(root_xy)
    if num_frames < config.min_frames:
        return []
    windows: list[tuple[int, int]] = []
    for count in range(math.ceil(num_frames / config.max_frames), num_frames // config.min_frames + 1):
        bounds = np.linspace(0, num_frames, count + 1).round().astype(int)
        windows = list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
        if all(np.linalg.norm(np.ptp(root_xy[a:b], axis=0)) <= config.max_extent_m for a, b in windows):
            break
    return windows


def stable_seed(*parts: int | str) -> int:
    """A 64-bit seed from ints and strings, independent of processing order and Python's hash seed."""
    words = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0])


@dataclass(frozen=True)
class Shot:
    """One window filmed by one camera.

    Attributes:
        camera: the camera.
        gt_3d: ``(T, J, 3)`` ground truth, camera frame, metres (absolute).
        gt_2d: ``(T, J, 2)`` its exact projection, pixels.
        poses_2d: ``(T, J, 2)`` simulated detections, pixels.
        detector_seed: seed of the detector-noise generator.
        in_image: fraction of ground-truth joints inside the image.
    """

    camera: Camera
    gt_3d: np.ndarray
    gt_2d: np.ndarray
    poses_2d: np.ndarray
    detector_seed: int
    in_image: float


def film(world: np.ndarray, camera: Camera, detector_seed: int, noise: DetectorNoise = DEFAULT_NOISE) -> Shot:
    """Project a window ``(T, J, 3)`` (world, metres) with ``camera`` and simulate detections."""
    gt_3d = camera.world_to_camera(world)
    gt_2d = camera.project(gt_3d)
    detections = simulate_detections(gt_2d, np.random.default_rng(detector_seed), noise, gt_3d)
    return Shot(camera, gt_3d, gt_2d, detections, detector_seed, float(camera.in_image(gt_2d).mean()))


def is_visible(world: np.ndarray, camera: Camera, config: ViewConfig) -> tuple[bool, float]:
    """Whether every joint is ``min_depth_m`` in front of ``camera``, and the in-image fraction."""
    cam = camera.world_to_camera(world)
    if cam[..., 2].min() < config.min_depth_m:
        return False, 0.0
    return True, float(camera.in_image(camera.project(cam)).mean())


def random_viewpoint(
    world: np.ndarray, rng: np.random.Generator, templates: list[Camera], config: ViewConfig = ViewConfig(), ranges: ViewpointRange = DEFAULT_VIEWPOINTS
) -> Camera:
    """A random camera that sees the window ``(T, J, 3)`` well (redrawn up to ``max_redraws`` times)."""
    best, best_fraction = None, -1.0
    for _ in range(config.max_redraws):
        camera = random_camera(rng, templates, ranges)
        ok, fraction = is_visible(world, camera, config)
        if ok and fraction > best_fraction:
            best, best_fraction = camera, fraction
        if ok and fraction >= config.min_in_image:
            break
    if best is None:
        raise RuntimeError(f"no random viewpoint in {config.max_redraws} tries keeps the subject {config.min_depth_m} m in front")
    return best
