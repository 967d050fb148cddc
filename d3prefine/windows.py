"""Fixed-length windows over sequences of any length, and their smooth overlap-add blending.

The network sees windows of exactly ``W`` frames. A sequence of ``T >= W`` frames is covered
by windows starting every ``hop`` frames, the last one ending at the last frame; a sequence
shorter than ``W`` is edge-padded (its first and last frames repeated) to one window. The
refined windows are blended with a raised-cosine weight that is small at window edges, so
frames covered by two windows cross-fade instead of jumping.
"""

from __future__ import annotations

import numpy as np


def window_starts(num_frames: int, window: int, hop: int) -> np.ndarray:
    """Start frames of the windows covering ``num_frames`` frames (negative: left padding).

    For ``num_frames < window`` the single window starts at ``-((window - num_frames) // 2)``, so
    the padding is shared between both ends.
    """
    if num_frames < 1 or window < 1 or not 1 <= hop <= window:
        raise ValueError(f"need num_frames >= 1, window >= 1 and 1 <= hop <= window, got {num_frames}, {window}, {hop}")
    if num_frames <= window:
        return np.array([-((window - num_frames) // 2)])
    starts = np.arange(0, num_frames - window, hop)
    return np.append(starts, num_frames - window)


def frame_indices(start: int, num_frames: int, window: int) -> np.ndarray:
    """Indices ``(window,)`` of the frames a window reads, clipped to the sequence (edge padding)."""
    return np.clip(np.arange(start, start + window), 0, num_frames - 1)


def blend_weights(window: int) -> np.ndarray:
    """Raised-cosine weights ``(window,)``, positive everywhere and largest at the centre."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(window) + 0.5) / window)


class OverlapAdd:
    """Accumulates weighted window outputs into one ``(T, ...)`` array.

    Only the output (and one weight per frame) is held, never all windows, so memory stays
    proportional to the sequence, not to the number of windows.
    """

    def __init__(self, num_frames: int, trailing_shape: tuple[int, ...], window: int) -> None:
        self.num_frames = num_frames
        self.total = np.zeros((num_frames, *trailing_shape), np.float64)
        self.weight = np.zeros(num_frames, np.float64)
        self._w = blend_weights(window)

    def add(self, start: int, values: np.ndarray) -> None:
        """Add a window's values ``(window, ...)`` whose first frame is ``start``."""
        lo, hi = max(start, 0), min(start + len(values), self.num_frames)
        w = self._w[lo - start : hi - start]
        self.total[lo:hi] += w.reshape(-1, *([1] * (values.ndim - 1))) * values[lo - start : hi - start]
        self.weight[lo:hi] += w

    def result(self) -> np.ndarray:
        """The blended ``(T, ...)`` array (float32); raises if a frame was never covered."""
        if not np.all(self.weight > 0):
            raise RuntimeError("some frames were not covered by any window")
        return (self.total / self.weight.reshape(-1, *([1] * (self.total.ndim - 1)))).astype(np.float32)
