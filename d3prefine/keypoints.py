"""Keypoint layouts of 2D detectors mapped to d3prefine's ``h36m17`` joint order.

A detector rarely outputs Human3.6M's 17 joints: each :class:`KeypointMapping` states, for
every ``h36m17`` joint, which source keypoints fill it and with what weights (a copy is one
source with weight 1; a synthesised joint is a weighted mean of several), plus a one-line note
for joints that are not the same anatomical point. Nothing is inferred from names: every
mapping is written out by index. :meth:`KeypointMapping.describe` gives the JSON that pose
files record in their provenance, so a reader knows what fills each joint.

Converters for other estimators' formats register their layouts in :data:`MAPPINGS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d3prefine.errors import InputError
from d3prefine.skeleton import H36M_17, JointLayout


@dataclass(frozen=True)
class JointSource:
    """How one target joint is computed: ``sum_k weights[k] * keypoint[indices[k]]``.

    Attributes:
        indices: source keypoint indices (distinct).
        weights: one weight per index, summing to 1 (a convex combination stays in the image).
        note: what the result is when it is not the same anatomical point as the target joint
            ("" for a plain copy of the same point).
    """

    indices: tuple[int, ...]
    weights: tuple[float, ...]
    note: str = ""


def keypoint(index: int, note: str = "") -> JointSource:
    """The target joint is source keypoint ``index`` itself."""
    return JointSource((index,), (1.0,), note)


def blend(weights: dict[int, float], note: str) -> JointSource:
    """A synthesised target joint: the weighted mean of source keypoints ``{index: weight}``."""
    return JointSource(tuple(weights), tuple(float(w) for w in weights.values()), note)


@dataclass(frozen=True)
class KeypointMapping:
    """A source keypoint layout and how it fills every joint of ``target``.

    Attributes:
        name: source layout identifier (e.g. ``"sh16"``).
        source_names: one name per source keypoint, in array order.
        joints: one :class:`JointSource` per target joint, in target order.
        target: the layout the mapping produces (``h36m17``).
        description: where the layout comes from (detector, dataset).
    """

    name: str
    source_names: tuple[str, ...]
    joints: tuple[JointSource, ...]
    target: JointLayout = H36M_17
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.joints) != self.target.num_joints:
            raise ValueError(f"mapping {self.name}: {len(self.joints)} joint sources for the {self.target.num_joints} joints of {self.target.name}")
        n = len(self.source_names)
        for j, src in enumerate(self.joints):
            where = f"mapping {self.name}: {self.target.joint_names[j]}"
            if not src.indices or len(src.indices) != len(src.weights) or len(set(src.indices)) != len(src.indices):
                raise ValueError(f"{where}: needs distinct source indices, one weight each")
            if any(not 0 <= i < n for i in src.indices):
                raise ValueError(f"{where}: source index outside 0..{n - 1}")
            if any(w <= 0 for w in src.weights) or abs(sum(src.weights) - 1.0) > 1e-9:
                raise ValueError(f"{where}: weights must be positive and sum to 1, got {src.weights}")

    @property
    def num_source(self) -> int:
        return len(self.source_names)

    def apply(self, keypoints: np.ndarray) -> np.ndarray:
        """Map ``(..., S, D)`` source keypoints to ``(..., J, D)`` target joints (same units, float).

        A NaN source keypoint makes NaN only the target joints that use it. Raises
        :class:`InputError` when the keypoint axis is not ``S`` long.
        """
        keypoints = np.asarray(keypoints)
        if keypoints.ndim < 2 or keypoints.shape[-2] != self.num_source:
            raise InputError(f"{self.name} keypoints must have shape (..., {self.num_source}, D), got {keypoints.shape}")
        keypoints = keypoints.astype(np.result_type(keypoints.dtype, np.float32), copy=False)
        out = [sum(w * keypoints[..., i, :] for i, w in zip(src.indices, src.weights)) for src in self.joints]
        return np.stack(out, axis=-2)

    def describe(self) -> dict:
        """JSON-able summary for a pose file's provenance: every target joint that is not a plain
        copy of the same point, with its sources and note."""
        synthesised = {}
        for name, src in zip(self.target.joint_names, self.joints):
            if src.note:
                synthesised[name] = {
                    "from": {self.source_names[i]: w for i, w in zip(src.indices, src.weights)},
                    "note": src.note,
                }
        return {"source_layout": self.name, "target_layout": self.target.name, "description": self.description, "synthesised": synthesised}


# Stacked-Hourglass (MPII-style) 16-joint order, as in the detections of Martinez et al. 2017.
SH_16 = KeypointMapping(
    name="sh16",
    source_names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "spine",
        "thorax", "head", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
    ),
    joints=(
        keypoint(6),  # pelvis
        keypoint(2), keypoint(1), keypoint(0),  # r_hip, r_knee, r_ankle
        keypoint(3), keypoint(4), keypoint(5),  # l_hip, l_knee, l_ankle
        keypoint(7, "the detector's spine, not the mocap spine marker (median gap ~45 px on Human3.6M)"),
        keypoint(8),  # thorax
        blend({8: 0.7, 9: 0.3}, "synthesised: the detector has no neck/nose; 0.7 thorax + 0.3 head, where the mocap "
              "neck/nose marker projects on Human3.6M (median 0.28-0.47 along thorax -> head)"),
        keypoint(9, "the detector's head, not the mocap head-top marker (median gap ~20 px on Human3.6M)"),
        keypoint(13), keypoint(14), keypoint(15),  # l_shoulder, l_elbow, l_wrist
        keypoint(12), keypoint(11), keypoint(10),  # r_shoulder, r_elbow, r_wrist
    ),
    description="Stacked-Hourglass (MPII) 16 keypoints, e.g. the Human3.6M detections of Martinez et al. 2017",
)

MAPPINGS: dict[str, KeypointMapping] = {SH_16.name: SH_16}


def get_mapping(name: str) -> KeypointMapping:
    """The registered mapping of source layout ``name``; raises :class:`InputError` for an unknown one."""
    try:
        return MAPPINGS[name]
    except KeyError:
        known = ", ".join(sorted(MAPPINGS))
        raise InputError(f"unknown keypoint layout {name!r} (known: {known})") from None
