"""Bone lengths of one person: a sequence's median lengths, and poses re-chained to given lengths.

One person's bones do not change length, yet frame-window estimators and refiners give each
frame its own, and weights trained on few bodies pull every bone toward theirs (the shipped
weights of stop 13 shortened Human3.6M's thighs from 452 to 370 mm). :func:`constrain_bones`
re-chains a refined sequence so that every bone keeps one length over the whole sequence:
its own median (``constant``) or the median of the input the refiner was given (``input``).
:func:`load_skeleton` reads a subject's known bone lengths (``refine --skeleton``), to which
:func:`rechain` sets a refined sequence's bones.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.metrics import bone_lengths
from d3prefine.skeleton import JointLayout


class BoneLengthMode(str, Enum):
    """What :func:`constrain_bones` does to the bone lengths of a refined sequence.

    ``free``: nothing (the network's lengths, frame by frame); ``constant``: every bone at the
    refined sequence's own median length; ``input``: every bone at the median length it has in
    the refiner's input (the estimator's skeleton, the network's bone directions).
    """

    FREE = "free"
    CONSTANT = "constant"
    INPUT = "input"


#: ``refine``'s default: the estimator's skeleton. Weights that never saw the user's estimator
#: cannot know the person's body from a 27-frame window; with the shipped weights ``input`` was
#: the only mode never worse than the unrefined poses on both the Bandai examples and Human3.6M
#: (README, "Bone lengths"). Weights trained on the user's own estimator do best with ``constant``.
DEFAULT_BONE_LENGTHS = BoneLengthMode.INPUT


def _lengths_by_joint(poses: np.ndarray, layout: JointLayout) -> np.ndarray:
    """The length of the bone ending at each joint, ``(T, J)`` in the units of ``poses (T, J, 3)``
    (:func:`d3prefine.metrics.bone_lengths` by child joint; the root, which ends no bone, gets 0)."""
    lengths = np.zeros(np.shape(poses)[:2])
    lengths[:, [child for _, child in layout.bones]] = bone_lengths(poses, layout)
    return lengths


def median_bone_lengths(poses: np.ndarray, layout: JointLayout) -> np.ndarray:
    """Median over frames of the length of the bone ending at each joint, ``(J,)`` in the units
    of ``poses (T, J, 3)`` (the root, which ends no bone, gets 0). NaN frames are ignored."""
    return np.nanmedian(_lengths_by_joint(poses, layout), axis=0)


def scale_bones(poses: np.ndarray, factors: np.ndarray, layout: JointLayout) -> np.ndarray:
    """``poses (T, J, 3)`` rebuilt from the root outwards with the bone ending at joint j
    multiplied by ``factors[..., j]`` (``(J,)`` for the whole sequence or ``(T, J)`` per frame),
    directions and root trajectory kept. Returns float64."""
    poses = np.asarray(poses, np.float64)
    factors = np.broadcast_to(np.asarray(factors, np.float64), poses.shape[:2])
    out = np.empty_like(poses)
    out[:, layout.root] = poses[:, layout.root]
    for joint in layout.topological_order:
        parent = layout.parents[joint]
        out[:, joint] = out[:, parent] + factors[:, joint, None] * (poses[:, joint] - poses[:, parent])
    return out


def rechain(poses: np.ndarray, lengths: np.ndarray, layout: JointLayout) -> np.ndarray:
    """``poses (T, J, 3)`` rebuilt from the root outwards with the bone ending at joint j of
    length ``lengths[j]`` (same units) in its original direction; the root trajectory is kept.
    A bone of zero length in ``poses`` (no direction) keeps length zero. Returns float64."""
    norms = _lengths_by_joint(poses, layout)
    return scale_bones(poses, lengths / np.where(norms > 0, norms, np.inf), layout)


def constrain_bones(refined: np.ndarray, inputs: np.ndarray, mode: BoneLengthMode | str, layout: JointLayout) -> np.ndarray:
    """Apply ``mode`` to one refined sequence ``refined (T, J, 3)`` whose refiner input was
    ``inputs (T, J, 3)`` (same units and frame); ``free`` returns ``refined`` itself.

    Raises:
        ValueError: ``mode`` is not a :class:`BoneLengthMode`.
    """
    mode = BoneLengthMode(mode)
    if mode is BoneLengthMode.FREE:
        return refined
    source = refined if mode is BoneLengthMode.CONSTANT else inputs
    return rechain(refined, median_bone_lengths(source, layout), layout).astype(refined.dtype, copy=False)


#: A skeleton file's ``units`` and their size in metres.
SKELETON_UNITS = {"m": 1.0, "mm": 1e-3}
#: Longest plausible human bone, metres: a longer one is a unit mistake.
MAX_BONE_M = 1.0


def load_skeleton(path: Path, layout: JointLayout) -> np.ndarray:
    """A subject's bone lengths from the JSON file ``path``, ``(J,)`` metres: the length of the
    bone ending at each joint of ``layout`` (the root, which ends no bone, gets 0), as
    :func:`median_bone_lengths` gives them. Never unpickles.

    The file is one object: ``{"joint_layout": "h36m17", "units": "m" or "mm", "bones":
    {"r_knee": 0.45, ...}}`` with one length per bone, keyed by the name of the joint it ends at
    (``r_knee``: right hip to right knee, the thigh).

    Raises:
        InputError: unreadable or not such an object, another layout, unknown units, a bone
            missing, unknown or not a positive length of at most :data:`MAX_BONE_M` metres.
    """
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a readable skeleton JSON file ({error})") from None
    if not isinstance(document, dict) or not isinstance(document.get("bones"), dict):
        raise InputError(f"{path}: a skeleton file is an object with 'joint_layout', 'units' and 'bones' (joint name: length)")
    if document.get("joint_layout") != layout.name:
        raise InputError(f"{path}: joint_layout {document.get('joint_layout')!r}, the weights refine {layout.name!r}")
    units = document.get("units")
    if units not in SKELETON_UNITS:
        raise InputError(f"{path}: units {units!r}, expected one of {sorted(SKELETON_UNITS)}")
    names = {layout.joint_names[child]: child for _, child in layout.bones}
    given = document["bones"]
    unknown, missing = sorted(set(given) - set(names)), [n for n in names if n not in given]
    if unknown or missing:
        raise InputError(f"{path}: bones are named by the joint they end at, one per bone of {layout.name}: "
                         + (f"unknown {unknown}" if unknown else f"missing {missing}"))
    lengths = np.zeros(layout.num_joints)
    for name, child in names.items():
        value = given[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value * SKELETON_UNITS[units] <= MAX_BONE_M:
            raise InputError(f"{path}: bone {name!r}: {value!r} is not a length in (0, {MAX_BONE_M:g}] m (units {units!r})")
        lengths[child] = value * SKELETON_UNITS[units]  # to metres
    return lengths


#: ``refine --skeleton`` warns when a bone of the skeleton is more than this factor longer or
#: shorter than the same bone's median in the estimator's input: another subject, or other units.
SKELETON_WARN_RATIO = 1.5


def skeleton_mismatch(poses: np.ndarray, lengths: np.ndarray, layout: JointLayout) -> tuple[str, float] | None:
    """The bone (named by its end joint) whose length in ``lengths (J,)`` differs most, as a
    ratio, from its median in ``poses (T, J, 3)`` (same units), and that ratio (skeleton / poses),
    if it lies beyond :data:`SKELETON_WARN_RATIO` either way; else ``None``."""
    given = median_bone_lengths(poses, layout)
    children = [child for _, child in layout.bones]
    ratios = lengths[children] / np.where(given[children] > 0, given[children], np.nan)
    worst = int(np.nanargmax(np.abs(np.log(ratios)))) if np.isfinite(ratios).any() else None
    if worst is None or max(ratios[worst], 1 / ratios[worst]) <= SKELETON_WARN_RATIO:
        return None
    return layout.joint_names[children[worst]], float(ratios[worst])
