"""Bandai-Namco Research Motion dataset -> Human3.6M 17-joint poses, and the train/val split.

World frame of the output: right-handed, **Z up**, metres (the Human3.6M world convention).
The BVH files are Y-up centimetres; the conversion is the proper rotation :data:`YUP_TO_ZUP`.

Split (subject-disjoint as far as the dataset documents its actors; see ``recipes/README.md``):

* TRAIN: every dataset-1 motion + dataset-2 actor M (styles ``masculine``, ``normal``);
* VAL: dataset-2 actor A (styles ``active``, ``elderly``, ``exhausted``).

Note: the dataset was "proportion aligned" by its authors, so every file (both datasets, all
styles) has the same skeleton; actors cannot be told apart by bone offsets, only by style group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.skeleton import H36M_17
from recipes.bvh import BvhMotion, load_bvh

# Bandai joint for each H36M-17 joint, in H36M_17 order; None = head_top (extrapolated).
BANDAI_JOINTS: tuple[str | None, ...] = (
    "Hips",  # 0 pelvis
    "UpperLeg_R", "LowerLeg_R", "Foot_R",  # 1-3 right hip, knee, ankle
    "UpperLeg_L", "LowerLeg_L", "Foot_L",  # 4-6 left hip, knee, ankle
    "Chest",  # 7 spine
    "Neck",  # 8 thorax
    "Head",  # 9 neck/nose
    None,  # 10 head_top
    "UpperArm_L", "LowerArm_L", "Hand_L",  # 11-13 left shoulder, elbow, wrist
    "UpperArm_R", "LowerArm_R", "Hand_R",  # 14-16 right shoulder, elbow, wrist
)
HEAD_TOP = H36M_17.joint_names.index("head_top")
HEAD = H36M_17.joint_names.index("neck_nose")
THORAX = H36M_17.joint_names.index("thorax")
HEAD_TOP_EXTENSION_M = 0.12  # head_top = Head + 0.12 m along the Neck -> Head direction
CM_TO_M = 0.01

# Y-up (x, y, z) -> Z-up (x, -z, y): +90 degrees about the x axis, det = +1 (no mirroring), so
# left stays left. The BVH "up" y becomes world z; the BVH z (towards the viewer) becomes -y.
YUP_TO_ZUP = np.array(
    [
        [1.0, 0.0, 0.0],
        [0.0, 0.0, -1.0],
        [0.0, 1.0, 0.0],
    ]
)


class Split(str, Enum):
    TRAIN = "train"
    VAL = "val"


# Actor of each dataset-2 style group (dataset README: one actor per style group).
DATASET2_ACTORS: dict[str, str] = {
    "masculine": "M",
    "normal": "M",
    "active": "A",
    "elderly": "A",
    "exhausted": "A",
}
ACTOR_SPLIT: dict[str, Split] = {"M": Split.TRAIN, "A": Split.VAL}
DATASET1_ACTOR = "dataset-1"  # dataset-1 does not name its actors; all of it is training data

_NAME = re.compile(r"^(dataset-[12])_(.+)_([a-z-]+)_(\d+)$")


@dataclass(frozen=True)
class MotionInfo:
    """What a file name says: ``dataset-{1,2}_{content}_{style}_{take}``."""

    name: str
    dataset: str
    content: str
    style: str
    take: int
    actor: str
    split: Split


def motion_info(name: str) -> MotionInfo:
    """Parse a motion name (file stem); raises :class:`InputError` for an unknown pattern or style."""
    match = _NAME.match(name)
    if match is None:
        raise InputError(f"{name}: expected a name 'dataset-N_content_style_NNN'")
    dataset, content, style, take = match.groups()
    if dataset == "dataset-1":
        actor = DATASET1_ACTOR
        split = Split.TRAIN
    else:
        if style not in DATASET2_ACTORS:
            raise InputError(f"{name}: style {style!r} has no actor assignment (known: {', '.join(DATASET2_ACTORS)})")
        actor = DATASET2_ACTORS[style]
        split = ACTOR_SPLIT[actor]
    return MotionInfo(name, dataset, content, style, int(take), actor, split)


def to_h36m(motion: BvhMotion) -> np.ndarray:
    """Human3.6M-17 joints ``(T, 17, 3)`` float64, world frame Z-up, metres."""
    skeleton = motion.skeleton
    index = [skeleton.index(name) if name is not None else skeleton.index("Head") for name in BANDAI_JOINTS]
    poses = motion.positions[:, index] * CM_TO_M @ YUP_TO_ZUP.T
    direction = poses[:, HEAD] - poses[:, THORAX]
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    poses[:, HEAD_TOP] = poses[:, HEAD] + HEAD_TOP_EXTENSION_M * direction
    return poses


def skeleton_signature(motion: BvhMotion, decimals: int = 2) -> tuple[float, ...]:
    """Bone lengths (file units, rounded) of the first frame: identical for one body/skeleton."""
    pos = motion.positions[0]
    names = motion.skeleton.joint_names
    return tuple(
        float(np.round(np.linalg.norm(pos[j] - pos[p]), decimals))
        for j, p in enumerate(motion.skeleton.parents)
        if p >= 0 and names[j] != "Hips"  # the root -> Hips "bone" is the global trajectory
    )


def read_h36m(path: Path) -> tuple[Path, np.ndarray | None, float, tuple[float, ...], str]:
    """Read one BVH file (a process-pool worker).

    Returns ``(path, poses (T, 17, 3) float32 world metres or None, fps, skeleton signature,
    error message)``; an unreadable or empty file gives ``poses=None`` and the message.
    """
    try:
        motion = load_bvh(path)
    except InputError as error:
        return path, None, 0.0, (), str(error)
    return path, to_h36m(motion).astype(np.float32), motion.fps, skeleton_signature(motion), ""
