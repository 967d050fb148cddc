"""Body-build variation: per-sequence bone lengths well beyond the Bandai actors'.

The Bandai capture aligned every file to nearly the same proportions (hips 68 mm from the
pelvis, thigh ~384 mm), while Human3.6M's subjects have hips ~130 mm from the pelvis (another
marker definition) and thighs ~450 mm. Weights trained on one build pull every bone toward it.
:func:`random_bone_scales` draws one multiplier per bone for a sequence;
:func:`d3prefine.bones.scale_bones` applies them, keeping the root trajectory and every bone's direction (so the motion's joint
angles are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d3prefine.bones import median_bone_lengths, scale_bones
from d3prefine.skeleton import H36M_17

# Bones that share one multiplier (with their mirror joint), by child joint, h36m17 order.
_GROUPS = {
    "hip": (1, 4),
    "thigh": (2, 5),
    "shin": (3, 6),
    "spine": (7,),
    "thorax": (8,),
    "neck": (9,),
    "head": (10,),
    "shoulder": (11, 14),
    "upper_arm": (12, 15),
    "forearm": (13, 16),
}


@dataclass(frozen=True)
class BodyVariation:
    """How bone lengths vary between sequences (all draws uniform or log-normal, per sequence).

    Attributes:
        height: ``(min, max)`` multiplier of every bone (overall size).
        proportion_std: std of the log of each bone group's own multiplier (left and right
            together), e.g. 0.1 for about +-10 %.
        hip_width_m: ``(min, max)`` distance of each hip joint from the pelvis, metres
            (Bandai 0.068, Human3.6M ~0.13); ``None`` scales the hips like the other groups.
        shoulder_width_m: ``(min, max)`` distance of each shoulder from the thorax, metres
            (Bandai ~0.117, Human3.6M ~0.176); ``None`` as for the hips.
        hip_raise_m: ``(min, max)`` metres the hips, with the legs, are moved along the
            pelvis-to-spine direction before the bones are rescaled (:func:`raise_hips`): Bandai's
            hips sit about 32 mm below its pelvis joint, Human3.6M's level with it (its pelvis is
            their midpoint); ``None`` keeps the capture's (the builds of stops 15-26).
    """

    height: tuple[float, float] = (0.85, 1.15)
    proportion_std: float = 0.1
    hip_width_m: tuple[float, float] | None = (0.06, 0.15)
    shoulder_width_m: tuple[float, float] | None = (0.11, 0.19)
    hip_raise_m: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("height", "hip_width_m", "shoulder_width_m"):
            bounds = getattr(self, name)
            if bounds is not None and not 0 < bounds[0] <= bounds[1]:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {bounds}")
        if self.hip_raise_m is not None and not self.hip_raise_m[0] <= self.hip_raise_m[1]:
            raise ValueError(f"hip_raise_m must be (min, max) with min <= max, got {self.hip_raise_m}")
        if self.proportion_std < 0:
            raise ValueError(f"proportion_std must be >= 0, got {self.proportion_std}")


# Human3.6M-17 joints below each hip (the hips included): they move together in raise_hips.
_LEGS = _GROUPS["hip"] + _GROUPS["thigh"] + _GROUPS["shin"]
(_SPINE,) = _GROUPS["spine"]


def raise_hips(poses: np.ndarray, raise_m: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with the hips and everything below them moved
    ``raise_m`` metres along each frame's pelvis-to-spine direction (negative: down)."""
    up = poses[:, _SPINE] - poses[:, H36M_17.root]
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    out = poses.copy()
    out[:, list(_LEGS)] += raise_m * up[:, None]
    return out


def reshape_body(rng: np.random.Generator, poses: np.ndarray, variation: BodyVariation) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with a body drawn from ``variation``: the hips raised
    (when ``hip_raise_m`` is set, drawn first), then every bone rescaled (:func:`random_bone_scales`)."""
    if variation.hip_raise_m is not None:
        poses = raise_hips(poses, rng.uniform(*variation.hip_raise_m))
    return scale_bones(poses, random_bone_scales(rng, median_bone_lengths(poses, H36M_17), variation), H36M_17)


def random_bone_scales(rng: np.random.Generator, lengths: np.ndarray, variation: BodyVariation) -> np.ndarray:
    """Per-joint multipliers ``(J,)`` of the bone ending at each joint (root: 1) for a body whose
    median bone lengths are ``lengths (J,)`` metres; mirror bones get the same multiplier."""
    scales = np.ones(H36M_17.num_joints)
    height = rng.uniform(*variation.height)
    for joints in _GROUPS.values():
        scales[list(joints)] = height * np.exp(rng.normal(0.0, variation.proportion_std))
    for joints, width in (((1, 4), variation.hip_width_m), ((11, 14), variation.shoulder_width_m)):
        if width is not None:
            scales[list(joints)] = rng.uniform(*width) / max(float(np.mean(lengths[list(joints)])), 1e-6)
    return scales
