"""Simulated 2D detector noise: statistics, outliers, swaps and seeded reproducibility."""

import dataclasses

import numpy as np
import pytest

from recipes.detector import (
    DEFAULT_NOISE,
    DETECTORS,
    H36M_SH_NOISE,
    H36M_SH_POSTURE_NOISE,
    H36M_SH_VIEWS_NOISE,
    OCCLUDED_BIN,
    POSTURE_CLASSES,
    DetectorNoise,
    PostureErrors,
    ar1_noise,
    behind_torso,
    bone_axes,
    foreshortening,
    person_size,
    posture_bins,
    simulate_detections,
)
from tests.conftest import project


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
    assert DETECTORS["h36m-sh-posture"] == dataclasses.replace(H36M_SH_NOISE, posture=H36M_SH_POSTURE_NOISE.posture)


def seated_figure(frames=1):
    """A hand-built camera-frame pose ``(frames, 17, 3)`` metres, 4 m in front of a camera looking
    along +z (y down): the right thigh points at the camera, the left elbow hides behind the
    torso and its wrist comes back toward the camera in front of it; everything else upright."""
    pose = np.array([
        [0.0, 0.0, 4.0], [-0.1, 0.0, 4.0], [-0.1, 0.0, 3.6], [-0.1, 0.4, 3.6],  # pelvis, right leg
        [0.1, 0.0, 4.0], [0.1, 0.4, 4.0], [0.1, 0.8, 4.0],  # left leg
        [0.0, -0.25, 4.0], [0.0, -0.5, 4.0], [0.0, -0.6, 4.0], [0.0, -0.75, 4.0],  # spine, thorax, neck, head
        [0.18, -0.5, 4.0], [0.05, -0.3, 4.2], [0.05, -0.3, 3.8],  # left arm
        [-0.18, -0.5, 4.0], [-0.25, -0.25, 4.0], [-0.3, 0.0, 4.0],  # right arm
    ])
    return np.broadcast_to(pose, (frames, 17, 3)).copy()


def test_posture_bins_of_a_hand_built_pose():
    pose = seated_figure()
    fraction = foreshortening(pose)[0]
    assert fraction[2] == pytest.approx(0.1 / np.hypot(0.1, 3.8), abs=1e-6)  # the thigh along the line of sight: sin of its angle
    assert fraction[0] == pytest.approx(1.0)  # the hip axis, across the line of sight
    assert fraction[5] == pytest.approx(np.sqrt(1 - 0.2**2 / (0.1**2 + 0.2**2 + 4.0**2)))  # the upright left thigh, seen from a little above
    hidden = behind_torso(pose, project(pose))[0]
    assert np.flatnonzero(hidden).tolist() == [12]  # only the left elbow: the wrist is inside the outline but in front
    expected = [4] * 17
    expected[2], expected[12], expected[13] = 0, OCCLUDED_BIN, 0
    np.testing.assert_array_equal(posture_bins(pose, project(pose))[0], expected)


def _posture(jitter=None, outliers=None):
    ones = tuple((1.0,) * (OCCLUDED_BIN + 1) for _ in POSTURE_CLASSES)
    return PostureErrors(jitter=jitter or ones, outliers=outliers or ones)


def test_posture_factors_scale_the_jitter_and_outliers_of_each_joint_by_its_bin():
    pose = seated_figure(4000)
    pixels = project(pose)
    jitter = [[1.0] * (OCCLUDED_BIN + 1) for _ in POSTURE_CLASSES]
    jitter[POSTURE_CLASSES.index("knee")][0] = 3.0  # a knee whose thigh points at the camera
    config = DetectorNoise(jitter=0.01, outlier_rate=0.0, swap_rate=0.0, posture=_posture(jitter=tuple(map(tuple, jitter))))
    error = simulate_detections(pixels, np.random.default_rng(0), config, pose) - pixels
    size = person_size(pixels)
    std = error.std(axis=(0, 2)) / (0.01 * size * np.asarray(config.joint_scale))
    assert std[2] == pytest.approx(3.0, rel=0.1) and std[5] == pytest.approx(1.0, rel=0.1)  # right knee (bin 0), left knee (upright)
    outliers = [[0.0] * (OCCLUDED_BIN + 1) for _ in POSTURE_CLASSES]
    outliers[POSTURE_CLASSES.index("elbow")][OCCLUDED_BIN] = 1.0  # only a hidden elbow gets outliers
    config = DetectorNoise(jitter=0.0, outlier_rate=0.01, swap_rate=0.0, posture=_posture(outliers=tuple(map(tuple, outliers))))
    moved = np.abs(simulate_detections(pixels, np.random.default_rng(0), config, pose) - pixels).max(axis=(0, 2)) > 1e-9
    assert np.flatnonzero(moved).tolist() == [12]
    with pytest.raises(ValueError, match="gt_3d"):
        simulate_detections(pixels, np.random.default_rng(0), config)


def test_unit_posture_factors_draw_exactly_the_detections_without_them():
    pose = seated_figure(200)
    pixels = project(pose)
    plain = simulate_detections(pixels, np.random.default_rng(3), H36M_SH_NOISE)
    unit = simulate_detections(pixels, np.random.default_rng(3), dataclasses.replace(H36M_SH_NOISE, posture=_posture()), pose)
    np.testing.assert_array_equal(plain, unit)
    with pytest.raises(ValueError, match="rows"):
        PostureErrors(jitter=((1.0,) * 6,), outliers=_posture().outliers)
    with pytest.raises(ValueError, match=">= 0"):
        PostureErrors(jitter=_posture().jitter, outliers=((-1.0,) * 6,) * 5)


def test_view_offsets_add_one_constant_offset_per_view_after_the_other_errors():
    """The same generator draws the same jitter, outliers and swaps with and without view offsets;
    the difference is one constant (x, y) per joint, of std view_offset x person size over views."""
    poses = standing_person(frames=30)  # person size 400 px
    plain = simulate_detections(poses, np.random.default_rng(5), H36M_SH_NOISE)
    viewed = simulate_detections(poses, np.random.default_rng(5), H36M_SH_VIEWS_NOISE)
    difference = viewed - plain
    np.testing.assert_allclose(difference, np.broadcast_to(difference[0], difference.shape), atol=1e-9)
    assert np.abs(difference[0]).max() > 0.5
    config = DetectorNoise(jitter=0.0, outlier_rate=0.0, swap_rate=0.0, view_offset=((0.01, 0.02),) + ((0.0, 0.0),) * 16)
    rng = np.random.default_rng(0)
    drawn = np.stack([simulate_detections(poses[:2], rng, config)[1] - poses[0] for _ in range(2000)])  # (views, J, 2) pixels
    assert np.abs(drawn[:, 1:]).max() < 1e-9
    np.testing.assert_allclose(drawn[:, 0].std(axis=0), [4.0, 8.0], rtol=0.06)  # 0.01 and 0.02 x 400 px
    assert DETECTORS["h36m-sh-views"] is H36M_SH_VIEWS_NOISE and H36M_SH_VIEWS_NOISE.joint_offset == H36M_SH_NOISE.joint_offset
    with pytest.raises(ValueError, match="view_offset"):
        DetectorNoise(view_offset=((0.0, 0.0),) * 3)
