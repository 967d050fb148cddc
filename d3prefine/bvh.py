"""BVH motion files: the skeleton description, the text writer, and h36m17 poses as BVH.

:func:`poses_to_bvh` turns joint positions into a BVH animation that Blender (File > Import >
Motion Capture) and other tools open: the skeleton's bone lengths are the sequence's mean bone
lengths, its rest pose a T-pose, Y up, metres. Every bone's direction is reproduced exactly in
every frame (joints with several children, the pelvis and the thorax, get one extra
zero-length joint per child, named ``<joint>.<child>``, that aims that child's bone); positions
differ from the input only by each frame's bone-length deviation from the mean.

Conventions: rotation channels are Euler angles in degrees composed intrinsically in the
listed order (``Zrotation Xrotation Yrotation`` is ``R = Rz @ Rx @ Ry``); position channels
replace the offset; a joint's global transform is ``G_parent @ [R_local | offset]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from d3prefine.errors import InputError
from d3prefine.metrics import bone_lengths
from d3prefine.skeleton import H36M_17, JointLayout

POSITION_AXES = {"Xposition": 0, "Yposition": 1, "Zposition": 2}
ROTATION_AXES = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
_JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
#: Camera frame (x right, y down, z forward) to BVH's Y-up frame: a half turn about x.
CAMERA_TO_YUP = np.diag([1.0, -1.0, -1.0])
#: Rest (T-pose) direction, Y-up, subject facing +z, of the bone ending at each h36m17 joint.
REST_DIRECTIONS = {
    "r_hip": (-1, 0, 0), "r_knee": (0, -1, 0), "r_ankle": (0, -1, 0),
    "l_hip": (1, 0, 0), "l_knee": (0, -1, 0), "l_ankle": (0, -1, 0),
    "spine": (0, 1, 0), "thorax": (0, 1, 0), "neck_nose": (0, 1, 0), "head_top": (0, 1, 0),
    "l_shoulder": (1, 0, 0), "l_elbow": (1, 0, 0), "l_wrist": (1, 0, 0),
    "r_shoulder": (-1, 0, 0), "r_elbow": (-1, 0, 0), "r_wrist": (-1, 0, 0),
}
#: End Site length of a leaf joint, as a fraction of the bone ending there.
END_SITE_FRACTION = 0.25
@dataclass(frozen=True)
class BvhSkeleton:
    """The HIERARCHY section.

    Attributes:
        joint_names: ``(J,)`` names in file order (parents always precede children).
        parents: ``(J,)`` parent index, ``-1`` for the root.
        offsets: ``(J, 3)`` rest translation of each joint in its parent frame, file units.
        channels: per joint, its channel names in file order (e.g. ``("Xposition", ..., "Yrotation")``).
    """

    joint_names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]

    @property
    def num_channels(self) -> int:
        return sum(len(c) for c in self.channels)

    def index(self, name: str) -> int:
        """Index of joint ``name``; raises :class:`InputError` if the skeleton has no such joint."""
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise InputError(f"BVH skeleton: no joint {name!r} (has {', '.join(self.joint_names)})") from None


def _swing(rest: np.ndarray, current: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` shortest rotations taking unit vector ``rest (3,)`` onto unit vectors ``current (T, 3)``."""
    from scipy.spatial.transform import Rotation  # scipy loads on first use: the command line starts faster

    axis = np.cross(rest, current)
    sine, cosine = np.linalg.norm(axis, axis=-1), current @ rest
    angle = np.arctan2(sine, cosine)
    fallback = np.cross(rest, [1.0, 0.0, 0.0] if abs(rest[0]) < 0.9 else [0.0, 1.0, 0.0])  # for opposite vectors
    axis = np.where(sine[:, None] > 1e-12, axis / np.maximum(sine, 1e-12)[:, None], fallback / np.linalg.norm(fallback))
    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def _aim(rests: np.ndarray, currents: np.ndarray) -> np.ndarray:
    """``(T, 3, 3)`` rotations best taking unit vectors ``rests (n, 3)`` onto ``currents (T, n, 3)`` (least squares)."""
    from scipy.spatial.transform import Rotation  # scipy loads on first use: the command line starts faster

    return np.stack([Rotation.align_vectors(frame, rests)[0].as_matrix() for frame in currents])


