"""BVH motion files: a fast parser and vectorized forward kinematics.

Conventions (BVH as written by MotionBuilder/Maya, e.g. the Bandai-Namco dataset):

* every joint has an ``OFFSET`` (its translation in the parent frame) and a ``CHANNELS`` line;
* position channels, where present, *replace* the offset component of their axis (this is how
  the root carries the global trajectory and how Bandai-Namco stores every bone translation);
* rotation channels are Euler angles in degrees, composed **intrinsically** in the order they
  are listed: ``Zrotation Xrotation Yrotation`` means ``R = Rz @ Rx @ Ry``;
* the global transform of a joint is ``G_parent @ [R_local | t_local]``; ``End Site`` blocks carry
  no channels and are not returned as joints.

Positions are returned in file units (Bandai-Namco: centimetres, Y-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from d3prefine.bvh import POSITION_AXES as _POSITION_AXES
from d3prefine.bvh import ROTATION_AXES as _ROTATION_AXES
from d3prefine.bvh import BvhSkeleton
from d3prefine.errors import InputError


@dataclass(frozen=True)
class BvhMotion:
    """A parsed BVH file after forward kinematics.

    Attributes:
        skeleton: the hierarchy.
        positions: ``(T, J, 3)`` float64 global joint positions, file units.
        frame_time: seconds per frame.
    """

    skeleton: BvhSkeleton
    positions: np.ndarray
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def _parse_hierarchy(tokens: list[str], source: str) -> BvhSkeleton:
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []  # joint index per open brace; -2 marks an End Site block
    pending: int | None = None  # joint whose "{" is expected next
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            parent = next((s for s in reversed(stack) if s >= 0), -1)
            if tok == "ROOT" and stack:
                raise InputError(f"{source}: ROOT inside another joint")
            names.append(tokens[i + 1])
            parents.append(parent)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            pending = -2
            i += 2  # "End Site"
        elif tok == "{":
            if pending is None:
                raise InputError(f"{source}: unexpected '{{' in HIERARCHY")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise InputError(f"{source}: unbalanced '}}' in HIERARCHY")
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if stack and stack[-1] >= 0:
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            chans = tuple(tokens[i + 2 : i + 2 + n])
            unknown = [c for c in chans if c not in _POSITION_AXES and c not in _ROTATION_AXES]
            if unknown or not stack or stack[-1] < 0:
                raise InputError(f"{source}: bad CHANNELS line {' '.join(chans)!r}")
            channels[stack[-1]] = chans
            i += 2 + n
        else:
            i += 1  # "HIERARCHY" and anything unknown
    if not names or stack:
        raise InputError(f"{source}: HIERARCHY has no joints or unbalanced braces")
    return BvhSkeleton(tuple(names), np.array(parents, dtype=np.int64), np.array(offsets), tuple(channels))


def parse_bvh(text: str, source: str = "<string>") -> tuple[BvhSkeleton, np.ndarray, float]:
    """Parse BVH text into ``(skeleton, channel values (T, C) float64, frame_time seconds)``.

    Raises :class:`InputError` (naming ``source``) for an empty or malformed file.
    """
    head, sep, motion = text.partition("MOTION")
    if not sep or "HIERARCHY" not in head:
        raise InputError(f"{source}: not a BVH file (expected HIERARCHY and MOTION sections)")
    skeleton = _parse_hierarchy(head.split(), source)
    lines = motion.lstrip().split("\n", 2)
    if len(lines) < 2 or not lines[0].startswith("Frames:") or not lines[1].startswith("Frame Time:"):
        raise InputError(f"{source}: MOTION section lacks 'Frames:' / 'Frame Time:' lines")
    num_frames = int(lines[0].split(":")[1])
    frame_time = float(lines[1].split(":")[1])
    values = np.fromstring(lines[2] if len(lines) > 2 else "", sep=" ")
    c = skeleton.num_channels
    if num_frames <= 0 or values.size != num_frames * c or frame_time <= 0:
        raise InputError(
            f"{source}: MOTION expected {num_frames} frames x {c} channels, got {values.size} values"
        )
    return skeleton, values.reshape(num_frames, c), frame_time


def forward_kinematics(skeleton: BvhSkeleton, values: np.ndarray) -> np.ndarray:
    """Global joint positions ``(T, J, 3)`` (file units) from channel values ``(T, C)``."""
    num_frames = values.shape[0]
    num_joints = len(skeleton.joint_names)
    positions = np.empty((num_frames, num_joints, 3))
    rotations = np.empty((num_frames, num_joints, 3, 3))
    col = 0
    for j, chans in enumerate(skeleton.channels):
        translation = np.broadcast_to(skeleton.offsets[j], (num_frames, 3)).copy()
        rot_cols = [col + k for k, c in enumerate(chans) if c in _ROTATION_AXES]
        for k, c in enumerate(chans):
            if c in _POSITION_AXES:
                translation[:, _POSITION_AXES[c]] = values[:, col + k]
        if rot_cols:
            order = "".join(_ROTATION_AXES[c] for c in chans if c in _ROTATION_AXES)
            local = Rotation.from_euler(order, values[:, rot_cols], degrees=True).as_matrix()
        else:
            local = np.broadcast_to(np.eye(3), (num_frames, 3, 3))
        col += len(chans)
        parent = skeleton.parents[j]
        if parent < 0:
            positions[:, j] = translation
            rotations[:, j] = local
        else:
            parent_rot = rotations[:, parent]
            positions[:, j] = positions[:, parent] + np.einsum("tij,tj->ti", parent_rot, translation)
            rotations[:, j] = parent_rot @ local
    return positions


def load_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file and run forward kinematics; raises :class:`InputError` if it is empty or invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not text.strip():
        raise InputError(f"{path}: empty BVH file (0 bytes)")
    skeleton, values, frame_time = parse_bvh(text, str(path))
    return BvhMotion(skeleton, forward_kinematics(skeleton, values), frame_time)
