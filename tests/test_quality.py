"""GT-free evaluation: numbers on hand-built arrays, and evaluate without ground truth."""

import numpy as np
import pytest
from conftest import cli_json
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import save_poses
from d3prefine.metrics import pool_reports
from d3prefine.quality import GT_FREE_METRICS, Evidence, gt_free_report


def test_gt_free_metrics_on_a_hand_built_sequence(make_sequence):
    seq = make_sequence(10, noise_m=0.0)
    still = np.repeat(seq.gt_3d[:1], 10, axis=0).astype(np.float64)  # one pose held still
    pred = still.copy()
    t = np.arange(10, dtype=np.float64)
    pred[:, 13, 0] += 0.001 * t**2  # l_wrist accelerates: second difference 2 mm, third 0
    pred[:, 0] += np.stack([0.01 * t, 0 * t, 0 * t], axis=-1)  # the root drifts: shifts every root-relative joint
    pred[:, 1:] += np.stack([0.01 * t, 0 * t, 0 * t], axis=-1)[:, None]
    camera = np.array([[800.0, 10.0, 5.0], [-7.0, 790.0, 3.0]])
    poses_2d = pred @ camera.T + (500.0, 400.0)  # an exact affine camera: no reprojection error
    report = gt_free_report(pred, Evidence(still, poses_2d))
    assert report.summary["accel"] == pytest.approx(2.0 / 17)  # mm/frame^2, mean over joints
    assert report.per_joint["accel"][13] == pytest.approx(2.0)
    assert report.summary["jerk"] == pytest.approx(0.0, abs=1e-9)
    assert report.per_joint["correction"][13] == pytest.approx(np.mean(1000 * 0.001 * t**2))  # root-relative, mm
    assert report.per_joint["correction"][5] == pytest.approx(0.0, abs=1e-9)
    assert report.summary["reproj_2d"] == pytest.approx(0.0, abs=1e-6)
    assert report.per_joint["bone_std"][13] > 1.0 and report.per_joint["bone_std"][5] == pytest.approx(0.0, abs=1e-9)
    pooled = pool_reports([report, gt_free_report(still[:2], Evidence(still[:2], poses_2d[:2]))], GT_FREE_METRICS)
    assert pooled.frames == 12 and pooled.summary["accel"] == pytest.approx(2.0 / 17)  # a 2-frame sequence has no acceleration


def test_evaluate_without_ground_truth(tmp_path, make_sequence):
    seq = make_sequence(40, noise_m=0.02)
    seq.gt_3d = None
    seq.poses_3d_refined = seq.poses_3d + 0.005  # a constant offset: no change of the root-relative pose
    save_poses(tmp_path / "wild.npz", [seq])
    doc = cli_json("evaluate", str(tmp_path / "wild.npz"))
    entry = doc["sequences"][0]
    assert entry["ground_truth"] is False and entry["baseline_source"] == "poses_3d"
    assert set(entry["metrics"]) == set(GT_FREE_METRICS) and doc["units"]["reproj_2d"] == "px"
    assert entry["metrics"]["correction"] == pytest.approx(0.0, abs=1e-3)
    assert entry["metrics"]["accel"] == pytest.approx(entry["baseline"]["accel"], rel=1e-4)
    assert entry["metrics"]["accel"] > 10.0  # 2 cm noise per frame: jittery
    with_gt = make_sequence(40)
    save_poses(tmp_path / "lab.npz", [with_gt])
    doc = cli_json("evaluate", str(tmp_path / "lab.npz"), str(tmp_path / "wild.npz"))
    assert [s["ground_truth"] for s in doc["sequences"]] == [True, False] and doc["pooled"] is None
    assert "mpjpe" in doc["sequences"][0]["metrics"]


def test_a_gt_free_baseline_of_other_length_is_a_one_line_error(tmp_path, make_sequence):
    seq = make_sequence(40)
    seq.gt_3d = None
    save_poses(tmp_path / "wild.npz", [seq])
    save_poses(tmp_path / "other.npz", [make_sequence(50)])
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "wild.npz"), "--baseline", str(tmp_path / "other.npz")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "baseline" in lines[0] and "has shape (50, 17, 3), prediction poses_3d (40, 17, 3)" in lines[0]
