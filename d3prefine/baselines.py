"""Classical temporal smoothers: the baselines the diffusion refiner is benchmarked against.

Smoothers take poses ``(T, ...)`` with time on axis 0 (typically ``(T, J, 3)`` in metres),
filter every coordinate independently and return a float64 array of the same shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import Enum

import numpy as np
from scipy.signal import savgol_filter

from d3prefine.metrics import mpjpe


class Smoother(str, Enum):
    """Smoother kinds accepted by :func:`smooth` and :func:`tune_smoother`."""

    SAVGOL = "savgol"
    ONE_EURO = "one_euro"


def savgol(poses: np.ndarray, window: int, polyorder: int) -> np.ndarray:
    """Savitzky-Golay filter along time (``scipy.signal.savgol_filter``, mode ``"interp"``).

    Edge frames take the polynomial fitted to the first/last window, so a trajectory that is
    a polynomial of degree <= ``polyorder`` passes unchanged everywhere.

    Args:
        poses: ``(T, ...)`` poses, time on axis 0.
        window: odd window length in frames, ``>= 1``.
        polyorder: polynomial degree, ``0 <= polyorder < window``.

    Returns:
        Smoothed ``(T, ...)``. A sequence shorter than ``window`` uses the largest odd window
        ``<= T``; when that window is not longer than ``polyorder`` (too few frames to fit the
        polynomial and smooth) the poses come back unchanged.
    """
    if window < 1 or window % 2 == 0 or not 0 <= polyorder < window:
        raise ValueError(f"savgol needs an odd window >= 1 and 0 <= polyorder < window, got {window=} {polyorder=}")
    poses = np.asarray(poses, dtype=np.float64)
    frames = len(poses)
    window = min(window, frames if frames % 2 else frames - 1)
    if window <= polyorder:
        return poses.copy()
    return savgol_filter(poses, window, polyorder, axis=0)


def _alpha(cutoff: float | np.ndarray, fps: float) -> float | np.ndarray:
    """Exponential-smoothing factor of a first-order low-pass at ``cutoff`` Hz sampled at ``fps``."""
    return 1.0 / (1.0 + fps / (2.0 * np.pi * cutoff))


def one_euro(poses: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> np.ndarray:
    """One Euro filter (Casiez, Roussel, Vogel, CHI 2012) on every coordinate independently.

    With ``alpha(fc) = 1 / (1 + fps / (2 pi fc))`` and, for frames ``i >= 1``::

        dx_i  = (x_i - x_{i-1}) * fps                     raw speed, units per second
        edx_i = alpha(d_cutoff) dx_i + (1 - alpha(d_cutoff)) edx_{i-1},    edx_0 = 0
        fc_i  = min_cutoff + beta |edx_i|                  Hz
        y_i   = alpha(fc_i) x_i + (1 - alpha(fc_i)) y_{i-1},               y_0 = x_0

    The speed uses the previous raw sample, as the authors' reference implementation does.
    With ``beta = 0`` this is an exponential moving average with the constant
    ``a = alpha(min_cutoff)``: after a unit step at frame k, ``y_{k+n} = 1 - (1 - a)^(n + 1)``.

    Args:
        poses: ``(T, ...)`` poses in metres, time on axis 0 (causal: frame i sees frames <= i).
        fps: frames per second, ``> 0``.
        min_cutoff: cutoff at zero speed in Hz, ``> 0`` (lower: smoother, more lag).
        beta: cutoff increase per unit speed in Hz per (m/s), ``>= 0``; it depends on the units
            of ``poses`` (millimetre input needs a 1000x smaller beta).
        d_cutoff: cutoff of the speed low-pass in Hz, ``> 0``.
    """
    if fps <= 0 or min_cutoff <= 0 or beta < 0 or d_cutoff <= 0:
        got = f"{fps=} {min_cutoff=} {beta=} {d_cutoff=}"
        raise ValueError(f"one_euro needs fps, min_cutoff, d_cutoff > 0 and beta >= 0, got {got}")
    x = np.asarray(poses, dtype=np.float64)
    y = x.copy()
    speed = np.zeros(x.shape[1:])
    alpha_d = _alpha(d_cutoff, fps)
    for i in range(1, len(x)):
        speed = alpha_d * (x[i] - x[i - 1]) * fps + (1.0 - alpha_d) * speed  # units per frame -> per second
        alpha = _alpha(min_cutoff + beta * np.abs(speed), fps)
        y[i] = alpha * x[i] + (1.0 - alpha) * y[i - 1]
    return y


def smooth(kind: Smoother | str, poses: np.ndarray, fps: float, **params: float) -> np.ndarray:
    """Run the smoother ``kind`` with ``params`` (``savgol``: window, polyorder; ``one_euro``:
    min_cutoff, beta, d_cutoff). ``fps`` is only used by ``one_euro``. Unknown kind: ValueError."""
    if Smoother(kind) is Smoother.SAVGOL:
        return savgol(poses, **params)
    return one_euro(poses, fps, **params)


def tune_smoother(
    kind: Smoother | str,
    pred_seqs: Sequence[np.ndarray],
    gt_seqs: Sequence[np.ndarray],
    fps: float,
    grid: Iterable[Mapping[str, float]],
) -> tuple[dict[str, float], float]:
    """Grid search for the smoother parameters with the lowest MPJPE on training sequences.

    Args:
        kind: smoother kind.
        pred_seqs, gt_seqs: paired ``(T_i, J, 3)`` sequences in metres (estimates, ground truth).
        fps: frames per second of every sequence.
        grid: candidate parameter dicts for :func:`smooth`, e.g.
            ``[{"window": 9, "polyorder": 2}, {"window": 15, "polyorder": 2}]``.

    Returns:
        ``(params, score)``: the best candidate (the first one on ties) and its MPJPE in
        millimetres, root-relative around joint 0, averaged over all frames of all sequences.
    """
    kind = Smoother(kind)
    if not pred_seqs or len(pred_seqs) != len(gt_seqs):
        got = f"{len(pred_seqs)} predicted and {len(gt_seqs)} ground-truth"
        raise ValueError(f"tune_smoother needs paired sequences (at least one), got {got}")
    frames = [len(pred) for pred in pred_seqs]
    best: tuple[dict[str, float], float] | None = None
    for params in grid:
        errors = [mpjpe(smooth(kind, pred, fps, **params), gt) for pred, gt in zip(pred_seqs, gt_seqs)]
        score = float(np.average(errors, weights=frames)) * 1000.0  # metres -> millimetres
        if best is None or score < best[1]:
            best = (dict(params), score)
    if best is None:
        raise ValueError("tune_smoother needs a non-empty grid")
    return best
