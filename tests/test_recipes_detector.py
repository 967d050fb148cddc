"""Simulated 2D detector noise: statistics, outliers, swaps and seeded reproducibility."""

import dataclasses

import numpy as np
import pytest

from recipes.detector import DEFAULT_NOISE, DETECTORS, H36M_SH_NOISE, DetectorNoise, ar1_noise, bone_axes, person_size, simulate_detections


def standing_person(frames=4000, height_px=400.0):
    """A static 17-joint figure 400 px tall (bounding box 400 x 200)."""
    rng = np.random.default_rng(1)
    base = rng.uniform([400, 300], [600, 700], size=(17, 2))
    base[0], base[1] = [400, 300], [600, 300 + height_px]
    return np.broadcast_to(base, (frames, 17, 2)).copy()


def test_jitter_std_matches_config():
    poses = standing_person()
    config = DetectorNoise(jitter=0.01, outlier_rate=0.0, swap_rate=0.0, temporal_rho=0.5)
    error = simulate_detections(poses, np.random.default_rng(0), config) - poses
    assert person_size(poses) == pytest.approx(400.0)
    expected = 0.01 * 400.0 * np.asarray(config.joint_scale)
    np.testing.assert_allclose(error.std(axis=(0, 2)), expected, rtol=0.1)
    np.testing.assert_allclose(error.mean(axis=(0, 2)), 0, atol=0.5)
    lag1 = np.mean([np.corrcoef(error[1:, j, 0], error[:-1, j, 0])[0, 1] for j in range(17)])
    assert lag1 == pytest.approx(0.5, abs=0.05)


def test_ar1_is_unit_variance_and_white_for_rho_zero():
    noise = ar1_noise(np.random.default_rng(0), (20000, 3), 0.9)
    np.testing.assert_allclose(noise.std(axis=0), 1.0, rtol=0.1)
    white = ar1_noise(np.random.default_rng(0), (20000, 3), 0.0)
    assert abs(np.corrcoef(white[1:, 0], white[:-1, 0])[0, 1]) < 0.03


def test_outliers_are_rare_large_and_last_several_frames():
    poses = standing_person()
    config = DetectorNoise(jitter=0.0, outlier_rate=0.01, outlier_frames=(3, 3), outlier_std=0.2, swap_rate=0.0)
    moved = np.linalg.norm(simulate_detections(poses, np.random.default_rng(0), config) - poses, axis=-1) > 1e-9
    fraction = moved.mean()
    assert 0.015 < fraction < 0.04  # about rate x length = 0.03 (overlaps and clipping at the end)
    runs = np.diff(np.concatenate([np.zeros((1, 17)), moved, np.zeros((1, 17))]).astype(int), axis=0)
    lengths = np.argwhere(runs.T == -1)[:, 1] - np.argwhere(runs.T == 1)[:, 1]
    assert np.median(lengths) == 3


def test_swaps_exchange_left_and_right_limbs():
    poses = standing_person(frames=50)
    config = DetectorNoise(jitter=0.0, outlier_rate=0.0, swap_rate=1.0, swap_frames=(1, 1))
    noisy = simulate_detections(poses, np.random.default_rng(0), config)
    arm = (noisy[:, 13] == poses[:, 16]).all(axis=-1) & (noisy[:, 16] == poses[:, 13]).all(axis=-1)
    leg = (noisy[:, 6] == poses[:, 3]).all(axis=-1) & (noisy[:, 3] == poses[:, 6]).all(axis=-1)
    assert (arm | leg).all() and arm.any() and leg.any()
    np.testing.assert_array_equal(noisy[:, :2], poses[:, :2])  # pelvis and right hip untouched


def test_seeded_reproducibility():
    poses = standing_person(frames=100)
    a = simulate_detections(poses, np.random.default_rng(7))
    b = simulate_detections(poses, np.random.default_rng(7))
    c = simulate_detections(poses, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1


def test_invalid_config_raises():
    with pytest.raises(ValueError, match="joint_scale"):
        DetectorNoise(joint_scale=(1.0,) * 3)
    with pytest.raises(ValueError, match="temporal_rho"):
        DetectorNoise(temporal_rho=1.0)


def test_joint_offsets_move_each_joint_along_and_across_its_bone():
    poses = np.zeros((2, 17, 2))
    poses[:, 1] = [-10.0, 0.0]  # r_hip 10 px left of the pelvis: its bone points along -x
    poses[:, 2] = [-10.0, 40.0]  # r_knee 40 px below the hip: its bone points along +y
    offset = [(0.0, 0.0)] * 17
    offset[1], offset[2] = (-0.3, 0.0), (0.5, 0.25)
    config = DetectorNoise(jitter=0.0, outlier_rate=0.0, swap_rate=0.0, joint_offset=tuple(offset))
    moved = simulate_detections(poses, np.random.default_rng(0), config)
    np.testing.assert_allclose(moved[0, 1], [-7.0, 0.0])  # 30 % of the hip bone back toward the pelvis
    # the knee: half its bone further along +y, a quarter of it "across" = (y, -x) of (0, 1) = +x
    np.testing.assert_allclose(moved[0, 2], [-10.0 + 10.0, 40.0 + 20.0])
    along, across, length = bone_axes(poses)
    np.testing.assert_allclose(length[0, :3, 0], [10.0, 10.0, 40.0])
    with pytest.raises(ValueError):
        DetectorNoise(joint_offset=((0.0, 0.0),) * 3)


def test_fitted_preset_is_noisier_and_slower_than_the_default():
    poses = standing_person(2000)
    fitted = dataclasses.replace(H36M_SH_NOISE, outlier_rate=0.0, swap_rate=0.0, joint_offset=None)
    error = simulate_detections(poses, np.random.default_rng(0), fitted) - poses
    assert np.median(error.std(axis=(0, 2))) / 400.0 == pytest.approx(0.0137, rel=0.15)
    lag1 = np.corrcoef(error[1:, 5, 0], error[:-1, 5, 0])[0, 1]
    assert lag1 == pytest.approx(0.81, abs=0.05)
    assert DETECTORS["bandai"] is DEFAULT_NOISE and DETECTORS["h36m-sh"] is H36M_SH_NOISE