def poses_to_bvh(poses: np.ndarray, fps: float, layout: JointLayout = H36M_17) -> str:
    """BVH text of ``h36m17`` poses ``(T, 17, 3)``, metres, camera frame (x right, y down, z forward).

    The BVH is Y-up, in metres, one frame per pose, ``Frame Time = 1 / fps``.
    """
    from scipy.spatial.transform import Rotation  # scipy loads on first use: the command line starts faster

    if layout.name != H36M_17.name:
        raise ValueError(f"BVH export needs the h36m17 layout, got {layout.name}")
    poses = np.asarray(poses, dtype=np.float64) @ CAMERA_TO_YUP.T
    frames = len(poses)
    children = {j: [c for c, p in enumerate(layout.parents) if p == j] for j in range(layout.num_joints)}
    lengths = {c: float(length) for (_, c), length in zip(layout.bones, bone_lengths(poses, layout).mean(axis=0))}
    rest = {c: np.asarray(REST_DIRECTIONS[layout.joint_names[c]], dtype=float) for _, c in layout.bones}
    current = {c: poses[:, c] - poses[:, p] for p, c in layout.bones}
    current = {c: v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12) for c, v in current.items()}

    names, parents, offsets, channels, globals_ = [], [], [], [], []

    def add(name: str, parent: int, offset: np.ndarray, rotation: np.ndarray) -> int:
        names.append(name)
        parents.append(parent)
        offsets.append(offset)
        channels.append(_ROOT_CHANNELS if parent < 0 else _JOINT_CHANNELS)
        globals_.append(rotation)
        return len(names) - 1

    def visit(joint: int, parent: int, offset: np.ndarray) -> None:
        kids = children[joint]
        if len(kids) == 1:
            rotation = _swing(rest[kids[0]], current[kids[0]])
        elif kids:
            rotation = _aim(np.stack([rest[k] for k in kids]), np.stack([current[k] for k in kids], axis=1))
        else:
            rotation = globals_[parent]  # a leaf keeps its parent's orientation
        index = add(layout.joint_names[joint], parent, offset, rotation)
        for kid in kids:
            above = index
            if len(kids) > 1:  # a zero-length joint that aims this child's bone
                above = add(f"{layout.joint_names[joint]}.{layout.joint_names[kid]}", index, np.zeros(3), _swing(rest[kid], current[kid]))
            visit(kid, above, rest[kid] * lengths[kid])

    visit(layout.root, -1, np.zeros(3))
    values = []
    for j, parent in enumerate(parents):
        local = globals_[j] if parent < 0 else np.swapaxes(globals_[parent], 1, 2) @ globals_[j]
        euler = Rotation.from_matrix(local).as_euler("ZXY", degrees=True)
        values.append(np.concatenate([poses[:, layout.root], euler], axis=1) if parent < 0 else euler)
    skeleton = BvhSkeleton(tuple(names), np.array(parents), np.array(offsets), tuple(channels))
    leaf_ends = {j: rest[j] * lengths[j] * END_SITE_FRACTION for j in range(1, layout.num_joints) if not children[j]}
    end_sites = {names.index(layout.joint_names[j]): end for j, end in leaf_ends.items()}
    return format_bvh(skeleton, np.concatenate(values, axis=1).reshape(frames, -1), 1.0 / fps, end_sites)


def format_bvh(skeleton: BvhSkeleton, values: np.ndarray, frame_time: float, end_sites: dict[int, np.ndarray] | None = None) -> str:
    """BVH text for a skeleton and channel values ``(T, C)``; leaf joint ``j`` gets an End Site
    at ``end_sites[j]`` (default: a zero offset).

    Joints must be in depth-first order, as :func:`parse_bvh` returns them.
    """
    children: dict[int, list[int]] = {j: [] for j in range(len(skeleton.joint_names))}
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            children[int(p)].append(j)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "\t" * depth
        kind = "ROOT" if skeleton.parents[j] < 0 else "JOINT"
        lines.append(f"{pad}{kind} {skeleton.joint_names[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {' '.join(f'{v:.6f}' for v in skeleton.offsets[j])}")
        lines.append(f"{pad}\tCHANNELS {len(skeleton.channels[j])} {' '.join(skeleton.channels[j])}")
        for child in children[j]:
            emit(child, depth + 1)
        if not children[j]:
            end = (end_sites or {}).get(j, np.zeros(3))
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {' '.join(f'{v:.6f}' for v in end)}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    for root in np.flatnonzero(skeleton.parents < 0):
        emit(int(root), 0)
    lines += ["MOTION", f"Frames:\t{len(values)}", f"Frame Time:\t{frame_time:.7f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in np.atleast_2d(values)]
    return "\n".join(lines) + "\n"
