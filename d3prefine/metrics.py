"""3D pose error metrics in the style of VideoPose3D's ``common/loss.py``.

The metric functions take NumPy poses ``(..., J, 3)`` (the temporal ones ``(..., T, J, 3)``, time on
axis ``-3``) and return errors in the units of their input: metres in, metres out. By default
both poses are made root-relative first: joint ``root`` (default 0, the root of ``H36M_17``) is
subtracted from ``pred`` and from ``gt`` separately; ``root=None`` keeps absolute positions.
``reduce`` picks the output:

* ``"mean"``: one float, the mean over everything;
* ``"joint"``: ``(J,)``, the mean over every axis but joints;
* ``"frame"``: ``(...,)`` (e.g. ``(T,)``), the mean over joints of each frame (each velocity or
  acceleration sample for the temporal metrics).

:func:`mpjpe` also takes torch tensors and then returns tensors that carry gradients: it is the
training loss of the denoiser and of the recipes' base estimators as well as the metric.

:data:`METRICS` is the one table of the reported metrics (name, title, unit, frame lag, function),
from which ``evaluate``, the benchmarks and the plots take what they print;
:func:`evaluate_poses` builds the millimetre :class:`MetricReport` that the CLI prints, and
:func:`pool_reports` combines the reports of several sequences.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from d3prefine.skeleton import H36M_17, JointLayout

Reduce = Literal["mean", "joint", "frame"]



def _is_tensor(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch: no tensor exists before it is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


#: Frames per block of the NumPy metrics: a long sequence's float64 temporaries stay those of a block.
BLOCK_FRAMES = 8192


def _check_pair(pred: np.ndarray, gt: np.ndarray, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=dtype), np.asarray(gt, dtype=dtype)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt must have the same shape (..., J, 3), got {pred.shape} and {gt.shape}")
    return pred, gt


def _blockwise(
    errors_of: Callable[[np.ndarray, np.ndarray], np.ndarray], pred: np.ndarray, gt: np.ndarray, lag: int = 0
) -> np.ndarray:
    """Per-joint errors ``errors_of(pred_block, gt_block)`` (float64 ``(F, J, 3)`` -> ``(F - lag, J)``)
    computed on blocks of :data:`BLOCK_FRAMES` frames that overlap by ``lag``: the values of the
    whole arrays with the temporaries of one block. Frames are all leading axes for ``lag`` 0,
    else the time axis of ``(T, J, 3)`` (batched ``(..., T, J, 3)`` is computed whole)."""
    pred, gt = _check_pair(pred, gt, dtype=None)
    if lag and pred.ndim != 3:
        return errors_of(pred.astype(np.float64), gt.astype(np.float64))
    p, g = pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:])
    blocks = [
        errors_of(p[start : start + BLOCK_FRAMES + lag].astype(np.float64), g[start : start + BLOCK_FRAMES + lag].astype(np.float64))
        for start in range(0, max(len(p) - lag, 1), BLOCK_FRAMES)
    ]
    errors = np.concatenate(blocks)
    return errors if lag else errors.reshape(*pred.shape[:-1])


def _check_temporal(poses: np.ndarray) -> None:
    if poses.ndim < 3 or poses.shape[-1] != 3:
        raise ValueError(f"expected poses of shape (..., T, J, 3), got {poses.shape}")


def _relative(poses: np.ndarray, root: int | None) -> np.ndarray:
    return poses if root is None else poses - poses[..., root : root + 1, :]


def _reduce(errors: np.ndarray, reduce: Reduce) -> float | np.ndarray:
    """Reduce per-joint errors ``(..., J)``; an empty input (too few frames) gives NaN.

    Torch errors stay tensors (``"mean"``: a 0-d tensor), so they can be back-propagated."""
    if _is_tensor(errors):
        if reduce not in get_args(Reduce):
            raise ValueError(f"unknown reduce {reduce!r}, expected one of {get_args(Reduce)}")
        return {"mean": errors.mean, "frame": lambda: errors.mean(-1), "joint": lambda: errors.reshape(-1, errors.shape[-1]).mean(0)}[reduce]()
    if reduce == "frame":
        return errors.mean(axis=-1)
    if reduce == "joint":
        per_joint = errors.reshape(-1, errors.shape[-1])
        return per_joint.mean(axis=0) if len(per_joint) else np.full(errors.shape[-1], np.nan)
    if reduce == "mean":
        return float(errors.mean()) if errors.size else float("nan")
    raise ValueError(f"unknown reduce {reduce!r}, expected one of {get_args(Reduce)}")


def _joint_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(..., J)`` of NumPy arrays or torch tensors (``Tensor.norm``: a zero
    distance, e.g. at the root of root-relative poses, has a zero gradient, not NaN)."""
    if _is_tensor(pred):
        return (pred - gt).norm(dim=-1)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred: Any, gt: Any, *, root: int | None = 0, reduce: Reduce = "mean") -> Any:
    """Mean per-joint position error (protocol #1): mean Euclidean distance between joints.

    Args:
        pred, gt: ``(..., J, 3)`` poses (metres), both NumPy arrays (computed in float64) or both
            torch tensors (computed in their dtype, on their device, differentiable: the loss).
        root: joint subtracted from each pose first; ``None`` compares absolute positions.
        reduce: ``"mean"``, ``"joint"`` or ``"frame"`` (see module docstring).

    Returns:
        For arrays a float (``"mean"``) or an array; for tensors a tensor (``"mean"``: 0-d).
    """
    if _is_tensor(pred) or _is_tensor(gt):
        if not (_is_tensor(pred) and _is_tensor(gt)) or pred.shape != gt.shape or pred.dim() < 2 or pred.shape[-1] != 3:
            raise ValueError(f"pred and gt must be tensors of the same shape (..., J, 3), got {tuple(pred.shape)} and {tuple(gt.shape)}")
        return _reduce(_joint_errors(_relative(pred, root), _relative(gt, root)), reduce)
    return _reduce(_blockwise(lambda p, g: _joint_errors(_relative(p, root), _relative(g, root)), pred, gt), reduce)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` moved onto ``gt`` frame by frame by the best similarity transform.

    Solves ``min_{s, R, t} sum_j |s * R pred_j + t - gt_j|^2`` over a proper rotation ``R``
    (det +1), a uniform scale ``s`` and a translation ``t`` (Umeyama 1991). Reflections are
    excluded by flipping the sign of the smallest singular direction when ``det(U V^T) < 0``.
    ``scipy.spatial.procrustes`` and ``scipy.linalg.orthogonal_procrustes`` allow reflections
    (and the former also rescales ``gt``), so they are wrong for P-MPJPE.

    Args:
        pred, gt: ``(..., J, 3)`` poses.

    Returns:
        ``(..., J, 3)`` aligned prediction, in the frame and units of ``gt``.
    """
    pred, gt = _check_pair(pred, gt)
    mu_pred, mu_gt = pred.mean(axis=-2, keepdims=True), gt.mean(axis=-2, keepdims=True)
    p, g = pred - mu_pred, gt - mu_gt
    # Row-vector convention: aligned = s * p @ R + t, with H = p^T g = U S V^T and R = U D V^T.
    u, s, vt = np.linalg.svd(np.swapaxes(p, -1, -2) @ g)
    d = np.sign(np.linalg.det(u @ vt))  # +1 or -1: U and V are orthogonal
    u[..., :, -1] *= d[..., None]
    s[..., -1] *= d
    rotation = u @ vt
    variance = np.sum(p**2, axis=(-2, -1))
    scale = np.divide(s.sum(axis=-1), variance, out=np.zeros_like(variance), where=variance > 0)
    return scale[..., None, None] * (p @ rotation) + mu_gt


def p_mpjpe(pred: np.ndarray, gt: np.ndarray, *, root: int | None = 0, reduce: Reduce = "mean") -> float | np.ndarray:
    """Procrustes-aligned MPJPE (protocol #2): MPJPE after :func:`procrustes_align` per frame.

    Rotation, uniform scale and translation are fitted per frame, reflections are not allowed.
    Args as :func:`mpjpe`; ``root`` cannot change the result (the translation is fitted) and is
    accepted for a uniform signature.
    """
    return _reduce(_blockwise(lambda p, g: _joint_errors(procrustes_align(p, g), g), pred, gt), reduce)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray, *, root: int | None = 0, reduce: Reduce = "mean") -> float | np.ndarray:
    """Scale-normalized MPJPE (Rhodin et al. 2018, as in VideoPose3D): MPJPE after ``s * pred``.

    ``s = <pred, gt> / <pred, pred>`` is the least-squares scale of each frame, fitted on the
    root-relative poses (no rotation, no translation beyond the root). Args as :func:`mpjpe`.
    """

    def errors_of(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        pred, gt = _relative(pred, root), _relative(gt, root)
        norm = np.sum(pred**2, axis=(-2, -1), keepdims=True)
        scale = np.divide(np.sum(pred * gt, axis=(-2, -1), keepdims=True), norm, out=np.zeros_like(norm), where=norm > 0)
        return _joint_errors(scale * pred, gt)

    return _reduce(_blockwise(errors_of, pred, gt), reduce)


def _difference_error(
    pred: np.ndarray, gt: np.ndarray, order: int, root: int | None, reduce: Reduce
) -> float | np.ndarray:
    _check_temporal(np.asarray(pred))

    def errors_of(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        # Finite differences along time: units become metres/frame (order 1) or metres/frame^2 (order 2).
        diff_pred = np.diff(_relative(pred, root), n=order, axis=-3)
        diff_gt = np.diff(_relative(gt, root), n=order, axis=-3)
        return _joint_errors(diff_pred, diff_gt)

    return _reduce(_blockwise(errors_of, pred, gt, lag=order), reduce)


def mpjve(pred: np.ndarray, gt: np.ndarray, *, root: int | None = 0, reduce: Reduce = "mean") -> float | np.ndarray:
    """Mean per-joint velocity error (VideoPose3D): distance between first differences in time.

    Args:
        pred, gt: ``(..., T, J, 3)`` poses (metres), time on axis ``-3``.
        root, reduce: as :func:`mpjpe`; ``"frame"`` gives ``(..., T - 1)``.

    Returns:
        metres per frame (not per second). Fewer than 2 frames: NaN (``"frame"``: empty).
    """
    return _difference_error(pred, gt, 1, root, reduce)


def accel_error(
    pred: np.ndarray, gt: np.ndarray, *, root: int | None = 0, reduce: Reduce = "mean"
) -> float | np.ndarray:
    """Mean per-joint acceleration error: distance between second differences in time.

    Args:
        pred, gt: ``(..., T, J, 3)`` poses (metres), time on axis ``-3``.
        root, reduce: as :func:`mpjpe`; ``"frame"`` gives ``(..., T - 2)``.

    Returns:
        metres per frame^2. Fewer than 3 frames: NaN (``"frame"``: empty).
    """
    return _difference_error(pred, gt, 2, root, reduce)


def bone_lengths(poses: np.ndarray, layout: JointLayout = H36M_17) -> np.ndarray:
    """Limb lengths ``(..., B)`` of poses ``(..., J, 3)``, bones in ``layout.bones`` order (units of input)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim < 2 or poses.shape[-2:] != (layout.num_joints, 3):
        expected = f"(..., {layout.num_joints}, 3)"
        raise ValueError(f"expected poses of shape {expected} for layout {layout.name}, got {poses.shape}")
    parents, children = np.array(layout.bones).T
    return np.linalg.norm(poses[..., children, :] - poses[..., parents, :], axis=-1)


def bone_std(
    poses: np.ndarray, layout: JointLayout = H36M_17, *, reduce: Literal["mean", "joint"] = "mean"
) -> float | np.ndarray:
    """Temporal consistency of one predicted sequence: std over time of each bone length.

    The population std (ddof 0) over time of every bone, then averaged over bones. A rigid
    skeleton, and a single frame, give 0. It needs no ground truth: pass the prediction.

    Args:
        poses: ``(..., T, J, 3)`` (metres), time on axis ``-3``.
        layout: defines the bones.
        reduce: ``"mean"`` (float, mean over bones) or ``"joint"``: ``(J,)`` where joint ``j``
            holds the std of the bone ending at ``j`` and the root, which ends no bone, is NaN.
    """
    poses = np.asarray(poses, dtype=np.float64)
    _check_temporal(poses)
    stds = bone_lengths(poses, layout).std(axis=-2).reshape(-1, len(layout.bones)).mean(axis=0)
    if reduce == "mean":
        return float(stds.mean())
    if reduce == "joint":
        per_joint = np.full(layout.num_joints, np.nan)
        per_joint[[child for _, child in layout.bones]] = stds
        return per_joint
    raise ValueError(f"unknown reduce {reduce!r} for bone_std, expected 'mean' or 'joint'")


@dataclass(frozen=True)
class Metric:
    """One reported metric.

    Attributes:
        name: key in reports and JSON (``"mpjpe"``).
        title: what tables and figures call it (``"MPJPE"``).
        unit: unit of its reported values (reports are in millimetres), plain ASCII (``"mm/frame^2"``).
        frame_lag: a sequence of T frames has ``T - frame_lag`` samples of it (velocity 1,
            acceleration 2): its weight when sequences are pooled.
        function: ``function(pred, gt, layout, root)`` -> per-joint values ``(J,)``, in metres
            unless ``scale`` says otherwise (``bone_std`` ignores ``gt`` and ``root``: it is NaN
            at the root, which ends no bone).
        scale: factor from the unit of ``function``'s values to ``unit``: 1000 (metres -> mm),
            1 where they are in ``unit`` already.
    """

    name: str
    title: str
    unit: str
    frame_lag: int
    function: Callable[[np.ndarray, np.ndarray, JointLayout, int | None], np.ndarray]
    scale: float = 1000.0

    @property
    def figure_unit(self) -> str:
        """The unit with a superscript ² (``"mm/frame²"``), for figures."""
        return self.unit.replace("^2", "²")


def _pair_metric(function: Callable[..., Any]) -> Callable[[np.ndarray, np.ndarray, JointLayout, int | None], np.ndarray]:
    return lambda pred, gt, layout, root: function(pred, gt, root=root, reduce="joint")


#: The reported metrics, in report order: name -> :class:`Metric`.
METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("mpjpe", "MPJPE", "mm", 0, _pair_metric(mpjpe)),
        Metric("p_mpjpe", "P-MPJPE", "mm", 0, _pair_metric(p_mpjpe)),
        Metric("n_mpjpe", "N-MPJPE", "mm", 0, _pair_metric(n_mpjpe)),
        Metric("mpjve", "MPJVE", "mm/frame", 1, _pair_metric(mpjve)),
        Metric("accel_error", "accel. error", "mm/frame^2", 2, _pair_metric(accel_error)),
        Metric("bone_std", "bone-length std", "mm", 0, lambda pred, gt, layout, root: bone_std(pred, layout, reduce="joint")),
    )
}
#: Names of :data:`METRICS` in report order, and their units (views of the table).
METRIC_NAMES = tuple(METRICS)
METRIC_UNITS = {name: metric.unit for name, metric in METRICS.items()}


@dataclass
class MetricReport:
    """Errors of one sequence (or pooled sequences), in millimetres (units in :data:`METRICS`).

    Attributes:
        frames: number of frames T (summed when pooled).
        summary: metric name -> mean value; NaN where the sequence is too short (velocity needs
            T >= 2, acceleration T >= 3).
        per_joint: metric name -> ``(J,)`` per-joint means; ``bone_std`` is the std of the bone
            ending at each joint and NaN at the root.
    """

    frames: int
    summary: dict[str, float]
    per_joint: dict[str, np.ndarray]


def evaluate_poses(
    pred: np.ndarray, gt: np.ndarray, layout: JointLayout = H36M_17, root_relative: bool = True
) -> MetricReport:
    """All ``METRIC_NAMES`` for one sequence.

    Args:
        pred, gt: ``(T, J, 3)`` poses in metres, ``J = layout.num_joints``, ``T >= 1``.
        layout: skeleton (root joint and bones).
        root_relative: subtract ``layout.root`` from each pose first (``bone_std`` and
            ``p_mpjpe`` do not depend on it).

    Returns:
        A report in millimetres; ``bone_std`` is that of ``pred``.
    """
    pred, gt = _check_pair(pred, gt, dtype=None)  # the metrics convert blocks of frames to float64
    if pred.ndim != 3 or pred.shape[1] != layout.num_joints or len(pred) == 0:
        expected = f"(T >= 1, {layout.num_joints}, 3)"
        raise ValueError(f"expected pred and gt of shape {expected} for layout {layout.name}, got {pred.shape}")
    root = layout.root if root_relative else None
    per_joint = {name: metric.function(pred, gt, layout, root) * metric.scale for name, metric in METRICS.items()}  # metres -> mm (scale)
    summary = {name: float(values.mean()) for name, values in per_joint.items()}
    summary["bone_std"] = float(np.delete(per_joint["bone_std"], layout.root).mean())  # mean over bones
    return MetricReport(frames=len(pred), summary=summary, per_joint=per_joint)


def pool_reports(reports: Sequence[MetricReport], metrics: dict[str, Metric] = METRICS) -> MetricReport:
    """Weighted mean of several sequences' reports (same joint count).

    Each sequence weighs by its number of samples of that metric: T frames for the position
    metrics and ``bone_std`` (a frame-weighted mean of per-sequence stds, not the std of the
    concatenation), T - 1 for ``mpjve``, T - 2 for ``accel_error``. A sequence with no samples
    (its value is NaN) weighs 0; a metric no sequence has is NaN. ``metrics`` is the table the
    reports were made with (:data:`METRICS`, or :data:`d3prefine.quality.GT_FREE_METRICS`).
    """
    if not reports:
        raise ValueError("pool_reports needs at least one report")
    shapes = {r.per_joint[name].shape for r in reports for name in metrics}
    if len(shapes) != 1:
        raise ValueError(f"reports must have the same per-joint shape, got {sorted(shapes)}")
    (shape,) = shapes
    summary, per_joint = {}, {}
    for name, metric in metrics.items():
        weights = np.array([max(r.frames - metric.frame_lag, 0) for r in reports], dtype=np.float64)
        used = [i for i, w in enumerate(weights) if w > 0]
        if not used:
            summary[name], per_joint[name] = float("nan"), np.full(shape, np.nan)
            continue
        summary[name] = float(np.average([reports[i].summary[name] for i in used], weights=weights[used]))
        per_joint[name] = np.average([reports[i].per_joint[name] for i in used], axis=0, weights=weights[used])
    return MetricReport(frames=sum(r.frames for r in reports), summary=summary, per_joint=per_joint)
