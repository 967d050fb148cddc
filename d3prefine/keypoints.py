"""Keypoint layouts of 2D detectors mapped to d3prefine's ``h36m17`` joint order.

A detector rarely outputs Human3.6M's 17 joints: each :class:`KeypointMapping` states, for
every ``h36m17`` joint, which source keypoints fill it and with what weights (a copy is one
source with weight 1; a synthesised joint is a weighted mean of several), plus a one-line note
for joints that are not the same anatomical point. Nothing is inferred from names: every
mapping is written out by index. :meth:`KeypointMapping.describe` gives the JSON that pose
files record in their provenance, so a reader knows what fills each joint.

Converters for other estimators' formats register their layouts in :data:`MAPPINGS`. Exporting
refined poses back to a source layout moves every source keypoint with its *anchor* target joint
(:meth:`KeypointMapping.follow`): the joint that copies it, or the one named in ``anchors`` (a
face point follows the nose, a finger the wrist, a toe the ankle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d3prefine.errors import InputError
from d3prefine.skeleton import H36M_17, JointLayout, registered


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
        anchors: ``(source index, target index)`` for every source keypoint that no target
            joint copies: the target joint whose refinement it follows on export.
    """

    name: str
    source_names: tuple[str, ...]
    joints: tuple[JointSource, ...]
    target: JointLayout = H36M_17
    description: str = ""
    anchors: tuple[tuple[int, int], ...] = ()

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
        copied = {src.indices[0] for src in self.joints if len(src.indices) == 1}
        anchored = dict(self.anchors)
        if any(not 0 <= t < self.target.num_joints for t in anchored.values()) or set(anchored) & copied:
            raise ValueError(f"mapping {self.name}: anchors must pair uncopied source keypoints with target joints")
        if copied | set(anchored) != set(range(n)):
            raise ValueError(f"mapping {self.name}: every source keypoint needs a copy or an anchor")

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

    def anchor_indices(self) -> np.ndarray:
        """``(S,)``: the target joint each source keypoint follows on export (see ``anchors``)."""
        anchors = dict(self.anchors)
        for j, src in enumerate(self.joints):
            if len(src.indices) == 1:
                anchors.setdefault(src.indices[0], j)
        return np.array([anchors[i] for i in range(self.num_source)])

    def follow(self, keypoints: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Source keypoints ``(..., S, D)`` moved by the change ``after - before`` (``(..., J, D)``
        target joints, ``before = apply(keypoints)``) of their anchor joints: a copied keypoint
        lands exactly on its refined joint."""
        return np.asarray(keypoints) + (np.asarray(after) - np.asarray(before))[..., self.anchor_indices(), :]

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

# h36m17 itself: every joint copied.
H36M_IDENTITY = KeypointMapping(
    name=H36M_17.name,
    source_names=H36M_17.joint_names,
    joints=tuple(keypoint(j) for j in range(H36M_17.num_joints)),
    description="Human3.6M 17 joints (VideoPose3D, MotionBERT, MMPose 3D): no mapping needed",
)

_HIPS_NOTE = "synthesised: midpoint of the hips (a detector's hips sit higher and wider than the mocap's)"
_SPINE_NOTE = "synthesised: mean of both shoulders and both hips, halfway between pelvis and thorax"
_THORAX_NOTE = "synthesised: midpoint of the shoulders"
_EARS_NOTE = "synthesised: midpoint of the ears, about 0.1 m below the mocap head top"
_NOSE_NOTE = "the nose, where the mocap neck/nose marker is at the neck's top"


def _limbs(l_hip: int, l_knee: int, l_ankle: int, l_shoulder: int, l_elbow: int, l_wrist: int) -> dict[str, JointSource]:
    """The twelve limb joints of a layout that numbers each right joint one after its left twin (COCO order)."""
    left = {"hip": l_hip, "knee": l_knee, "ankle": l_ankle, "shoulder": l_shoulder, "elbow": l_elbow, "wrist": l_wrist}
    return {f"{side}_{part}": keypoint(index + (side == "r")) for part, index in left.items() for side in "lr"}


def _from_ears(nose: int, l_ear: int, l_shoulder: int, l_hip: int, l_knee: int, l_ankle: int, l_elbow: int, l_wrist: int) -> tuple[JointSource, ...]:
    """The 17 joint sources of a layout without pelvis, spine, thorax and head top (COCO,
    MediaPipe; each right keypoint numbered one after its left twin): the centre joints
    synthesised from hips, shoulders and ears."""
    r_ear, r_shoulder, r_hip = l_ear + 1, l_shoulder + 1, l_hip + 1
    centre = {
        "pelvis": blend({l_hip: 0.5, r_hip: 0.5}, _HIPS_NOTE),
        "spine": blend({l_shoulder: 0.25, r_shoulder: 0.25, l_hip: 0.25, r_hip: 0.25}, _SPINE_NOTE),
        "thorax": blend({l_shoulder: 0.5, r_shoulder: 0.5}, _THORAX_NOTE),
        "neck_nose": keypoint(nose, _NOSE_NOTE),
        "head_top": blend({l_ear: 0.5, r_ear: 0.5}, _EARS_NOTE),
    }
    return _h36m_joints(centre, _limbs(l_hip, l_knee, l_ankle, l_shoulder, l_elbow, l_wrist))


def _h36m_joints(centre: dict[str, JointSource], limbs: dict[str, JointSource]) -> tuple[JointSource, ...]:
    """The 17 joint sources in ``h36m17`` order from the centre joints and the limbs, by name."""
    named = {**centre, **limbs}
    return tuple(named[name] for name in H36M_17.joint_names)


_COCO_NAMES = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
_H = {name: j for j, name in enumerate(H36M_17.joint_names)}

# COCO-17 keypoints (Detectron, RTMPose, YOLO-pose, VideoPose3D's custom videos).
COCO_17 = KeypointMapping(
    name="coco17",
    source_names=_COCO_NAMES,
    joints=_from_ears(nose=0, l_ear=3, l_shoulder=5, l_hip=11, l_knee=13, l_ankle=15, l_elbow=7, l_wrist=9),
    description="COCO 17 keypoints",
    anchors=((1, _H["neck_nose"]), (2, _H["neck_nose"]), (3, _H["head_top"]), (4, _H["head_top"])),
)

# AlphaPose Halpe-26: COCO-17 plus head, neck, hip centre and six foot points.
HALPE_26 = KeypointMapping(
    name="halpe26",
    source_names=(*_COCO_NAMES, "head", "neck", "hip", "l_big_toe", "r_big_toe", "l_small_toe", "r_small_toe", "l_heel", "r_heel"),
    joints=_h36m_joints(
        {
            "pelvis": keypoint(19, "Halpe's hip centre"),
            "spine": blend({18: 0.5, 19: 0.5}, "synthesised: midpoint of Halpe's neck and hip centre (as MotionBERT)"),
            "thorax": keypoint(18, "Halpe's neck"),
            "neck_nose": keypoint(0, _NOSE_NOTE),
            "head_top": keypoint(17, "Halpe's head (top of the head)"),
        },
        _limbs(11, 13, 15, 5, 7, 9),
    ),
    description="AlphaPose Halpe 26 body keypoints",
    anchors=(
        *((i, _H["neck_nose"]) for i in (1, 2, 3, 4)),
        *((i, _H["l_ankle"]) for i in (20, 22, 24)),
        *((i, _H["r_ankle"]) for i in (21, 23, 25)),
    ),
)

# MediaPipe Pose (BlazePose) 33 landmarks.
MEDIAPIPE_33 = KeypointMapping(
    name="mediapipe33",
    source_names=(
        "nose", "l_eye_inner", "l_eye", "l_eye_outer", "r_eye_inner", "r_eye", "r_eye_outer", "l_ear", "r_ear",
        "mouth_left", "mouth_right", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow", "l_wrist", "r_wrist",
        "l_pinky", "r_pinky", "l_index", "r_index", "l_thumb", "r_thumb", "l_hip", "r_hip", "l_knee", "r_knee",
        "l_ankle", "r_ankle", "l_heel", "r_heel", "l_foot_index", "r_foot_index",
    ),
    joints=_from_ears(nose=0, l_ear=7, l_shoulder=11, l_hip=23, l_knee=25, l_ankle=27, l_elbow=13, l_wrist=15),
    description="MediaPipe Pose 33 landmarks",
    anchors=(
        *((i, _H["neck_nose"]) for i in (1, 2, 3, 4, 5, 6, 9, 10)),
        (7, _H["head_top"]), (8, _H["head_top"]),
        *((i, _H["l_wrist"]) for i in (17, 19, 21)),
        *((i, _H["r_wrist"]) for i in (18, 20, 22)),
        *((i, _H["l_ankle"]) for i in (29, 31)),
        *((i, _H["r_ankle"]) for i in (30, 32)),
    ),
)

MAPPINGS: dict[str, KeypointMapping] = {m.name: m for m in (H36M_IDENTITY, SH_16, COCO_17, HALPE_26, MEDIAPIPE_33)}


def get_mapping(name: str) -> KeypointMapping:
    """The registered mapping of source layout ``name``; raises :class:`InputError` for an unknown one."""
    return registered(MAPPINGS, name, "keypoint layout")
