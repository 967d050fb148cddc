"""Golden-value tests of d3prefine.metrics on tiny hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from d3prefine import metrics
from d3prefine.metrics import (
    METRIC_NAMES,
    METRIC_UNITS,
    METRICS,
    MetricReport,
    accel_error,
    bone_lengths,
    bone_std,
    evaluate_poses,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pool_reports,
    procrustes_align,
)
from d3prefine.skeleton import H36M_17, JointLayout

CHAIN3 = JointLayout(name="chain3", joint_names=("a", "b", "c"), parents=(-1, 0, 1), left_right=())


def random_poses(frames: int, seed: int = 0) -> np.ndarray:
    """Generic (non-planar) H36M-17 poses ``(frames, 17, 3)`` of roughly human size, metres."""
    return np.random.default_rng(seed).normal(scale=0.3, size=(frames, 17, 3)) + np.array([0.0, 0.0, 4.0])


def test_similarity_transform_has_zero_p_mpjpe_but_not_zero_mpjpe():
    gt = random_poses(4)
    rotations = Rotation.from_euler("xyz", [[10, 20, 30], [0, 90, 0], [170, -40, 5], [0, 0, 0]], degrees=True)
    scales = np.array([1.3, 0.7, 1.0, 2.0])[:, None, None]
    pred = scales * np.einsum("tij,tkj->tki", rotations.as_matrix(), gt) + np.array([0.1, -0.2, 0.5])
    assert p_mpjpe(pred, gt) < 1e-6
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)
    assert mpjpe(pred, gt) > 0.05


def test_mirrored_pose_is_not_aligned_by_a_reflection():
    gt = random_poses(3, seed=1)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])
    # An unconstrained orthogonal Procrustes (scipy) undoes the mirror exactly ...
    centred_pred, centred_gt = mirrored[0] - mirrored[0].mean(0), gt[0] - gt[0].mean(0)
    reflection, _ = orthogonal_procrustes(centred_pred, centred_gt)
    assert np.linalg.det(reflection) < 0
    np.testing.assert_allclose(centred_pred @ reflection, centred_gt, atol=1e-9)
    # ... P-MPJPE must not: only proper rotations are allowed.
    assert p_mpjpe(mirrored, gt) > 0.05
    assert np.all(p_mpjpe(mirrored, gt, reduce="frame") > 0.05)


def test_pure_scaling_has_zero_n_mpjpe():
    gt = random_poses(5, seed=2)
    pred = 0.8 * gt
    assert n_mpjpe(pred, gt) < 1e-12
    assert mpjpe(pred, gt) > 0.05


def test_constant_offset_of_non_root_joints_gives_exact_mpjpe():
    gt = random_poses(6, seed=3)
    pred = gt.copy()
    pred[:, 1:] += np.array([0.006, 0.0, 0.008])  # 10 mm
    report = evaluate_poses(pred, gt)
    assert report.summary["mpjpe"] == pytest.approx(10.0 * 16 / 17, abs=1e-9)
    np.testing.assert_allclose(report.per_joint["mpjpe"], [0.0] + [10.0] * 16, atol=1e-9)
    assert mpjpe(pred, gt) == pytest.approx(0.010 * 16 / 17, abs=1e-12)


def test_global_translation_only_counts_without_root_relative():
    gt = random_poses(3, seed=4)
    pred = gt + np.array([0.0, 0.01, 0.0])
    assert evaluate_poses(pred, gt).summary["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert evaluate_poses(pred, gt, root_relative=False).summary["mpjpe"] == pytest.approx(10.0, abs=1e-9)


def test_constant_velocity_error_has_zero_acceleration_error():
    gt = random_poses(8, seed=5)
    pred = gt + np.arange(8)[:, None, None] * np.array([0.0, 0.003, 0.004])  # drifts 5 mm per frame
    assert mpjve(pred, gt, root=None) == pytest.approx(0.005, abs=1e-12)
    assert accel_error(pred, gt, root=None) == pytest.approx(0.0, abs=1e-12)
    # Root-relative, every joint drifts with the root: no error at all.
    assert mpjve(pred, gt) == pytest.approx(0.0, abs=1e-12)
    drift_non_root = gt.copy()
    drift_non_root[:, 1:] += np.arange(8)[:, None, None] * np.array([0.0, 0.003, 0.004])
    report = evaluate_poses(drift_non_root, gt)
    assert report.summary["mpjve"] == pytest.approx(5.0 * 16 / 17, abs=1e-9)
    assert report.summary["accel_error"] == pytest.approx(0.0, abs=1e-9)


def two_frame_example() -> tuple[np.ndarray, np.ndarray]:
    """3-joint chain, 2 frames; gt is all joints at (1, 2, 3) m, so root-relative gt is 0."""
    pred = np.zeros((2, 3, 3))
    pred[0, 1] = [0.003, 0.004, 0.0]  # 5 mm from the root
    pred[1, 2] = [0.0, 0.0, 0.012]  # 12 mm from the root
    pred += np.array([[[0.5, 0.0, 0.0]], [[0.0, 0.7, 0.0]]])  # root moves, irrelevant root-relative
    return pred, np.full((2, 3, 3), [1.0, 2.0, 3.0])


def test_hand_computed_two_frame_three_joint_example():
    pred, gt = two_frame_example()
    np.testing.assert_allclose(mpjpe(pred, gt, reduce="joint"), [0.0, 0.0025, 0.006], atol=1e-12)
    np.testing.assert_allclose(mpjpe(pred, gt, reduce="frame"), [0.005 / 3, 0.012 / 3], atol=1e-12)
    assert mpjpe(pred, gt) == pytest.approx(0.017 / 6, abs=1e-12)
    np.testing.assert_allclose(mpjve(pred, gt, reduce="joint"), [0.0, 0.005, 0.012], atol=1e-12)
    np.testing.assert_allclose(mpjve(pred, gt, reduce="frame"), [0.017 / 3], atol=1e-12)
    np.testing.assert_allclose(bone_lengths(pred, CHAIN3), [[0.005, 0.005], [0.0, 0.012]], atol=1e-12)

    report = evaluate_poses(pred, gt, layout=CHAIN3)
    assert report.frames == 2
    np.testing.assert_allclose(report.per_joint["mpjpe"], [0.0, 2.5, 6.0], atol=1e-9)
    np.testing.assert_allclose(report.per_joint["mpjve"], [0.0, 5.0, 12.0], atol=1e-9)
    np.testing.assert_allclose(report.per_joint["bone_std"], [np.nan, 2.5, 3.5], atol=1e-9)
    assert report.summary["bone_std"] == pytest.approx(3.0, abs=1e-9)
    assert report.summary["mpjve"] == pytest.approx(17.0 / 3, abs=1e-9)
    # Root-relative gt is a single point: the best scale is 0, aligned pred collapses onto it.
    np.testing.assert_allclose(report.per_joint["n_mpjpe"], 0.0, atol=1e-12)
    np.testing.assert_allclose(report.per_joint["p_mpjpe"], 0.0, atol=1e-12)
    assert np.isnan(report.summary["accel_error"])
    assert np.all(np.isnan(report.per_joint["accel_error"]))


def test_bone_std_of_rigidly_moving_skeleton_is_zero():
    base = random_poses(1, seed=6)[0]
    rotations = Rotation.from_euler("z", np.linspace(0, 180, 10)[:, None], degrees=True).as_matrix()
    poses = np.einsum("tij,kj->tki", rotations, base) + np.linspace(0, 1, 10)[:, None, None]
    assert bone_std(poses) == pytest.approx(0.0, abs=1e-12)


def test_bone_std_of_one_alternating_bone():
    poses = np.repeat(random_poses(1, seed=7), 4, axis=0)
    direction = np.array([0.6, 0.0, 0.8])
    lengths = np.array([0.20, 0.22, 0.20, 0.22])
    poses[:, 16] = poses[:, 15] + lengths[:, None] * direction  # r_wrist, a leaf: no other bone changes
    assert bone_std(poses) == pytest.approx(0.01 / 16, abs=1e-12)
    expected = np.zeros(17)
    expected[0], expected[16] = np.nan, 0.01
    np.testing.assert_allclose(bone_std(poses, reduce="joint"), expected, atol=1e-12)
    report = evaluate_poses(poses, poses)
    assert report.summary["bone_std"] == pytest.approx(10.0 / 16, abs=1e-9)


def test_reduce_shapes_and_batches():
    gt = random_poses(6, seed=8)
    pred = gt + 0.01
    assert isinstance(mpjpe(pred, gt), float)
    assert mpjpe(pred, gt, reduce="joint").shape == (17,)
    assert mpjpe(pred, gt, reduce="frame").shape == (6,)
    assert accel_error(pred, gt, reduce="frame").shape == (4,)
    batch_pred, batch_gt = np.stack([pred, gt]), np.stack([gt, gt])
    assert p_mpjpe(batch_pred, batch_gt, reduce="frame").shape == (2, 6)
    assert mpjve(batch_pred, batch_gt, reduce="frame").shape == (2, 5)
    assert mpjpe(gt[0], gt[0]) == 0.0  # a single pose (J, 3)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mpjpe(np.zeros((2, 17, 3)), np.zeros((3, 17, 3))),
        lambda: mpjpe(np.zeros((2, 17, 2)), np.zeros((2, 17, 2))),
        lambda: mpjpe(np.zeros((2, 17, 3)), np.zeros((2, 17, 3)), reduce="median"),
        lambda: mpjve(np.zeros((17, 3)), np.zeros((17, 3))),
        lambda: bone_std(np.zeros((2, 17, 3)), reduce="frame"),
        lambda: bone_lengths(np.zeros((2, 16, 3))),
        lambda: evaluate_poses(np.zeros((2, 16, 3)), np.zeros((2, 16, 3))),
        lambda: evaluate_poses(np.zeros((0, 17, 3)), np.zeros((0, 17, 3))),
        lambda: pool_reports([]),
    ],
)
def test_invalid_inputs_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_shape_error_message_is_one_line_with_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 17, 3\) and \(3, 17, 3\)") as info:
        mpjpe(np.zeros((2, 17, 3)), np.zeros((3, 17, 3)))
    assert "\n" not in str(info.value)


@pytest.mark.filterwarnings("error")
def test_short_sequences_have_nan_velocity_and_acceleration():
    gt = random_poses(2, seed=9)
    one = evaluate_poses(gt[:1] + 0.01, gt[:1])
    assert np.isfinite(one.summary["mpjpe"]) and one.summary["bone_std"] == 0.0
    assert np.isnan(one.summary["mpjve"]) and np.isnan(one.summary["accel_error"])
    assert np.all(np.isnan(one.per_joint["mpjve"]))
    two = evaluate_poses(gt + 0.01, gt)
    assert np.isfinite(two.summary["mpjve"]) and np.isnan(two.summary["accel_error"])
    assert mpjve(gt[:1], gt[:1], reduce="frame").shape == (0,)


def test_report_has_every_metric_in_millimetres():
    gt = random_poses(5, seed=10)
    pred = gt + np.random.default_rng(11).normal(scale=0.02, size=gt.shape)
    report = evaluate_poses(pred, gt)
    assert set(report.summary) == set(report.per_joint) == set(METRIC_NAMES) == set(METRIC_UNITS)
    assert report.summary["p_mpjpe"] == pytest.approx(1000.0 * p_mpjpe(pred, gt), rel=1e-12)
    assert report.summary["n_mpjpe"] == pytest.approx(1000.0 * n_mpjpe(pred, gt), rel=1e-12)
    assert report.summary["accel_error"] == pytest.approx(1000.0 * accel_error(pred, gt), rel=1e-12)
    assert report.summary["bone_std"] == pytest.approx(1000.0 * bone_std(pred), rel=1e-12)


def make_report(frames: int, value: float) -> MetricReport:
    summary = {name: value for name in METRIC_NAMES}
    if frames < 3:
        summary["accel_error"] = float("nan")
    if frames < 2:
        summary["mpjve"] = float("nan")
    per_joint = {name: np.full(17, summary[name]) for name in METRIC_NAMES}
    return MetricReport(frames=frames, summary=summary, per_joint=per_joint)


def test_pool_reports_weights_by_sample_counts():
    pooled = pool_reports([make_report(2, 10.0), make_report(4, 40.0)])
    assert pooled.frames == 6
    assert pooled.summary["mpjpe"] == pytest.approx((2 * 10 + 4 * 40) / 6)
    assert pooled.summary["bone_std"] == pytest.approx((2 * 10 + 4 * 40) / 6)
    assert pooled.summary["mpjve"] == pytest.approx((1 * 10 + 3 * 40) / 4)
    assert pooled.summary["accel_error"] == pytest.approx(40.0)  # the 2-frame report weighs 0
    np.testing.assert_allclose(pooled.per_joint["accel_error"], 40.0)
    np.testing.assert_allclose(pooled.per_joint["mpjve"], (1 * 10 + 3 * 40) / 4)


def test_pool_reports_of_only_short_sequences_is_nan():
    pooled = pool_reports([make_report(1, 10.0), make_report(1, 20.0)])
    assert pooled.summary["mpjpe"] == pytest.approx(15.0)
    assert np.isnan(pooled.summary["mpjve"]) and np.all(np.isnan(pooled.per_joint["accel_error"]))


def test_pooled_position_metrics_equal_those_of_the_concatenation():
    gt = random_poses(7, seed=12)
    pred = gt + np.random.default_rng(13).normal(scale=0.02, size=gt.shape)
    pooled = pool_reports([evaluate_poses(pred[:3], gt[:3]), evaluate_poses(pred[3:], gt[3:])])
    whole = evaluate_poses(pred, gt)
    for name in ("mpjpe", "p_mpjpe", "n_mpjpe"):
        assert pooled.summary[name] == pytest.approx(whole.summary[name], rel=1e-12)
        np.testing.assert_allclose(pooled.per_joint[name], whole.per_joint[name], rtol=1e-12)


def test_pool_reports_rejects_different_joint_counts():
    short = make_report(3, 1.0)
    short.per_joint = {name: values[:3] for name, values in short.per_joint.items()}
    with pytest.raises(ValueError, match="per-joint shape"):
        pool_reports([make_report(3, 1.0), short])


def test_mpjpe_of_tensors_equals_that_of_arrays_and_is_a_differentiable_loss():
    import torch

    pred, gt = random_poses(4, seed=1), random_poses(4, seed=2)
    pred[:, 0] = gt[:, 0]  # the root joints coincide: a zero distance
    pred_t = torch.tensor(pred, requires_grad=True)
    for root, reduce in ((0, "mean"), (None, "mean"), (None, "joint"), (0, "frame")):
        value = mpjpe(pred_t, torch.tensor(gt), root=root, reduce=reduce)
        assert isinstance(value, torch.Tensor)
        np.testing.assert_allclose(value.detach().numpy(), mpjpe(pred, gt, root=root, reduce=reduce), rtol=1e-12)
    loss = mpjpe(pred_t, torch.tensor(gt), root=None)
    loss.backward()
    assert bool(torch.isfinite(pred_t.grad).all()) and float(pred_t.grad[:, 0].abs().max()) == 0.0  # no NaN at zero distance
    # the gradient of the mean distance: unit vectors towards gt over the number of joints and frames
    direction = (pred[:, 1] - gt[:, 1]) / np.linalg.norm(pred[:, 1] - gt[:, 1], axis=-1, keepdims=True)
    np.testing.assert_allclose(pred_t.grad[:, 1].numpy(), direction / (4 * 17), rtol=1e-10)
    with pytest.raises(ValueError, match="tensors of the same shape"):
        mpjpe(pred_t, gt)


def test_metric_table_drives_names_units_and_pooling():
    assert METRIC_NAMES == ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "accel_error", "bone_std")
    assert METRIC_UNITS == {name: METRICS[name].unit for name in METRIC_NAMES}
    assert [METRICS[name].frame_lag for name in METRIC_NAMES] == [0, 0, 0, 1, 2, 0]
    assert METRICS["accel_error"].title == "accel. error" and METRICS["accel_error"].figure_unit == "mm/frame²"
    pred, gt = random_poses(6, seed=3), random_poses(6, seed=4)
    report = evaluate_poses(pred, gt)
    for name, metric in METRICS.items():  # every reported value is its table function, in millimetres
        np.testing.assert_allclose(report.per_joint[name], 1000.0 * metric.function(pred, gt, H36M_17, 0))


@pytest.mark.parametrize("function", [mpjpe, p_mpjpe, n_mpjpe, mpjve, accel_error])
def test_metrics_in_blocks_of_frames_equal_the_whole_sequence(function, monkeypatch):
    rng = np.random.default_rng(3)
    pred, gt = rng.normal(size=(50, 17, 3)), rng.normal(size=(50, 17, 3))
    whole = {reduce: function(pred, gt, reduce=reduce) for reduce in ("mean", "joint", "frame")}
    monkeypatch.setattr(metrics, "BLOCK_FRAMES", 7)  # 50 frames: 8 blocks, the last one short
    for reduce, expected in whole.items():
        np.testing.assert_allclose(function(pred, gt, reduce=reduce), expected, rtol=1e-12)
    assert function(pred, gt, reduce="frame").shape == (50 - {mpjve: 1, accel_error: 2}.get(function, 0),)
