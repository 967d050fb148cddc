"""Shared fixtures: realistic synthetic H36M-17 pose sequences built from fixed bone lengths."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import PoseSequence
from d3prefine.skeleton import H36M_17

# Pinhole camera of the synthetic data: focal length and principal point in pixels.
FOCAL_PX = 1145.0
CENTRE_PX = (500.0, 500.0)
IMAGE_SIZE = (1000, 1000)
SUBJECT_DEPTH_M = 4.5

# Rest direction (camera frame: x right, y down, z forward) and length in metres of the bone
# ending at each H36M-17 joint; the root (pelvis) has none.
_BONES = {
    1: ((-1.0, 0.0, 0.0), 0.13),  # r_hip
    2: ((0.0, 1.0, 0.0), 0.45),  # r_knee
    3: ((0.0, 1.0, 0.0), 0.44),  # r_ankle
    4: ((1.0, 0.0, 0.0), 0.13),  # l_hip
    5: ((0.0, 1.0, 0.0), 0.45),  # l_knee
    6: ((0.0, 1.0, 0.0), 0.44),  # l_ankle
    7: ((0.0, -1.0, 0.0), 0.23),  # spine
    8: ((0.0, -1.0, 0.0), 0.25),  # thorax
    9: ((0.0, -1.0, -0.3), 0.11),  # neck_nose
    10: ((0.0, -1.0, 0.0), 0.12),  # head_top
    11: ((1.0, 0.0, 0.0), 0.15),  # l_shoulder
    12: ((0.0, 1.0, 0.0), 0.28),  # l_elbow
    13: ((0.0, 1.0, 0.0), 0.25),  # l_wrist
    14: ((-1.0, 0.0, 0.0), 0.15),  # r_shoulder
    15: ((0.0, 1.0, 0.0), 0.28),  # r_elbow
    16: ((0.0, 1.0, 0.0), 0.25),  # r_wrist
}


def cli_json(command: str, *args: str) -> dict:
    """Run ``d3prefine COMMAND --json ARGS`` in-process; assert exit 0; the parsed stdout."""
    result = CliRunner().invoke(app, [command, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def synthetic_motion(frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random-walk motion ``(frames, 17, 3)`` in metres, camera frame, with constant bone lengths.

    Each bone direction drifts around its rest direction (mean-reverting random walk) and the
    pelvis walks around ``(0, 0, SUBJECT_DEPTH_M)``.
    """
    poses = np.zeros((frames, H36M_17.num_joints, 3))
    drift = np.zeros((H36M_17.num_joints, 3))
    root = np.array([0.0, 0.0, SUBJECT_DEPTH_M])
    for t in range(frames):
        drift = 0.9 * drift + rng.normal(scale=0.05, size=drift.shape)
        root = root + rng.normal(scale=0.01, size=3) * (1.0, 0.0, 1.0)
        poses[t, H36M_17.root] = root
        for joint, (direction, length) in _BONES.items():
            bone = np.asarray(direction) / np.linalg.norm(direction) + drift[joint]
            poses[t, joint] = poses[t, H36M_17.parents[joint]] + length * bone / np.linalg.norm(bone)
    return poses


def project(poses_3d: np.ndarray) -> np.ndarray:
    """Pinhole projection of ``(..., 3)`` camera-frame metres to ``(..., 2)`` pixels."""
    return FOCAL_PX * poses_3d[..., :2] / poses_3d[..., 2:] + np.asarray(CENTRE_PX)


def build_sequence(frames: int = 32, *, seed: int = 0, name: str = "walk", noise_m: float = 0.02) -> PoseSequence:
    """A valid sequence: ``gt_3d`` a synthetic motion, ``poses_3d`` it plus Gaussian noise
    (``noise_m`` metres), ``poses_2d`` its projection in pixels, 30 fps, 1000x1000 image."""
    rng = np.random.default_rng(seed)
    gt = synthetic_motion(frames, rng)
    return PoseSequence(
        name=name,
        poses_2d=project(gt).astype(np.float32),
        poses_3d=(gt + rng.normal(scale=noise_m, size=gt.shape)).astype(np.float32),
        gt_3d=gt.astype(np.float32),
        image_size=IMAGE_SIZE,
        fps=30.0,
        provenance={"source": "tests/conftest.py", "seed": seed},
    )


@pytest.fixture
def make_sequence() -> Callable[..., PoseSequence]:
    """Factory ``make_sequence(frames=32, *, seed=0, name="walk", noise_m=0.02)`` (see :func:`build_sequence`)."""
    return build_sequence


@pytest.fixture
def sequence() -> PoseSequence:
    """A valid 32-frame sequence named ``walk``."""
    return build_sequence()


def pytest_configure(config: pytest.Config) -> None:
    """The tests' tiny models run fastest, and reproducibly, on one CPU thread."""
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device (torch is imported only if one is collected)."""
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
