"""``d3prefine evaluate``: golden numbers for hand-built predictions with known offsets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import PoseSequence, save_poses
from tests.conftest import cli_json

runner = CliRunner()
NON_ROOT = 16 / 17  # share of joints that move when every joint but the root is offset


def offset(poses: np.ndarray, mm: float) -> np.ndarray:
    """``poses`` with every non-root joint moved by ``mm`` millimetres along x."""
    moved = poses.copy()
    moved[:, 1:, 0] += np.float32(mm / 1000.0)
    return moved


def refined_sequence(make_sequence, frames: int = 32, name: str = "walk", refined_mm: float = 10.0,
                     estimate_mm: float = 20.0, seed: int = 0) -> PoseSequence:
    seq = make_sequence(frames, name=name, seed=seed)
    return dataclasses.replace(
        seq, poses_3d_refined=offset(seq.gt_3d, refined_mm), poses_3d=offset(seq.gt_3d, estimate_mm)
    )


def evaluate_json(*args: str) -> dict:
    return cli_json("evaluate", *args)


def test_constant_offset_gives_known_errors_and_baseline_change(tmp_path, make_sequence):
    path = tmp_path / "walk.refined.npz"
    save_poses(path, [refined_sequence(make_sequence)])
    document = evaluate_json(str(path))
    (score,) = document["sequences"]
    assert (score["file"], score["sequence"], score["key"], score["baseline_source"]) == (
        str(path), "walk", "poses_3d_refined", "poses_3d")
    assert score["frames"] == 32
    metrics, baseline, change = score["metrics"], score["baseline"], score["change_pct"]
    assert metrics["mpjpe"] == pytest.approx(10 * NON_ROOT, abs=1e-3)
    assert baseline["mpjpe"] == pytest.approx(20 * NON_ROOT, abs=1e-3)
    assert change["mpjpe"] == pytest.approx(-50.0, abs=0.01)
    assert 0 < metrics["p_mpjpe"] < metrics["mpjpe"]
    assert metrics["n_mpjpe"] <= metrics["mpjpe"] + 1e-6
    for name in ("mpjve", "accel_error"):  # a constant offset does not move over time
        assert metrics[name] == pytest.approx(0.0, abs=1e-3), name
        assert change[name] is None, name  # relative change of rounding noise is undefined
    # Only the three bones leaving the (unmoved) root change length as the body turns.
    assert 0 < metrics["bone_std"] < baseline["bone_std"]
    assert document["units"]["mpjve"] == "mm/frame" and document["units"]["accel_error"] == "mm/frame^2"
    assert document["pooled"]["metrics"]["mpjpe"] == pytest.approx(metrics["mpjpe"])
    assert document["pooled"]["sequences"] == 1 and document["failed"] == []
    assert "per_joint" not in score and document["joints"] is None


def test_per_joint_breakdown(tmp_path, make_sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [refined_sequence(make_sequence)])
    document = evaluate_json("--per-joint", str(path))
    assert document["joints"][:3] == ["pelvis", "r_hip", "r_knee"]
    per_joint = document["sequences"][0]["per_joint"]["mpjpe"]
    assert per_joint[0] == pytest.approx(0.0, abs=1e-6)
    assert per_joint[1:] == pytest.approx([10.0] * 16, abs=1e-3)
    assert document["sequences"][0]["baseline_per_joint"]["mpjpe"][5] == pytest.approx(20.0, abs=1e-3)
    bone_std = document["sequences"][0]["per_joint"]["bone_std"]
    assert bone_std[0] is None  # the root ends no bone
    assert min(bone_std[j] for j in (1, 4, 7)) > 0.01  # bones from the unmoved root vary in length
    assert max(bone_std[j] for j in (2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16)) < 1e-3  # rigid bones
    assert document["pooled"]["per_joint"]["mpjpe"][1:] == pytest.approx([10.0] * 16, abs=1e-3)


def test_key_poses_3d_has_no_automatic_baseline(tmp_path, make_sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [refined_sequence(make_sequence)])
    (score,) = evaluate_json("--key", "poses_3d", str(path))["sequences"]
    assert score["key"] == "poses_3d"
    assert score["metrics"]["mpjpe"] == pytest.approx(20 * NON_ROOT, abs=1e-3)
    assert score["baseline"] is None and score["change_pct"] is None and score["baseline_source"] is None


def test_unrefined_file_scores_poses_3d(tmp_path, make_sequence):
    seq = make_sequence(16)
    path = tmp_path / "raw.h5"
    save_poses(path, [dataclasses.replace(seq, poses_3d=offset(seq.gt_3d, 7.0))])
    (score,) = evaluate_json(str(path))["sequences"]
    assert score["key"] == "poses_3d" and score["baseline"] is None
    assert score["metrics"]["mpjpe"] == pytest.approx(7 * NON_ROOT, abs=1e-3)


def test_baseline_key_reverses_the_comparison(tmp_path, make_sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [refined_sequence(make_sequence)])
    (score,) = evaluate_json("--key", "poses_3d", "--baseline-key", "poses_3d_refined", str(path))["sequences"]
    assert score["baseline_source"] == "poses_3d_refined"
    assert score["change_pct"]["mpjpe"] == pytest.approx(100.0, abs=0.01)  # worse than the baseline: positive


def test_baseline_file_and_ground_truth_file_matched_by_name(tmp_path, make_sequence):
    """Predictions without ground truth; --gt and --baseline files hold the sequences in another order."""
    a = refined_sequence(make_sequence, 20, "a", refined_mm=10.0, seed=1)
    b = refined_sequence(make_sequence, 40, "b", refined_mm=30.0, seed=2)
    preds = tmp_path / "preds.npz"
    save_poses(preds, [dataclasses.replace(s, gt_3d=None) for s in (a, b)])
    gt = tmp_path / "gt.h5"
    save_poses(gt, [b, a])
    base = tmp_path / "unrefined.npz"
    save_poses(base, [dataclasses.replace(s, poses_3d_refined=None, poses_3d=offset(s.gt_3d, 5.0)) for s in (b, a)])
    document = evaluate_json("--gt", str(gt), "--baseline", str(base), str(preds))
    scores = {score["sequence"]: score for score in document["sequences"]}
    assert scores["a"]["metrics"]["mpjpe"] == pytest.approx(10 * NON_ROOT, abs=1e-3)
    assert scores["b"]["metrics"]["mpjpe"] == pytest.approx(30 * NON_ROOT, abs=1e-3)
    assert scores["a"]["baseline_source"] == f"{base}:poses_3d"
    assert scores["a"]["change_pct"]["mpjpe"] == pytest.approx(100.0, abs=0.01)
    assert scores["b"]["change_pct"]["mpjpe"] == pytest.approx(500.0, abs=0.05)
    pooled = document["pooled"]
    assert pooled["frames"] == 60
    assert pooled["metrics"]["mpjpe"] == pytest.approx((10 * 20 + 30 * 40) / 60 * NON_ROOT, abs=1e-3)
    assert pooled["baseline"]["mpjpe"] == pytest.approx(5 * NON_ROOT, abs=1e-3)


def test_single_sequences_pair_whatever_their_names(tmp_path, make_sequence):
    seq = refined_sequence(make_sequence)
    preds = tmp_path / "p.npz"
    save_poses(preds, [dataclasses.replace(seq, name="take_01", gt_3d=None)])
    gt = tmp_path / "g.npz"
    save_poses(gt, [dataclasses.replace(seq, name="subject1_take1")])
    (score,) = evaluate_json("--gt", str(gt), str(preds))["sequences"]
    assert score["metrics"]["mpjpe"] == pytest.approx(10 * NON_ROOT, abs=1e-3)


def test_human_output_goes_to_stdout(tmp_path, make_sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [refined_sequence(make_sequence)])
    result = runner.invoke(app, ["evaluate", "--per-joint", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    for text in ("mpjpe", "accel_error", "mm/frame^2", "9.41", "18.82", "-50.0%", "r_wrist", "[walk]"):
        assert text in result.stdout, text


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("other_names", ["--gt"], "sequence 'x' has no match in"),
        ("short_gt", ["--gt"], "sequence 'walk': poses_3d_refined has shape (32, 17, 3), ground truth (31, 17, 3)"),
        ("no_refined", ["--key", "poses_3d_refined"], "sequence 'walk': missing key 'poses_3d_refined'"),
    ],
)
def test_unusable_inputs_fail_with_one_line(tmp_path, make_sequence, setup, args, message):
    seq = refined_sequence(make_sequence)
    preds, other = tmp_path / "preds.npz", tmp_path / "other.npz"
    if setup == "other_names":
        save_poses(preds, [dataclasses.replace(seq, name="x"), dataclasses.replace(seq, name="y")])
        save_poses(other, [dataclasses.replace(seq, name="p"), dataclasses.replace(seq, name="q")])
    elif setup == "short_gt":
        save_poses(preds, [seq])
        short = PoseSequence("walk", seq.poses_2d[:31], seq.gt_3d[:31], image_size=seq.image_size)
        save_poses(other, [short])
    else:
        save_poses(preds, [dataclasses.replace(seq, poses_3d_refined=None)])
    cli_args = [*args, str(other)] if args and args[-1] == "--gt" else args
    result = runner.invoke(app, ["evaluate", *cli_args, str(preds)])
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr


def test_invalid_ground_truth_file_fails_before_any_input(tmp_path, make_sequence):
    preds = tmp_path / "preds.npz"
    save_poses(preds, [refined_sequence(make_sequence)])
    result = runner.invoke(app, ["evaluate", "--gt", str(tmp_path / "missing.h5"), str(preds)])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'missing.h5'}: file not found\n"
