"""Simulated errors of a 2D keypoint detector, applied to ground-truth pixel coordinates.

The error model (all parameters in :class:`DetectorNoise`):

1. **Jitter**: per joint and axis, a stationary AR(1) process in time with marginal standard
   deviation ``jitter * person_size * joint_scale[j]`` pixels and lag-1 correlation
   ``temporal_rho`` (``e_t = rho e_{t-1} + sqrt(1 - rho^2) w_t``).
2. **Outliers**: each joint starts a burst with probability ``outlier_rate`` per frame; a burst
   lasts ``outlier_frames`` frames and adds one constant Gaussian offset of std
   ``outlier_std * person_size`` pixels (a detector locked onto a wrong blob).
3. **Left/right swaps**: per frame, with probability ``swap_rate``, a random limb (arm or leg)
   has its left and right distal joints (elbow+wrist or knee+ankle) exchanged for
   ``swap_frames`` frames.

``person_size`` is the median over frames of the larger side of the 2D bounding box, pixels.
Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d3prefine.skeleton import H36M_17

# Per-joint std multipliers (H36M-17 order): extremities are detected less precisely,
# the pelvis (hip centre, an average of two hips) more precisely.
_JOINT_SCALE = (
    0.8,  # pelvis
    1.0, 1.2, 1.5,  # r_hip, r_knee, r_ankle
    1.0, 1.2, 1.5,  # l_hip, l_knee, l_ankle
    1.0, 0.9, 0.9, 1.2,  # spine, thorax, neck_nose, head_top
    1.0, 1.3, 1.8,  # l_shoulder, l_elbow, l_wrist
    1.0, 1.3, 1.8,  # r_shoulder, r_elbow, r_wrist
)
# (left, right) joint pairs swapped together: distal arm and distal leg.
_SWAP_LIMBS = (((12, 15), (13, 16)), ((5, 2), (6, 3)))


@dataclass(frozen=True)
class DetectorNoise:
    """Parameters of the simulated 2D detector (defaults: a decent video detector, ~1% of person size).

    Attributes:
        jitter: base jitter std as a fraction of person size (0.01 of a 400 px person = 4 px).
        joint_scale: per-joint multipliers of ``jitter``, H36M-17 order.
        temporal_rho: AR(1) lag-1 correlation of the jitter (0 = white, ->1 = slow drift).
        outlier_rate: probability per joint and frame that an outlier burst starts.
        outlier_frames: ``(min, max)`` burst length in frames (inclusive).
        outlier_std: std of the burst offset as a fraction of person size.
        swap_rate: probability per frame that a left/right limb swap starts.
        swap_frames: ``(min, max)`` swap length in frames (inclusive).
    """

    jitter: float = 0.01
    joint_scale: tuple[float, ...] = _JOINT_SCALE
    temporal_rho: float = 0.6
    outlier_rate: float = 0.002
    outlier_frames: tuple[int, int] = (1, 6)
    outlier_std: float = 0.08
    swap_rate: float = 0.003
    swap_frames: tuple[int, int] = (2, 8)

    def __post_init__(self) -> None:
        if len(self.joint_scale) != H36M_17.num_joints:
            raise ValueError(f"joint_scale needs {H36M_17.num_joints} values, got {len(self.joint_scale)}")
        if not 0.0 <= self.temporal_rho < 1.0:
            raise ValueError(f"temporal_rho must be in [0, 1), got {self.temporal_rho}")


DEFAULT_NOISE = DetectorNoise()


def person_size(poses_2d: np.ndarray) -> float:
    """Median over frames of the larger bounding-box side of ``(T, J, 2)`` pixels."""
    extent = poses_2d.max(axis=1) - poses_2d.min(axis=1)
    return float(np.median(extent.max(axis=-1)))


def ar1_noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance stationary AR(1) noise ``shape = (T, ...)`` correlated along axis 0."""
    white = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = white[0]
    innovation = np.sqrt(1.0 - rho * rho)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + innovation * white[t]
    return out


def _burst_starts(rng: np.random.Generator, shape: tuple[int, ...], rate: float, frames: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(N, len(shape))`` where a burst starts (probability ``rate`` each) and their lengths ``(N,)``."""
    starts = np.argwhere(rng.random(shape) < rate)
    lengths = rng.integers(frames[0], frames[1] + 1, size=len(starts))
    return starts, lengths


def simulate_detections(poses_2d: np.ndarray, rng: np.random.Generator, config: DetectorNoise = DEFAULT_NOISE) -> np.ndarray:
    """Noisy detections ``(T, 17, 2)`` pixels from ground-truth projections ``(T, 17, 2)`` pixels."""
    num_frames, num_joints, _ = poses_2d.shape
    size = person_size(poses_2d)
    scale = config.jitter * size * np.asarray(config.joint_scale)[:, None]
    noisy = poses_2d + ar1_noise(rng, poses_2d.shape, config.temporal_rho) * scale

    starts, lengths = _burst_starts(rng, (num_frames, num_joints), config.outlier_rate, config.outlier_frames)
    offsets = rng.normal(0.0, config.outlier_std * size, size=(len(starts), 2))
    for (t, j), n, offset in zip(starts, lengths, offsets):
        noisy[t : t + n, j] += offset

    starts, lengths = _burst_starts(rng, (num_frames,), config.swap_rate, config.swap_frames)
    limbs = rng.integers(len(_SWAP_LIMBS), size=len(starts))
    for (t,), n, limb in zip(starts, lengths, limbs):
        for left, right in _SWAP_LIMBS[limb]:
            noisy[t : t + n, [left, right]] = noisy[t : t + n, [right, left]]
    return noisy
