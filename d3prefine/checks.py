"""Input sanity checks that catch silently wrong files: joint orders and body size.

* :func:`joint_agreement` fits, per frame, the affine camera that best maps the 3D joints onto
  the 2D keypoints and measures how far each joint lands from its own 2D keypoint, in units of
  the 2D body size. Keypoints of the same layout agree to a few per cent; 2D in another order
  (COCO-17 keypoints stored as ``h36m17``, say) lands far off.
* :func:`body_height` is the median head-top-to-ankle length along the skeleton; a human in
  metres measures about 1.6 m (Human3.6M subjects 1.58-1.71 m), a body in normalised units
  (MotionBERT: about 2 units tall) or in arbitrary units does not.

Both return numbers; :func:`check_sequence` turns them into one-line messages and :func:`screen`
into an error, or warnings with ``--force``.
"""

from __future__ import annotations

import numpy as np

from d3prefine.errors import InputError
from d3prefine.io import PoseSequence
from d3prefine.skeleton import H36M_17

#: Plausible :func:`body_height` in metres (head top to ankle along the bones).
BODY_HEIGHT_RANGE_M = (1.0, 1.95)
#: Largest median joint disagreement (fraction of the 2D body size) of matching joint orders.
#: Human3.6M S8 (Stacked-Hourglass 2D, sh16): 0.07-0.12 with the mocap 3D, up to 0.19 with 3D
#: errors of a 100 mm-MPJPE lifter and 0.28 at twice that; COCO-ordered 2D: 0.57-0.81 (0.48 on
#: the tests' synthetic bodies).
MAX_JOINT_DISAGREEMENT = 0.35

_H = {name: index for index, name in enumerate(H36M_17.joint_names)}
# Bones summed by body_height: the trunk and head chain, and the mean of the two legs.
_TRUNK = (("head_top", "neck_nose"), ("neck_nose", "thorax"), ("thorax", "spine"), ("spine", "pelvis"))
_LEGS = ((("r_hip", "r_knee"), ("r_knee", "r_ankle")), (("l_hip", "l_knee"), ("l_knee", "l_ankle")))


def _median_length(poses: np.ndarray, a: str, b: str) -> float:
    return float(np.nanmedian(np.linalg.norm(poses[:, _H[a]] - poses[:, _H[b]], axis=-1)))


def body_height(poses_3d: np.ndarray) -> float:
    """Median head-top-to-ankle length along the skeleton of ``h36m17`` poses ``(T, 17, 3)``, in their units."""
    trunk = sum(_median_length(poses_3d, a, b) for a, b in _TRUNK)
    legs = [sum(_median_length(poses_3d, a, b) for a, b in leg) for leg in _LEGS]
    return trunk + float(np.mean(legs))


def _complete_frames(poses_2d: np.ndarray, poses_3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``F`` frames without NaN of keypoints ``(T, J, 2)`` and joints ``(T, J, 3)``, as float64
    ``(F, J, 2)`` and ``(F, J, 3)``."""
    valid = ~(np.isnan(poses_2d).any(axis=(1, 2)) | np.isnan(poses_3d).any(axis=(1, 2)))
    return poses_2d[valid].astype(np.float64), poses_3d[valid].astype(np.float64)


def _fitted_residuals(uv: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """``(F, J)`` distances of the joints ``xyz (F, J, 3)`` projected by each frame's least-squares
    affine camera ``u = A x + b`` from the keypoints ``uv (F, J, 2)``, in the units of ``uv``."""
    design = np.concatenate([xyz, np.ones((*xyz.shape[:2], 1))], axis=-1)  # (F, J, 4)
    solution = np.linalg.pinv(design) @ uv  # (F, 4, 2): one least-squares camera per frame
    return np.linalg.norm(design @ solution - uv, axis=-1)


def affine_residuals(poses_2d: np.ndarray, poses_3d: np.ndarray) -> np.ndarray:
    """``(F, J)`` distances, in the units of the 2D, of each 3D joint projected by its frame's
    least-squares affine camera ``u = A x + b`` from its own 2D keypoint, for the ``F`` frames
    without NaN (``(T, J, 2)`` keypoints, ``(T, J, 3)`` joints, any units)."""
    return _fitted_residuals(*_complete_frames(poses_2d, poses_3d))


def joint_agreement(poses_2d: np.ndarray, poses_3d: np.ndarray) -> np.ndarray:
    """Per-joint disagreement ``(J,)`` of 2D keypoints ``(T, J, 2)`` with 3D joints ``(T, J, 3)``.

    For every frame without NaN, the affine camera ``u = A x + b`` (least squares) maps the 3D
    joints to the image; each joint's distance from its own 2D keypoint is divided by the 2D
    body size (root-mean-square distance of the keypoints from their centroid). Returns the
    median over frames (NaN if no frame is complete). Any units and any camera work.
    """
    uv, xyz = _complete_frames(poses_2d, poses_3d)
    if not len(uv):
        return np.full(poses_2d.shape[1], np.nan)
    centred = uv - uv.mean(axis=1, keepdims=True)
    size = np.sqrt((centred**2).sum(-1).mean(-1, keepdims=True))
    return np.median(_fitted_residuals(uv, xyz) / np.maximum(size, 1e-12), axis=0)


def check_sequence(poses_2d: np.ndarray, poses_3d: np.ndarray, *, height_m: bool = True) -> list[str]:
    """Problems of an ``h36m17`` sequence, one line each (empty if none).

    Args:
        poses_2d: ``(T, 17, 2)`` keypoints, any units.
        poses_3d: ``(T, 17, 3)`` joints, metres.
        height_m: also check that the body is human-sized in metres.
    """
    problems = []
    agreement = joint_agreement(poses_2d, poses_3d)
    median = float(np.nanmedian(agreement)) if not np.isnan(agreement).all() else float("nan")
    if median > MAX_JOINT_DISAGREEMENT:
        worst = np.argsort(-agreement)[:3]
        names = ", ".join(f"{H36M_17.joint_names[j]} {agreement[j]:.2f}" for j in worst)
        problems.append(
            f"poses_2d and poses_3d disagree on the joint order: projected 3D joints lie a median {median:.2f} "
            f"2D body sizes from their own 2D keypoints (worst: {names}; matching orders stay below {MAX_JOINT_DISAGREEMENT}); "
            "is the 2D in another layout (e.g. COCO-17)? convert it with 'd3prefine convert --layout-2d'"
        )
    if height_m:
        height = body_height(poses_3d)
        low, high = BODY_HEIGHT_RANGE_M
        if not low <= height <= high:
            problems.append(
                f"poses_3d body is {height:.2f} units from head top to ankle, expected {low}-{high} m for a person in metres: "
                "normalised or arbitrary units? convert with 'd3prefine convert --scale-to-height' (or --units)"
            )
    return problems


def sequence_problems(seq: PoseSequence) -> list[str]:
    """:func:`check_sequence` of an ``h36m17`` sequence (3D in metres), each line naming the sequence."""
    return [f"sequence {seq.name!r}: {problem}" for problem in check_sequence(seq.poses_2d, seq.poses_3d)]


def screen(problems: list[str], *, force: bool, where: str) -> list[str]:
    """Raise the first of ``problems`` as a one-line :class:`InputError`, or with ``force``
    return them as warnings (``"warning: <where>: <problem>"``) for the caller to print."""
    if problems and not force:
        raise InputError(f"{where}: {problems[0]} (--force to go on anyway)")
    return [f"warning: {where}: {problem}" for problem in problems]
