"""Tests of the classical smoothing baselines (d3prefine.baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import savgol_filter

from d3prefine.baselines import Smoother, one_euro, savgol, smooth, tune_smoother
from d3prefine.metrics import mpjpe


def quadratic_trajectory(frames: int) -> np.ndarray:
    """``(frames, 17, 3)``: every coordinate is a different quadratic in time, metres."""
    a, b, c = np.random.default_rng(0).normal(size=(3, 17, 3))
    t = np.arange(frames, dtype=np.float64)[:, None, None]
    return a + 0.01 * b * t + 0.001 * c * t**2


def test_savgol_preserves_a_quadratic_trajectory_everywhere():
    poses = quadratic_trajectory(20)
    np.testing.assert_allclose(savgol(poses, 7, 2), poses, atol=1e-10)


def test_savgol_reduces_white_noise():
    clean = quadratic_trajectory(200)
    noisy = clean + np.random.default_rng(1).normal(scale=0.01, size=clean.shape)
    before = np.sqrt(np.mean((noisy - clean) ** 2))
    after = np.sqrt(np.mean((savgol(noisy, 11, 2) - clean) ** 2))
    assert after < 0.6 * before


def test_savgol_shrinks_the_window_for_short_sequences():
    noisy = np.random.default_rng(2).normal(size=(6, 17, 3))
    np.testing.assert_allclose(savgol(noisy, 9, 2), savgol_filter(noisy, 5, 2, axis=0))
    np.testing.assert_array_equal(savgol(noisy[:2], 9, 2), noisy[:2])  # window 1 cannot fit degree 2


@pytest.mark.parametrize(("window", "polyorder"), [(8, 2), (0, 0), (5, 5), (5, -1)])
def test_savgol_rejects_invalid_parameters(window, polyorder):
    with pytest.raises(ValueError, match="savgol"):
        savgol(np.zeros((10, 17, 3)), window, polyorder)


def test_one_euro_keeps_a_constant_signal():
    poses = np.full((30, 17, 3), 0.37)
    np.testing.assert_allclose(one_euro(poses, fps=30, min_cutoff=1.0, beta=0.0), poses, rtol=0, atol=1e-15)


def test_one_euro_without_beta_lags_a_step_like_an_exponential_average():
    step = np.zeros((10, 2, 3))
    step[4:] = 1.0
    out = one_euro(step, fps=30, min_cutoff=1.0, beta=0.0)
    a = 2 * math.pi / (2 * math.pi + 30)  # alpha(1 Hz) at 30 fps
    assert a == pytest.approx(0.173171, abs=1e-6)
    expected = np.array([0.0] * 4 + [1 - (1 - a) ** (n + 1) for n in range(6)])
    np.testing.assert_allclose(out, np.broadcast_to(expected[:, None, None], step.shape), atol=1e-12)


def reference_one_euro(signal: list[float], fps: float, min_cutoff: float, beta: float, d_cutoff: float) -> list[float]:
    """Scalar transcription of the authors' reference algorithm, one value at a time."""

    def alpha(cutoff: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * fps)

    out, previous_raw, speed = [signal[0]], signal[0], 0.0
    for value in signal[1:]:
        speed = alpha(d_cutoff) * (value - previous_raw) * fps + (1 - alpha(d_cutoff)) * speed
        a = alpha(min_cutoff + beta * abs(speed))
        out.append(a * value + (1 - a) * out[-1])
        previous_raw = value
    return out


def test_one_euro_matches_the_scalar_reference_on_every_coordinate():
    poses = np.cumsum(np.random.default_rng(3).normal(scale=0.02, size=(25, 4, 3)), axis=0)
    out = one_euro(poses, fps=25, min_cutoff=0.5, beta=2.0, d_cutoff=1.5)
    for j in range(4):
        for k in range(3):
            expected = reference_one_euro(list(poses[:, j, k]), 25, 0.5, 2.0, 1.5)
            np.testing.assert_allclose(out[:, j, k], expected, atol=1e-12)


def test_one_euro_beta_reduces_lag_on_fast_motion():
    ramp = np.linspace(0, 3, 60)[:, None, None] * np.ones((1, 17, 3))  # 1.5 m/s at 30 fps
    lag_without = np.abs(one_euro(ramp, 30, 1.0, 0.0) - ramp).mean()
    lag_with = np.abs(one_euro(ramp, 30, 1.0, 5.0) - ramp).mean()
    assert lag_with < 0.5 * lag_without


@pytest.mark.parametrize(
    ("fps", "min_cutoff", "beta", "d_cutoff"), [(0, 1, 0, 1), (30, 0, 0, 1), (30, 1, -1, 1), (30, 1, 0, 0)]
)
def test_one_euro_rejects_invalid_parameters(fps, min_cutoff, beta, d_cutoff):
    with pytest.raises(ValueError, match="one_euro"):
        one_euro(np.zeros((5, 17, 3)), fps, min_cutoff, beta, d_cutoff)


def test_smooth_dispatches_by_kind_and_rejects_unknown_kinds():
    poses = quadratic_trajectory(12) + np.random.default_rng(4).normal(scale=0.01, size=(12, 17, 3))
    np.testing.assert_array_equal(smooth("savgol", poses, 30, window=5, polyorder=1), savgol(poses, 5, 1))
    np.testing.assert_array_equal(
        smooth(Smoother.ONE_EURO, poses, 30, min_cutoff=1.0, beta=0.1), one_euro(poses, 30, 1.0, 0.1)
    )
    with pytest.raises(ValueError):
        smooth("kalman", poses, 30)


def test_tuner_picks_the_widest_window_for_noise_on_linear_motion():
    rng = np.random.default_rng(5)
    gts = [0.002 * np.arange(n)[:, None, None] * rng.normal(size=(1, 17, 3)) for n in (40, 60)]
    preds = [gt + rng.normal(scale=0.01, size=gt.shape) for gt in gts]
    grid = [{"window": 1, "polyorder": 0}, {"window": 9, "polyorder": 1}, {"window": 31, "polyorder": 1}]
    params, score = tune_smoother("savgol", preds, gts, 30, grid)
    assert params == {"window": 31, "polyorder": 1}
    errors = [mpjpe(savgol(pred, 31, 1), gt) for pred, gt in zip(preds, gts)]
    assert score == pytest.approx(1000.0 * (40 * errors[0] + 60 * errors[1]) / 100, rel=1e-12)


def test_tuner_picks_the_least_smoothing_for_clean_fast_motion():
    t = np.arange(90)[:, None, None] / 30
    gt = 0.3 * np.sin(2 * math.pi * 2.0 * t + np.arange(17)[None, :, None]) * np.ones((1, 1, 3))
    grid = [{"min_cutoff": c, "beta": 0.0} for c in (0.1, 1.0, 10.0)]
    params, score = tune_smoother(Smoother.ONE_EURO, [gt], [gt], 30, grid)
    assert params == {"min_cutoff": 10.0, "beta": 0.0}
    assert score > 0


def test_tuner_rejects_unpaired_sequences_and_empty_grids():
    poses = np.zeros((5, 17, 3))
    with pytest.raises(ValueError, match="paired"):
        tune_smoother("savgol", [poses], [], 30, [{"window": 3, "polyorder": 1}])
    with pytest.raises(ValueError, match="grid"):
        tune_smoother("savgol", [poses], [poses], 30, [])
