"""Joint layouts: names, kinematic parents and left/right pairs, defined explicitly.

A layout is never inferred from joint names: every layout lists its parents and its
symmetric (left, right) pairs by index. Human3.6M's 17-joint layout is the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from d3prefine.errors import InputError

T = TypeVar("T")
ArrayT = TypeVar("ArrayT")  # a numpy array or a torch tensor


@dataclass(frozen=True)
class JointLayout:
    """A skeleton definition.

    Attributes:
        name: identifier stored in pose files (``joint_layout``), e.g. ``"h36m17"``.
        joint_names: one name per joint, in array order.
        parents: parent index of every joint, ``-1`` for the root.
        left_right: pairs ``(left_index, right_index)`` of mirror-symmetric joints.
        root: index of the root joint (poses are made root-relative around it).
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    left_right: tuple[tuple[int, int], ...]
    root: int = 0

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n:
            raise ValueError(f"layout {self.name}: {len(self.parents)} parents for {n} joints")
        roots = [j for j, p in enumerate(self.parents) if p < 0]
        if roots != [self.root]:
            raise ValueError(f"layout {self.name}: root must be the only joint without parent, got {roots}")
        for j, p in enumerate(self.parents):
            if p >= n or (p >= 0 and p == j):
                raise ValueError(f"layout {self.name}: joint {j} has invalid parent {p}")
        for j in range(n):  # every chain of parents reaches the root within n steps, else it has a cycle
            chain, k = 0, j
            while k != self.root:
                k, chain = self.parents[k], chain + 1
                if chain > n:
                    raise ValueError(f"layout {self.name}: the parents of joint {j} form a cycle")
        paired = [j for pair in self.left_right for j in pair]
        if any(len(pair) != 2 for pair in self.left_right) or len(set(paired)) != len(paired):
            raise ValueError(f"layout {self.name}: left_right must be pairs of distinct joints, each joint in one pair at most")
        if any(not 0 <= j < n for j in paired) or self.root in paired:
            raise ValueError(f"layout {self.name}: left_right pairs must name non-root joints 0..{n - 1}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """``(parent, child)`` index pairs, one per non-root joint."""
        return tuple((p, j) for j, p in enumerate(self.parents) if p >= 0)

    @property
    def topological_order(self) -> tuple[int, ...]:
        """Non-root joint indices ordered so that every parent comes before its children."""
        order, placed = [], {self.root}
        while len(placed) < self.num_joints:  # terminates: __post_init__ rejects cycles
            for joint, parent in enumerate(self.parents):
                if joint not in placed and parent in placed:
                    order.append(joint)
                    placed.add(joint)
        return tuple(order)

    @property
    def flip_permutation(self) -> np.ndarray:
        """Index permutation that swaps every left joint with its right twin, shape ``(J,)``."""
        perm = np.arange(self.num_joints)
        for left, right in self.left_right:
            perm[left], perm[right] = right, left
        return perm

    def mirror(self, poses: ArrayT) -> ArrayT:
        """Mirror image of ``poses (..., J, C)``, a numpy array or torch tensor (``C = 2``: image
        coordinates about a vertical axis, e.g. root-relative normalized screen units; ``C = 3``:
        metres, camera frame): the first coordinate (image u, camera x) negated and every left
        joint swapped with its right twin. The mirror of a 3D pose projects to the mirror of its
        2D pose (about the principal point); ``mirror(mirror(poses))`` is ``poses``."""
        mirrored = poses[..., self.flip_permutation.tolist(), :]  # advanced indexing: a copy
        mirrored[..., 0] = -mirrored[..., 0]
        return mirrored

    def side(self, joint: int) -> str:
        """``"left"``, ``"right"`` or ``"centre"`` for a joint index (from ``left_right``)."""
        for left, right in self.left_right:
            if joint == left:
                return "left"
            if joint == right:
                return "right"
        return "centre"


# Human3.6M 17-joint order as used by VideoPose3D, MixSTE, MotionBERT.
H36M_17 = JointLayout(
    name="h36m17",
    joint_names=(
        "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
        "spine", "thorax", "neck_nose", "head_top",
        "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    left_right=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
    root=0,
)

LAYOUTS: dict[str, JointLayout] = {H36M_17.name: H36M_17}
DEFAULT_LAYOUT = H36M_17.name


def registered(registry: Mapping[str, T], name: str, kind: str) -> T:
    """``registry[name]``; raises :class:`InputError` naming ``kind`` and the known names for an unknown one."""
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise InputError(f"unknown {kind} {name!r} (known: {known})") from None


def get_layout(name: str) -> JointLayout:
    """The registered layout called ``name``; raises :class:`InputError` for an unknown one."""
    return registered(LAYOUTS, name, "joint layout")
