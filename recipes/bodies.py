"""Body-build variation: per-sequence bone lengths well beyond the Bandai actors'.

The Bandai capture aligned every file to nearly the same proportions (hips 68 mm from the
pelvis, thigh ~384 mm), while Human3.6M's subjects have hips ~130 mm from the pelvis (another
marker definition) and thighs ~450 mm. Weights trained on one build pull every bone toward it.
:func:`random_bone_scales` draws one multiplier per bone for a sequence;
:func:`d3prefine.bones.scale_bones` applies them, keeping the root trajectory and every bone's direction (so the motion's joint
angles are unchanged). :func:`reshape_head` and :func:`move_spine` change where joints sit rather
than how long the bones are: Bandai's neck/nose joint is its ``Head`` joint, on the thorax-to-head-top
line (the head top is extrapolated along it), while Human3.6M's nose sits about halfway up that line
and 50-70 mm in front of it, and Human3.6M's spine joint sits further behind the pelvis-thorax line.
:func:`bend_posture` changes the pose itself: the capture holds no sitting (walks, runs, waves,
dances, fights), while a third of Human3.6M's actions are seated (Sitting, SittingDown, and much of
Eating, Phoning, Smoking), where the shipped weights did not help (benchmarks/README.md, "Seated
postures"); it flexes the hips and knees and leans the trunk, keeping every bone's length.
:func:`hold_still` first quiets a bent sequence below the waist (the legs fixed in the pelvis frame,
the root at its mean) while the upper body moves as captured.
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
class HeadVariation:
    """Where the nose and the head top sit, drawn per sequence (uniform) for :func:`reshape_head`.

    Attributes:
        nose_fraction: ``(min, max)`` of the nose's position along the thorax-to-head-top line, as a
            fraction of its length (Bandai 0.35, Human3.6M's subjects 0.51-0.53).
        nose_forward_m: ``(min, max)`` metres the nose sits in front of that line (Bandai 0,
            Human3.6M's subjects 0.04-0.08 per sequence, 5th-95th percentiles).
        tilt_deg: ``(min, max)`` degrees the thorax-to-head-top line is tilted forward about the
            shoulders' axis (Human3.6M leans it 12-16 degrees forward of the pelvis-thorax line on
            median, Bandai's validation actor 6; ``benchmarks.joint_geometry``).
    """

    nose_fraction: tuple[float, float] = (0.33, 0.55)
    nose_forward_m: tuple[float, float] = (0.0, 0.08)
    tilt_deg: tuple[float, float] = (0.0, 15.0)

    def __post_init__(self) -> None:
        for name in ("nose_fraction", "nose_forward_m", "tilt_deg"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(low, high)}")


@dataclass(frozen=True)
class PostureVariation:
    """Seated-like postures drawn per sequence for :func:`bend_posture` (angles uniform, degrees).

    Attributes:
        share: probability that a sequence is bent at all (the others keep the capture's pose).
        hip_flexion_deg: ``(min, max)`` of the thighs' forward swing about the hips' left-right
            axis (a chair: about 90).
        knee_flexion_deg: ``(min, max)`` of the shins' backward swing about the knees (a chair: about 90).
        leg_offset_deg: each leg's hip and knee angles differ from the drawn ones by up to this much.
        lean_deg: ``(min, max)`` of the trunk's (and the arms' and head's) forward lean about the pelvis.
        stillness: ``(min, max)`` of how far a bent sequence is held still before it is bent
            (:func:`hold_still`: 0 moves as captured, 1 keeps the legs' pose in the pelvis frame and the
            root's position fixed); drawn after the angles, and only when ``max > 0``, so a variation
            without it draws the same sequences as before the field existed.
    """

    share: float = 0.4
    hip_flexion_deg: tuple[float, float] = (30.0, 110.0)
    knee_flexion_deg: tuple[float, float] = (30.0, 120.0)
    leg_offset_deg: float = 15.0
    lean_deg: tuple[float, float] = (-10.0, 30.0)
    stillness: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not 0 <= self.share <= 1 or self.leg_offset_deg < 0:
            raise ValueError(f"share must lie in [0, 1] and leg_offset_deg be >= 0, got {self.share}, {self.leg_offset_deg}")
        for name in ("hip_flexion_deg", "knee_flexion_deg", "lean_deg", "stillness"):
            low, high = getattr(self, name)
            if not low <= high:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {(low, high)}")
        if not (0 <= self.stillness[0] and self.stillness[1] <= 1):  # min <= max checked above
            raise ValueError(f"stillness must lie in [0, 1], got {self.stillness}")


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
        head: where the nose and head top sit (:func:`reshape_head`, drawn after the hips);
            ``None`` keeps the capture's (the builds of stops 15-27).
        spine_back_m: ``(min, max)`` metres the spine joint is moved backwards
            (:func:`move_spine`, drawn after the head); ``None`` keeps it.
        posture: seated-like postures (:func:`bend_posture`, drawn after the spine); ``None``
            keeps the capture's poses (the builds of stops 15-29).
    """

    height: tuple[float, float] = (0.85, 1.15)
    proportion_std: float = 0.1
    hip_width_m: tuple[float, float] | None = (0.06, 0.15)
    shoulder_width_m: tuple[float, float] | None = (0.11, 0.19)
    hip_raise_m: tuple[float, float] | None = None
    head: HeadVariation | None = None
    spine_back_m: tuple[float, float] | None = None
    posture: PostureVariation | None = None

    def __post_init__(self) -> None:
        for name in ("height", "hip_width_m", "shoulder_width_m"):
            bounds = getattr(self, name)
            if bounds is not None and not 0 < bounds[0] <= bounds[1]:
                raise ValueError(f"{name} must be (min, max) with 0 < min <= max, got {bounds}")
        for name in ("hip_raise_m", "spine_back_m"):
            bounds = getattr(self, name)
            if bounds is not None and not bounds[0] <= bounds[1]:
                raise ValueError(f"{name} must be (min, max) with min <= max, got {bounds}")
        if self.proportion_std < 0:
            raise ValueError(f"proportion_std must be >= 0, got {self.proportion_std}")


# Human3.6M-17 joints below each hip (the hips included): they move together in raise_hips.
_LEGS = _GROUPS["hip"] + _GROUPS["thigh"] + _GROUPS["shin"]
(_SPINE,) = _GROUPS["spine"]
(_THORAX,) = _GROUPS["thorax"]
(_NOSE,) = _GROUPS["neck"]
(_HEAD_TOP,) = _GROUPS["head"]
_LEFT_SHOULDER, _RIGHT_SHOULDER = _GROUPS["shoulder"]
_RIGHT_HIP, _LEFT_HIP = _GROUPS["hip"]
_LEG_CHAINS = tuple(zip(_GROUPS["hip"], _GROUPS["thigh"], _GROUPS["shin"]))  # (hip, knee, ankle), right then left
_UPPER_BODY = [j for j in range(H36M_17.num_joints) if j != H36M_17.root and j not in _LEGS]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def orthogonal_unit(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The unit part of ``v (..., 3)`` orthogonal to the unit ``axis (..., 3)``."""
    return _unit(v - (v * axis).sum(-1, keepdims=True) * axis)


def rotate_about(v: np.ndarray, axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """``v (..., 3)`` rotated ``angle_rad`` about the unit ``axis`` (broadcast against ``v``), right-handed (Rodrigues)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return v * c + np.cross(axis, v) * s + axis * (axis * v).sum(-1, keepdims=True) * (1 - c)


def _axes(poses: np.ndarray, right: int, left: int, top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit ``(left, up, forward)``, each ``(T, 3)``, of ``poses (T, J, 3)``: left from joint ``right``
    to joint ``left``, up from the root to joint ``top`` (made orthogonal to left), forward = left x up."""
    across = _unit(poses[:, left] - poses[:, right])
    up = orthogonal_unit(poses[:, top] - poses[:, H36M_17.root], across)
    return across, up, np.cross(across, up)


def torso_axes(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_axes` of ``poses (T, J, 3)`` h36m17 across the shoulders and up to the thorax (forward:
    the way the chest faces)."""
    return _axes(poses, _RIGHT_SHOULDER, _LEFT_SHOULDER, _THORAX)


def pelvis_axes(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_axes` of ``poses (T, J, 3)`` h36m17 across the hips and up to the spine joint."""
    return _axes(poses, _RIGHT_HIP, _LEFT_HIP, _SPINE)


def raise_hips(poses: np.ndarray, raise_m: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with the hips and everything below them moved
    ``raise_m`` metres along each frame's pelvis-to-spine direction (negative: down)."""
    up = _unit(poses[:, _SPINE] - poses[:, H36M_17.root])
    out = poses.copy()
    out[:, list(_LEGS)] += raise_m * up[:, None]
    return out


def reshape_head(poses: np.ndarray, nose_fraction: float, nose_forward_m: float, tilt_deg: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with the thorax-to-head-top line (its length kept) tilted
    ``tilt_deg`` forward about each frame's left axis (:func:`torso_axes`), and the nose put
    ``nose_fraction`` of the way along it and ``nose_forward_m`` metres in front of it."""
    left, _, forward = torso_axes(poses)
    line = poses[:, _HEAD_TOP] - poses[:, _THORAX]
    length = np.linalg.norm(line, axis=-1, keepdims=True)
    u = line / length
    u = rotate_about(u, left, np.radians(tilt_deg))  # forward = left x up: a positive angle tilts up toward forward
    ahead = orthogonal_unit(forward, u)
    out = poses.copy()
    out[:, _HEAD_TOP] = poses[:, _THORAX] + length * u
    out[:, _NOSE] = poses[:, _THORAX] + nose_fraction * length * u + nose_forward_m * ahead
    return out


def move_spine(poses: np.ndarray, back_m: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with the spine joint alone moved ``back_m`` metres against
    each frame's forward direction (:func:`torso_axes`)."""
    out = poses.copy()
    out[:, _SPINE] -= back_m * torso_axes(poses)[2]
    return out


def hold_still(poses: np.ndarray, stillness: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with the legs and the root moved ``stillness`` of the way
    (0: unchanged, 1: all the way) toward a still pose: each thigh's and shin's direction in the
    pelvis frame (:func:`pelvis_axes`) toward its mean over the frames (each frame's bone lengths
    kept), and the whole body toward the root's mean position. The upper body moves as captured:
    someone seated who eats, phones or talks."""
    axes = np.stack(pelvis_axes(poses), axis=1)  # (T, 3 axes, 3 world)
    root = poses[:, H36M_17.root : H36M_17.root + 1]
    out = poses - stillness * (root - root.mean(axis=0))
    for hip, knee, ankle in _LEG_CHAINS:
        for parent, child in ((hip, knee), (knee, ankle)):
            bone = poses[:, child] - poses[:, parent]
            length = np.linalg.norm(bone, axis=-1, keepdims=True)
            local = np.einsum("tij,tj->ti", axes, bone / length)  # world -> pelvis frame
            held = _unit((1 - stillness) * local + stillness * _unit(local.mean(axis=0)))
            out[:, child] = out[:, parent] + length * np.einsum("tij,ti->tj", axes, held)  # pelvis frame -> world
    return out


def bend_posture(poses: np.ndarray, hip_deg: tuple[float, float], knee_deg: tuple[float, float], lean_deg: float) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with each leg (right, then left) flexed ``hip_deg`` at the
    hip (the knee and ankle swung forward about each frame's right-to-left hip axis) and ``knee_deg``
    at the knee (the ankle swung backward about the same axis), and everything above the pelvis
    leaned ``lean_deg`` forward about it. Bone lengths and the root are kept."""
    left = pelvis_axes(poses)[0]
    root = poses[:, H36M_17.root : H36M_17.root + 1]
    out = poses.copy()
    out[:, _UPPER_BODY] = root + rotate_about(poses[:, _UPPER_BODY] - root, left[:, None], np.radians(lean_deg))
    for (hip, knee, ankle), flex_hip, flex_knee in zip(_LEG_CHAINS, hip_deg, knee_deg):
        # forward = left x up: rotating by -angle swings a downward thigh forward, by +angle a forward shin down
        pivot = out[:, hip : hip + 1]
        out[:, [knee, ankle]] = pivot + rotate_about(out[:, [knee, ankle]] - pivot, left[:, None], -np.radians(flex_hip))
        out[:, ankle] = out[:, knee] + rotate_about(out[:, ankle] - out[:, knee], left, np.radians(flex_knee))
    return out


def random_posture(rng: np.random.Generator, poses: np.ndarray, variation: PostureVariation) -> np.ndarray:
    """:func:`bend_posture` with angles drawn from ``variation``, after :func:`hold_still` when the
    variation holds sequences still (``poses`` unchanged with probability ``1 - share``)."""
    if rng.uniform() >= variation.share:
        return poses
    hip, knee = rng.uniform(*variation.hip_flexion_deg), rng.uniform(*variation.knee_flexion_deg)
    offsets = rng.uniform(-variation.leg_offset_deg, variation.leg_offset_deg, size=(2, 2))
    lean = rng.uniform(*variation.lean_deg)
    if variation.stillness[1] > 0:
        poses = hold_still(poses, rng.uniform(*variation.stillness))
    return bend_posture(poses, tuple(hip + offsets[0]), tuple(knee + offsets[1]), lean)


def reshape_body(rng: np.random.Generator, poses: np.ndarray, variation: BodyVariation) -> np.ndarray:
    """``poses (T, J, 3)`` metres, h36m17, with a body drawn from ``variation``, in this order (each
    step drawn only when its field is set): the hips raised, the head reshaped, the spine moved back,
    the posture bent, then every bone rescaled (:func:`random_bone_scales`)."""
    if variation.hip_raise_m is not None:
        poses = raise_hips(poses, rng.uniform(*variation.hip_raise_m))
    if variation.head is not None:
        head = variation.head
        poses = reshape_head(poses, rng.uniform(*head.nose_fraction), rng.uniform(*head.nose_forward_m), rng.uniform(*head.tilt_deg))
    if variation.spine_back_m is not None:
        poses = move_spine(poses, rng.uniform(*variation.spine_back_m))
    if variation.posture is not None:
        poses = random_posture(rng, poses, variation.posture)
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
