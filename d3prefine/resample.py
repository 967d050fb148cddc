"""Frame-rate conversion of pose sequences: cubic-spline resampling along time.

The shipped weights learned motion at the frame rate of their training data (the Bandai-Namco
capture, 30 fps); the per-frame motion of a 50 fps video is 3/5 as large. ``refine`` therefore
resamples a sequence whose ``fps`` differs from the weights' to their rate, refines it there
and resamples the result back to the input's frames (:func:`resample`, :class:`FpsPolicy`).
"""

from __future__ import annotations

from enum import Enum

import numpy as np


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
