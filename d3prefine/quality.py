"""What can be measured without ground truth: smoothness, rigidity, correction, 2D agreement.

For an in-the-wild sequence (no ``gt_3d``), ``evaluate`` reports per sequence, in millimetres:

* ``accel``: mean magnitude of the second difference of the root-relative joints (mm/frame²),
  the frame-to-frame jitter a smoother removes;
* ``jerk``: mean magnitude of the third difference (mm/frame³), jitter at its sharpest;
* ``bone_std``: std over time of each bone length (a real skeleton is rigid);
* ``correction``: mean distance of each root-relative joint from the input estimate
  (``poses_3d``), how much a refinement changed;
* ``reproj_2d``: mean distance of each joint, projected by the affine camera fitted to the
  frame, from its 2D keypoint (pixels with ``image_size``, else normalized units): whether the
  3D still explains the 2D it came from (the camera is fitted, as pose files carry no intrinsics).

:func:`gt_free_report` returns a :class:`~d3prefine.metrics.MetricReport` over
:data:`GT_FREE_METRICS`; :func:`~d3prefine.metrics.pool_reports` pools it like the others.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from d3prefine.checks import affine_residuals
from d3prefine.metrics import METRICS, Metric, MetricReport
from d3prefine.skeleton import H36M_17, JointLayout


class Evidence(NamedTuple):
    """What a sequence offers instead of ground truth: the input 3D ``(T, J, 3)`` metres (for
    ``correction``) and the 2D keypoints ``(T, J, 2)`` (for ``reproj_2d``)."""

    input_3d: np.ndarray
    poses_2d: np.ndarray


def _difference_norm(pred: np.ndarray, order: int, root: int | None) -> np.ndarray:
    rel = pred if root is None else pred - pred[:, root : root + 1]
    diff = np.diff(rel, n=order, axis=0)
    return np.linalg.norm(diff, axis=-1).mean(axis=0) if len(diff) else np.full(pred.shape[1], np.nan)


def _correction(pred: np.ndarray, evidence: Evidence, layout: JointLayout, root: int | None) -> np.ndarray:
    rel = (lambda x: x - x[:, root : root + 1]) if root is not None else (lambda x: x)
    return np.linalg.norm(rel(pred) - rel(evidence.input_3d), axis=-1).mean(axis=0)


def _reprojection(pred: np.ndarray, evidence: Evidence, layout: JointLayout, root: int | None) -> np.ndarray:
    residuals = affine_residuals(evidence.poses_2d, pred)
    return residuals.mean(axis=0) if len(residuals) else np.full(pred.shape[1], np.nan)


#: The GT-free metrics, in report order. Their ``function(pred, evidence, layout, root)`` takes an
#: :class:`Evidence` where the ground-truth metrics take ``gt``; values in metres, ``reproj_2d`` in 2D
#: units (``scale`` 1: reported as they are).
GT_FREE_METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("accel", "acceleration", "mm/frame^2", 2, lambda pred, ev, layout, root: _difference_norm(pred, 2, root)),
        Metric("jerk", "jerk", "mm/frame^3", 3, lambda pred, ev, layout, root: _difference_norm(pred, 3, root)),
        METRICS["bone_std"],  # needs no ground truth: the same entry as in the ground-truth table
        Metric("correction", "correction size", "mm", 0, _correction),
        Metric("reproj_2d", "2D reprojection (fitted affine camera)", "px", 0, _reprojection, scale=1.0),
    )
}


def gt_free_report(pred: np.ndarray, evidence: Evidence, layout: JointLayout = H36M_17) -> MetricReport:
    """:data:`GT_FREE_METRICS` of ``pred`` ``(T, J, 3)`` metres (root-relative), in mm (``reproj_2d``
    in the units of the 2D: pixels, or normalized coordinates)."""
    pred = np.asarray(pred, dtype=np.float64)
    per_joint = {name: metric.function(pred, evidence, layout, layout.root) * metric.scale for name, metric in GT_FREE_METRICS.items()}
    summary = {name: float(np.nanmean(values)) if not np.isnan(values).all() else float("nan") for name, values in per_joint.items()}
    return MetricReport(frames=len(pred), summary=summary, per_joint=per_joint)
