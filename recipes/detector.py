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
4. **Joint definitions** (``joint_offset``, optional): a detector's joints are not the mocap's
   (Human3.6M's Stacked-Hourglass hips sit a third closer to the pelvis than the mocap hips, its
   head 80 % of the neck-head bone above the mocap head-top). Each joint is moved by
   ``(along, across)`` fractions of its 2D bone from its parent (:func:`bone_axes`), before the
   random errors.
5. **Posture** (``posture``, optional, :class:`PostureErrors`): the jitter's std and the outliers'
   start rate of each joint and frame are multiplied by a factor of its posture bin
   (:func:`posture_bins`): how foreshortened its bone is (a thigh pointing at the camera) and, for
   the limbs, whether the torso hides it. Needs the camera-frame ground truth.
6. **View offsets** (``view_offset``, optional): the joint-definition offsets of 4 are medians
   over views; each view's own constant offset differs from them (clothing, hair, camera, the
   actions' postures). Per joint and image axis one Gaussian offset of std ``view_offset[j]``
   x ``person_size`` pixels is drawn per call (one view) and added to every frame, after the
   other errors are drawn (so the rest of a view's errors are those drawn without it).

``person_size`` is the median over frames of the larger side of the 2D bounding box, pixels.
Randomness comes only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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

# Posture bins (:func:`posture_bins`): foreshortening edges of a bone's projected fraction, then
# one bin for a limb joint hidden behind the torso. Joint classes share one row of factors.
FORESHORTENING_EDGES = (0.2, 0.4, 0.6, 0.8)
OCCLUDED_BIN = len(FORESHORTENING_EDGES) + 1
POSTURE_CLASSES = ("trunk", "knee", "ankle", "elbow", "wrist")
POSTURE_CLASS_OF_JOINT = (0, 0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 3, 4, 0, 3, 4)  # index into POSTURE_CLASSES, H36M-17 order
_TORSO = (11, 14, 1, 4)  # l_shoulder, r_shoulder, r_hip, l_hip: the torso's outline, in order around it


@dataclass(frozen=True)
class PostureErrors:
    """Posture-dependent factors of a detector's errors, relative to its average over postures.

    Attributes:
        jitter: per class of :data:`POSTURE_CLASSES`, one factor of the jitter std per posture bin
            (``len(FORESHORTENING_EDGES) + 2`` bins: foreshortening from most to least, then occluded).
        outliers: the same for the outlier bursts' start rate.
    """

    jitter: tuple[tuple[float, ...], ...]
    outliers: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        for name in ("jitter", "outliers"):
            rows = getattr(self, name)
            if len(rows) != len(POSTURE_CLASSES) or any(len(row) != OCCLUDED_BIN + 1 for row in rows):
                raise ValueError(f"{name} needs {len(POSTURE_CLASSES)} rows of {OCCLUDED_BIN + 1} factors")
            if min(min(row) for row in rows) < 0:
                raise ValueError(f"{name} factors must be >= 0")

    def factors(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Jitter and outlier-rate factors ``(T, 17)`` for posture ``bins (T, 17)``."""
        classes = np.asarray(POSTURE_CLASS_OF_JOINT)[None, :]
        return np.asarray(self.jitter)[classes, bins], np.asarray(self.outliers)[classes, bins]


def _bones(points: np.ndarray) -> np.ndarray:
    """Each joint's bone ``(T, 17, D)`` from its parent to it, of ``points (T, 17, D)``; the root's is
    the hip axis (r_hip -> l_hip)."""
    bone = points - points[:, np.maximum(np.asarray(H36M_17.parents), 0)]
    bone[:, H36M_17.root] = points[:, 4] - points[:, 1]
    return bone


def foreshortening(gt_3d: np.ndarray) -> np.ndarray:
    """Projected fraction ``(T, 17)`` in [0, 1] of each joint's bone (the root's: the hip axis) for a
    camera-frame pose ``gt_3d (T, 17, 3)`` metres: 1 across the line of sight, 0 along it."""
    bone = _bones(gt_3d)
    middle = gt_3d - 0.5 * bone
    middle[:, H36M_17.root] = 0.5 * (gt_3d[:, 4] + gt_3d[:, 1])
    ray = middle / np.linalg.norm(middle, axis=-1, keepdims=True).clip(1e-9)
    across = bone - (bone * ray).sum(-1, keepdims=True) * ray
    return np.linalg.norm(across, axis=-1) / np.linalg.norm(bone, axis=-1).clip(1e-9)


def behind_torso(gt_3d: np.ndarray, gt_2d: np.ndarray) -> np.ndarray:
    """``(T, 17)`` bool: the joint's projection lies inside the torso's 2D outline (shoulders and hips)
    and the joint lies deeper than the torso's mean depth; ``gt_3d (T, 17, 3)`` metres, camera frame,
    ``gt_2d (T, 17, 2)`` its projection, pixels."""
    outline = gt_2d[:, _TORSO]  # (T, 4, 2)
    edge = np.roll(outline, -1, axis=1) - outline
    to_joint = gt_2d[:, :, None] - outline[:, None]  # (T, 17, 4, 2)
    cross = edge[:, None, :, 0] * to_joint[..., 1] - edge[:, None, :, 1] * to_joint[..., 0]
    inside = (cross > 0).all(-1) | (cross < 0).all(-1)
    return inside & (gt_3d[..., 2] > gt_3d[:, _TORSO, 2].mean(-1, keepdims=True))


def posture_bins(gt_3d: np.ndarray, gt_2d: np.ndarray) -> np.ndarray:
    """Posture bin ``(T, 17)`` int of each joint: :data:`OCCLUDED_BIN` for a limb joint (class not
    ``trunk``) behind the torso (:func:`behind_torso`), else its :func:`foreshortening` bin
    (0: below 0.2, ..., 4: at least 0.8)."""
    bins = np.digitize(foreshortening(gt_3d), FORESHORTENING_EDGES)
    limb = np.asarray(POSTURE_CLASS_OF_JOINT)[None, :] > 0
    return np.where(limb & behind_torso(gt_3d, gt_2d), OCCLUDED_BIN, bins)


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
        joint_offset: per joint ``(along, across)`` fractions of its 2D bone (module docstring, 4).
        posture: posture-dependent factors of the jitter and outlier rate (module docstring, 5).
        view_offset: per joint ``(x, y)`` std of the view's constant image offset, fraction of
            person size (module docstring, 6).
    """

    jitter: float = 0.01
    joint_scale: tuple[float, ...] = _JOINT_SCALE
    temporal_rho: float = 0.6
    outlier_rate: float = 0.002
    outlier_frames: tuple[int, int] = (1, 6)
    outlier_std: float = 0.08
    swap_rate: float = 0.003
    swap_frames: tuple[int, int] = (2, 8)
    joint_offset: tuple[tuple[float, float], ...] | None = None
    posture: PostureErrors | None = None
    view_offset: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if len(self.joint_scale) != H36M_17.num_joints:
            raise ValueError(f"joint_scale needs {H36M_17.num_joints} values, got {len(self.joint_scale)}")
        if self.joint_offset is not None and len(self.joint_offset) != H36M_17.num_joints:
            raise ValueError(f"joint_offset needs {H36M_17.num_joints} (along, across) pairs, got {len(self.joint_offset)}")
        if self.view_offset is not None and len(self.view_offset) != H36M_17.num_joints:
            raise ValueError(f"view_offset needs {H36M_17.num_joints} (x, y) stds, got {len(self.view_offset)}")
        if not 0.0 <= self.temporal_rho < 1.0:
            raise ValueError(f"temporal_rho must be in [0, 1), got {self.temporal_rho}")


DEFAULT_NOISE = DetectorNoise()

# Fitted on Human3.6M's Stacked-Hourglass detections against the projected mocap joints (S1, S5,
# S6, S7, S8, 4 cameras, 1,464,400 frames at 50 fps; `python -m recipes.fit_detector`; figures
# converted to 30 fps: rho^(50/30), run lengths x 0.6, start rates x 5/3). Per-joint robust std of
# the error after each view's median offset (fraction of person size): median 0.0137, hips 0.018,
# spine 0.019, wrists 0.015-0.017, knees/ankles/elbows 0.013-0.014; lag-1 correlation 0.86-0.95 at
# 50 fps (median 0.88). Errors above 0.1 x person size: 4.5 % of joint-frames (wrists 9-10 %,
# knees/ankles 6.5-7.4 %, shoulders/thorax < 1.2 %) in runs of 9.2 frames, median size 0.166. Crossed
# left/right distal pairs: 4.2 % of frames in runs of 5.5 frames. Missed (NaN or outside the
# image): 5e-6 of joints, so no missed-joint model. Offsets are the median over views in each
# joint's bone frame (below).
H36M_SH_NOISE = DetectorNoise(
    jitter=0.0137,
    # measured std / 0.0137 per joint, in _JOINT_SCALE's order (pelvis, right leg, left leg, spine to head, left arm, right arm)
    joint_scale=(1.08, 1.31, 0.93, 1.0, 1.30, 0.94, 0.96, 1.39, 0.97, 1.0, 1.24, 0.97, 0.94, 1.08, 0.99, 1.04, 1.21),
    temporal_rho=0.81,  # 0.88 at 50 fps
    outlier_rate=0.0083,  # 4.5 % of joint-frames / 9.2-frame runs, per 30 fps frame
    outlier_frames=(2, 9),  # mean 5.5 frames at 30 fps
    outlier_std=0.14,  # a 2D Gaussian offset of median size 0.166 x person size, as measured
    swap_rate=0.0127,  # 4.2 % of frames / 5.5-frame runs, per 30 fps frame
    swap_frames=(1, 6),  # mean 3.3 frames at 30 fps
    joint_offset=(
        (0.03, 0.01),  # pelvis (hip axis frame)
        (-0.33, -0.01), (0.04, 0.03), (-0.08, 0.02),  # r_hip, r_knee, r_ankle
        (-0.21, 0.01), (0.00, 0.00), (-0.12, 0.02),  # l_hip, l_knee, l_ankle
        (0.78, -0.03), (0.00, -0.04), (-0.15, -0.18), (0.80, 0.00),  # spine, thorax, neck_nose, head_top
        (0.15, 0.04), (-0.04, 0.03), (-0.05, 0.03),  # l_shoulder, l_elbow, l_wrist
        (0.20, 0.03), (-0.01, 0.03), (0.00, 0.02),  # r_shoulder, r_elbow, r_wrist
    ),
)
# The same detector's errors by posture (`python -m recipes.fit_detector`, "posture"; all five
# subjects). Bins: a bone's projected fraction [0, 0.2), [0.2, 0.4), [0.4, 0.6), [0.6, 0.8), >= 0.8,
# then a limb joint behind the torso. Joint-frames per bin: knees 1.0 / 5.1 / 8.8 / 8.8 / 74.6 / 1.8 %,
# ankles 0.2 / 1.4 / 2.9 / 7.5 / 87.6 / 0.5 %, elbows 0.4 / 1.4 / 3.6 / 10.5 / 78.7 / 5.5 %, wrists
# 2.1 / 6.0 / 9.2 / 14.6 / 58.2 / 10.0 %. Jitter factors are relative to the class's robust std (the
# joint_scale above stays); outlier factors to the outlier share over all joints (4.5 %), so a knee
# behind the torso is an outlier in 0.71 of its frames, an upright one in 0.018.
H36M_SH_POSTURE = PostureErrors(
    jitter=(
        (1.33, 1.24, 1.08, 0.96, 0.99, 1.0),  # trunk (never occluded)
        (2.94, 1.8, 1.21, 0.99, 0.95, 4.42),  # knee
        (2.83, 3.09, 2.26, 1.5, 0.95, 4.34),  # ankle
        (2.31, 1.76, 1.36, 1.12, 0.93, 2.63),  # elbow
        (1.28, 1.22, 1.08, 0.95, 0.89, 2.58),  # wrist
    ),
    outliers=(
        (0.58, 0.79, 0.86, 0.56, 0.52, 1.0),
        (7.51, 4.59, 3.78, 2.61, 0.4, 15.83),
        (9.37, 9.29, 4.62, 2.86, 1.15, 18.29),
        (7.65, 4.39, 1.82, 0.83, 0.48, 3.71),
        (1.69, 1.61, 1.47, 1.49, 1.69, 6.47),
    ),
)
H36M_SH_POSTURE_NOISE = replace(H36M_SH_NOISE, posture=H36M_SH_POSTURE)
# The same detector's constant offset per view beyond joint_offset (`python -m recipes.fit_detector`,
# "view_offset"; 584 views of all five subjects): per joint and image axis the robust std over views of
# the view's median of (detection - projection moved by H36M_SH_NOISE.joint_offset) / person size.
# Median 0.007 (x) / 0.009 (y): about 12-16 mm on a 1.7 m person, against a jitter of 0.0137 per frame
# that averages out over a view while this does not.
H36M_SH_VIEWS_NOISE = replace(H36M_SH_NOISE, view_offset=(
    (0.006, 0.014),  # pelvis
    (0.008, 0.016), (0.008, 0.009), (0.010, 0.015),  # r_hip, r_knee, r_ankle
    (0.006, 0.015), (0.012, 0.009), (0.006, 0.011),  # l_hip, l_knee, l_ankle
    (0.013, 0.014), (0.005, 0.014), (0.015, 0.009), (0.024, 0.023),  # spine, thorax, neck_nose, head_top
    (0.007, 0.007), (0.006, 0.005), (0.007, 0.007),  # l_shoulder, l_elbow, l_wrist
    (0.006, 0.007), (0.008, 0.007), (0.005, 0.007),  # r_shoulder, r_elbow, r_wrist
))
# presets by name (build_dataset --detector)
DETECTORS = {"bandai": DEFAULT_NOISE, "h36m-sh": H36M_SH_NOISE, "h36m-sh-posture": H36M_SH_POSTURE_NOISE,
             "h36m-sh-views": H36M_SH_VIEWS_NOISE}


def person_size(poses_2d: np.ndarray) -> float:
    """Median over frames of the larger bounding-box side of ``(T, J, 2)`` pixels."""
    extent = poses_2d.max(axis=1) - poses_2d.min(axis=1)
    return float(np.median(extent.max(axis=-1)))


def bone_axes(poses_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each joint's 2D bone frame for ``poses_2d (T, 17, 2)`` pixels: unit ``along`` (parent ->
    joint) and ``across`` (90 degrees from it, toward the subject's left for an upright
    front view) vectors ``(T, 17, 2)`` and the bone's length ``(T, 17, 1)`` pixels. The root's
    bone is the hip axis (r_hip -> l_hip)."""
    bone = _bones(poses_2d)
    length = np.linalg.norm(bone, axis=-1, keepdims=True).clip(1e-6)
    along = bone / length
    return along, np.stack([along[..., 1], -along[..., 0]], axis=-1), length


def detector_joints(poses_2d: np.ndarray, joint_offset: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``poses_2d (T, 17, 2)`` pixels with each joint moved by its ``(along, across)`` fractions of
    its 2D bone (:func:`bone_axes`): where a detector with those joint definitions puts them."""
    along, across, length = bone_axes(poses_2d)
    offset = np.asarray(joint_offset)
    return poses_2d + (offset[:, :1] * along + offset[:, 1:] * across) * length


def ar1_noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance stationary AR(1) noise ``shape = (T, ...)`` correlated along axis 0."""
    white = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = white[0]
    innovation = np.sqrt(1.0 - rho * rho)
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + innovation * white[t]
    return out


def _burst_starts(
    rng: np.random.Generator, shape: tuple[int, ...], rate: float | np.ndarray, frames: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(N, len(shape))`` where a burst starts (probability ``rate`` each: a scalar or ``shape``) and their lengths ``(N,)``."""
    starts = np.argwhere(rng.random(shape) < rate)
    lengths = rng.integers(frames[0], frames[1] + 1, size=len(starts))
    return starts, lengths


def simulate_detections(
    poses_2d: np.ndarray, rng: np.random.Generator, config: DetectorNoise = DEFAULT_NOISE, gt_3d: np.ndarray | None = None
) -> np.ndarray:
    """Noisy detections ``(T, 17, 2)`` pixels from ground-truth projections ``(T, 17, 2)`` pixels;
    ``gt_3d (T, 17, 3)`` metres in the camera frame, needed only by a config with ``posture``."""
    num_frames, num_joints, _ = poses_2d.shape
    size = person_size(poses_2d)
    scale = config.jitter * size * np.asarray(config.joint_scale)[:, None]  # (J, 1) pixels
    outlier_rate: float | np.ndarray = config.outlier_rate
    if config.posture is not None:
        if gt_3d is None:
            raise ValueError("a detector with posture-dependent errors needs the camera-frame ground truth gt_3d")
        jitter, outliers = config.posture.factors(posture_bins(gt_3d, poses_2d))
        scale, outlier_rate = scale * jitter[..., None], outlier_rate * outliers  # (T, J, 1) pixels, (T, J)
    if config.joint_offset is not None:
        poses_2d = detector_joints(poses_2d, config.joint_offset)
    noisy = poses_2d + ar1_noise(rng, poses_2d.shape, config.temporal_rho) * scale

    starts, lengths = _burst_starts(rng, (num_frames, num_joints), outlier_rate, config.outlier_frames)
    offsets = rng.normal(0.0, config.outlier_std * size, size=(len(starts), 2))
    for (t, j), n, offset in zip(starts, lengths, offsets):
        noisy[t : t + n, j] += offset

    starts, lengths = _burst_starts(rng, (num_frames,), config.swap_rate, config.swap_frames)
    limbs = rng.integers(len(_SWAP_LIMBS), size=len(starts))
    for (t,), n, limb in zip(starts, lengths, limbs):
        for left, right in _SWAP_LIMBS[limb]:
            noisy[t : t + n, [left, right]] = noisy[t : t + n, [right, left]]
    if config.view_offset is not None:
        noisy = noisy + rng.normal(0.0, 1.0, size=(num_joints, 2)) * np.asarray(config.view_offset) * size
    return noisy
