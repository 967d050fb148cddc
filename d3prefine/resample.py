"""Frame-rate conversion of pose sequences: cubic-spline resampling along time.

The shipped weights learned motion at the frame rate of their training data (the Bandai-Namco
capture, 30 fps); the per-frame motion of a 50 fps video is 3/5 as large. ``refine`` therefore
resamples a sequence whose ``fps`` differs from the weights' to their rate, refines it there
and resamples the result back to the input's frames (:func:`resample`, :class:`FpsPolicy`).
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from d3prefine.errors import InputError


class FpsPolicy(str, Enum):
    """What ``refine`` does with a sequence whose ``fps`` differs from the weights' frame rate.

    ``resample``: to the weights' rate and back (the default); ``refuse``: fail with a one-line
    error; ``ignore``: refine the frames as they are (what d3prefine did before it knew rates).
    A sequence without ``fps``, or weights without one, is refined as it is.
    """

    RESAMPLE = "resample"
    REFUSE = "refuse"
    IGNORE = "ignore"


def resampled_length(frames: int, from_fps: float, to_fps: float) -> int:
    """Frames at ``to_fps`` covering the ``frames`` at ``from_fps`` (first frame at time 0, none past the last)."""
    return int(np.floor((frames - 1) * to_fps / from_fps + 1e-9)) + 1


def resample(array: np.ndarray, from_fps: float, to_fps: float, frames: int | None = None) -> np.ndarray:
    """``array`` ``(T, ...)`` sampled at ``from_fps`` -> ``(frames, ...)`` at ``to_fps`` (float32).

    Frame ``k`` of the result is at time ``k / to_fps``; values come from a cubic spline through
    the input frames (``not-a-knot`` ends, linear for 2-3 frames, a copy for 1), extrapolated by at
    most a fraction of a frame at the end. ``frames`` defaults to :func:`resampled_length`.
    """
    if not (from_fps > 0 and to_fps > 0):
        raise ValueError(f"frame rates must be > 0, got {from_fps} and {to_fps}")
    array = np.asarray(array, dtype=np.float64)
    count = resampled_length(len(array), from_fps, to_fps) if frames is None else frames
    times = np.arange(count) / to_fps
    if len(array) == 1:
        return np.repeat(array, count, axis=0).astype(np.float32)
    source_times = np.arange(len(array)) / from_fps
    if len(array) < 4:
        flat = array.reshape(len(array), -1)
        out = np.stack([np.interp(times, source_times, column) for column in flat.T], axis=1)
        return out.reshape(count, *array.shape[1:]).astype(np.float32)
    from scipy.interpolate import CubicSpline  # scipy loads on first use: the command line starts faster

    return CubicSpline(source_times, array, axis=0)(times).astype(np.float32)


def refine_rate(fps: float | None, weights_fps: float | None, policy: FpsPolicy, where: str) -> float | None:
    """The frame rate to refine a sequence of ``fps`` at, ``None`` to refine its frames as they are.

    Raises:
        InputError: ``policy`` is ``refuse`` and the rates differ (``where`` names the sequence).
    """
    policy = FpsPolicy(policy)
    if fps is None or weights_fps is None or abs(fps - weights_fps) < 1e-6 or policy is FpsPolicy.IGNORE:
        return None
    if policy is FpsPolicy.REFUSE:
        raise InputError(
            f"{where} is {fps:g} fps, the weights learned {weights_fps:g} fps motion (--fps-policy resample converts it and back)"
        )
    return weights_fps


def at_rate(poses_2d: np.ndarray, poses_3d: np.ndarray, fps: float, rate: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``poses_2d (T, J, 2)`` and ``poses_3d (T, J, 3)`` at ``fps`` resampled to ``rate`` (as they
    are for ``None``); units unchanged."""
    if rate is None:
        return poses_2d, poses_3d
    return resample(poses_2d, fps, rate), resample(poses_3d, fps, rate)


def back_from_rate(
    poses_3d: np.ndarray, uncertainty: np.ndarray | None, rate: float, fps: float, frames: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Refined ``poses_3d (T', J, 3)`` and ``uncertainty (T', J)`` (or ``None``) at ``rate``
    resampled to the ``frames`` of the input at ``fps`` (the uncertainty clipped at 0)."""
    back = resample(poses_3d, rate, fps, frames)
    return back, None if uncertainty is None else np.maximum(resample(uncertainty, rate, fps, frames), 0.0)
