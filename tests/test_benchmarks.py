"""Smoke tests of ``benchmarks/``: both scripts on tiny weights and pose files built in tmp."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import (
    accuracy,
    frame_rate,
    guard,
    h36m,
    h36m_probe,
    headroom,
    joint_geometry,
    leave_one_out,
    report,
    reverse_steps,
    scarce_data,
    skeleton,
    smoothing,
    speed,
    uncertainty,
)
from benchmarks.report import WORSE_MM, made_worse
from d3prefine.baselines import Smoother, savgol
from d3prefine.blend import BlendedRefiner
from d3prefine.bones import constrain_bones, median_bone_lengths, rechain
from d3prefine.calibration import CORRECTION_WEIGHTS, Widening
from d3prefine.checkpoint import save_denoiser, set_denoiser_metadata
from d3prefine.config import FINE_TUNE_ANCHOR
from d3prefine.errors import InputError
from d3prefine.guard import GUARD_METADATA_KEY, GuardReference
from d3prefine.guard_fit import fit_guard
from d3prefine.io import PoseSequence, load_poses, save_poses
from d3prefine.metrics import METRIC_NAMES, evaluate_poses, mpjpe, pool_reports
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.refine import DEFAULT_SMOOTH, SMOOTH_POLYORDER, Refiner
from d3prefine.skeleton import H36M_17
from recipes.estimators import LifterConfig, LifterKind, save_lifter
from tests.conftest import build_sequence

TINY = DenoiserConfig(window=9, dim=16, depth=1, heads=2)
ESTIMATOR = "TinyLifter"


def _sequences(count: int, frames: int, seed: int, prefix: str) -> list[PoseSequence]:
    sequences = [build_sequence(frames, seed=seed + k, name=f"{prefix}{k}") for k in range(count)]
    for seq in sequences:
        seq.provenance["estimator"] = ESTIMATOR
    return sequences


def _denoiser(path: Path, trained: bool, fps: float | None = None) -> None:
    torch.manual_seed(0)
    model = PoseDenoiser(TINY)
    if trained:  # a non-zero output standing in for trained weights; untrained predicts z = 0
        torch.nn.init.normal_(model.head.weight, std=0.5)
    save_denoiser(path, model, {"test": True}, fps=fps)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Training and validation files of one estimator, shipped-style weights and two variants."""
    folder = tmp_path_factory.mktemp("bench")
    paths = {"train": folder / "train.h5", "val": folder / "val.h5", "weights": folder / "weights"}
    train = _sequences(4, 60, 0, "t")
    save_poses(paths["train"], train)
    save_poses(paths["val"], _sequences(3, 40, 10, "v"))
    paths["weights"].mkdir()
    noise = NoiseModel.fit([error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in train], layout="h36m17")
    noise.save(paths["weights"] / "noise.safetensors")
    _denoiser(paths["weights"] / "denoiser.safetensors", trained=True)
    paths["zero"] = folder / "zero.safetensors"
    _denoiser(paths["zero"], trained=False)
    paths["iso"] = folder / "noise_iso.safetensors"
    NoiseModel.isotropic(0.02, num_joints=17, layout="h36m17", still=(0,)).save(paths["iso"])
    paths["estimators"] = folder / "estimators"
    config = LifterConfig(LifterKind.TEMPORAL, width=16)
    save_lifter(config.build(), config, paths["estimators"] / "temporal.safetensors")
    return paths


# each CPU probe on run_probe with its required files and one count set to 0
PROBE_COUNTS = [
    (skeleton, ["--val", "v.h5", "--max-sequences", "0"]),
    (headroom, ["--val", "v.h5", "--max-sequences", "0"]),
    (joint_geometry, ["--val", "v.h5", "--max-sequences", "0"]),
    (guard, ["--train", "t.h5", "--val", "v.h5", "--sequences", "0"]),
    (uncertainty, ["--val", "v.h5", "--sequences", "0"]),
    (uncertainty, ["--val", "v.h5", "--max-frames", "0"]),
    (uncertainty, ["--val", "v.h5", "--samples", "0"]),
    (frame_rate, ["--data", "v.h5", "--sequences", "0"]),
    (h36m_probe, ["--val", "v.h5", "--estimator", "e", "--cameras", "c.json", "--max-sequences", "0"]),
    (reverse_steps, ["--val", "v.h5", "--windows", "0"]),
    (smoothing, ["--train", "t.h5", "--sequences", "0"]),
    (smoothing, ["--train", "t.h5", "--threads", "0"]),
]


@pytest.mark.parametrize(("module", "argv"), PROBE_COUNTS, ids=lambda v: " ".join(v[-2:]) if isinstance(v, list) else v.__name__.rsplit(".")[-1])
def test_a_probe_refuses_a_count_below_one_at_parse_time(module, argv, tmp_path, capsys):
    """A usage error (exit 2) naming the option, before the (missing) weights load or anything is written."""
    out = tmp_path / "probe"
    with pytest.raises(SystemExit) as usage:
        module.main([*argv, "--weights", str(tmp_path / "missing"), "--out", str(out)])
    assert usage.value.code == 2 and f"{argv[-2]}: must be >= 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_sequence_is_made_worse_only_beyond_float_rounding():
    """accuracy's per-sequence harm counts MPJPE rises above WORSE_MM (0.01 mm): a row equal to the
    base up to float rounding makes nothing worse."""
    def row(*mpjpe: float) -> accuracy.Row:
        reports = [SimpleNamespace(summary={"mpjpe": m}) for m in mpjpe]
        return accuracy.Row("r", accuracy.RowKind.BASE, {}, 0.0, reports[0], reports)

    base = row(50.0, 60.0, 70.0, 80.0)
    share, change = row(50.0 + 1e-5, 60.02, 69.0, 80.0).sequence_harm(base)
    assert WORSE_MM == 0.01 and share == 0.25 and change["max"] == pytest.approx(0.02)
    assert made_worse(60.02, 60.0) and not made_worse(60.0 + 1e-5, 60.0)
    assert made_worse(np.array([50.0, 60.02]), np.array([50.0, 60.0])).tolist() == [False, True]


def test_accuracy_rows_columns_and_targets(files, tmp_path):
    out = tmp_path / "results" / "accuracy"
    argv = ["--val", files["val"], "--train", files["train"], "--weights", files["weights"],
            "--variant", f"zero={files['zero']}", "--ablation", f"iso={files['weights'] / 'denoiser.safetensors'}:{files['iso']}",
            "--steps", "1", "2", "--samples", "2", "--sample-steps", "2", "--setting", "flip", "--setting", "overlap=5,flip", "--max-sequences", "2", "--device", "cpu",
            "--threads", "1", "--out", out]
    assert accuracy.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["run"]["command"].startswith("python -m benchmarks.accuracy --val ")
    assert document["run"]["machine"]["cpu_count"] >= 1 and document["settings"]["device"] == "cpu"
    assert document["run"]["machine"]["torch_threads"] == document["settings"]["threads"] == 1  # recorded after setting them
    (section,) = document["estimators"]
    assert section["estimator"] == ESTIMATOR and section["sequences"] == 2 and section["frames"] == 80
    rows = {row["label"]: row for row in section["rows"]}
    assert [row["kind"] for row in section["rows"]] == ["base", "smoother", "smoother", "bones", "gaussian_mean", "variant", "ablation",
                                                        *["d3prefine"] * 8]
    assert list(rows)[-8:] == ["d3prefine K=1", "d3prefine K=1, no smoothing", "d3prefine K=1, bone lengths free",
                               "d3prefine K=1, bone lengths constant", "d3prefine K=1, --flip", "d3prefine K=1, --overlap 5 --flip",
                               "d3prefine K=2", "d3prefine K=2, S=2 samples, eta=0.3"]
    assert rows["d3prefine K=1, --overlap 5 --flip"]["params"] == {"samples": 1, "steps": 1, "overlap": 5, "flip": True}
    assert document["settings"]["setting"] == [{"flip": True}, {"overlap": 5, "flip": True}]
    assert rows["d3prefine K=1, bone lengths free"]["params"] == {"samples": 1, "steps": 1, "bone_lengths": "free"}
    assert rows["d3prefine K=1, --flip"]["params"] == {"samples": 1, "steps": 1, "flip": True}
    assert document["settings"]["bone_lengths"] == ["free", "constant"]
    assert document["settings"]["smooth"] == 9 and rows["d3prefine K=1, no smoothing"]["params"]["smooth"] == 0
    for row in section["rows"]:
        assert set(row["metrics"]) == set(row["change_pct"]) == set(METRIC_NAMES)
        assert row["frames"] == 80 and row["seconds"] >= 0
    base = rows["base estimator"]
    assert all(change == 0 for change in base["change_pct"].values())
    assert base["sequences_worse_share"] == 0 and base["sequence_change_mm"] == {"p50": 0, "p90": 0, "max": 0}
    val = [s for s in load_poses(files["val"]) if s.name in section["sequence_names"]]
    expected = pool_reports([evaluate_poses(s.poses_3d, s.gt_3d) for s in val]).summary
    assert base["metrics"] == pytest.approx(expected)
    refined = Refiner.from_pretrained(files["weights"], device="cpu").refine_sequences(val)
    change = [evaluate_poses(r.poses_3d, s.gt_3d).summary["mpjpe"] - evaluate_poses(s.poses_3d, s.gt_3d).summary["mpjpe"]
              for r, s in zip(refined, val)]
    assert rows["d3prefine K=1"]["sequences_worse_share"] == np.mean(np.array(change) > WORSE_MM)
    assert rows["d3prefine K=1"]["sequence_change_mm"]["max"] == pytest.approx(max(change), abs=1e-3)
    rechained = [rechain(s.poses_3d, median_bone_lengths(s.poses_3d, H36M_17), H36M_17).astype(np.float32) for s in val]
    assert rows["constant bone lengths (sequence medians)"]["metrics"] == pytest.approx(
        pool_reports([evaluate_poses(r, s.gt_3d) for r, s in zip(rechained, val)]).summary)
    # An untrained denoiser applies the Gaussian conditional mean, then the default smoothing
    # (which only filters along time: tiny on MPJPE, large on the acceleration error).
    gaussian, zero = rows["Gaussian conditional mean"], rows["variant zero (K=1)"]
    means = accuracy.gaussian_mean(NoiseModel.load(files["weights"] / "noise.safetensors"), val, 0)
    # (refine keeps the input's bone lengths by default: the smoothed mean re-chained to them)
    smoothed = [constrain_bones(savgol(m - s.poses_3d[:, :1], DEFAULT_SMOOTH, SMOOTH_POLYORDER), s.poses_3d - s.poses_3d[:, :1], "input", H36M_17)
                + s.poses_3d[:, :1] for m, s in zip(means, val)]
    assert gaussian["metrics"] == pytest.approx(pool_reports([evaluate_poses(m, s.gt_3d) for m, s in zip(means, val)]).summary)
    assert zero["metrics"] == pytest.approx(pool_reports([evaluate_poses(m, s.gt_3d) for m, s in zip(smoothed, val)]).summary, rel=1e-3, abs=1e-3)
    assert rows["d3prefine K=1"]["metrics"]["mpjpe"] != pytest.approx(gaussian["metrics"]["mpjpe"], abs=1e-2)
    flipped = Refiner.from_pretrained(files["weights"], device="cpu").refine_sequences(val, flip=True)
    assert rows["d3prefine K=1, --flip"]["metrics"] == pytest.approx(
        pool_reports([evaluate_poses(r.poses_3d, s.gt_3d) for r, s in zip(flipped, val)]).summary, rel=1e-4)
    smoothers = [row["params"] for row in section["rows"] if row["kind"] == "smoother"]
    assert smoothers[0]["smoother"] == "savgol" and smoothers[0]["tuned_on_sequences"] == 4
    # Targets: 5 per checked row (the K=1 default and the best d3prefine row, if another).
    targets = section["targets"]
    assert len(targets) in (5, 10) and {t["subject"] for t in targets} <= set(rows)
    mpjpe_vs_base = next(t for t in targets if t["name"] == "MPJPE vs base estimator" and t["subject"] == "d3prefine K=1")
    assert mpjpe_vs_base["value"] == pytest.approx(rows["d3prefine K=1"]["change_pct"]["mpjpe"])
    assert mpjpe_vs_base["pass"] == (mpjpe_vs_base["value"] <= -15)
    below = [t["name"] for t in targets if "below best baseline" in t["name"]]
    assert below and not any("ablation" in name for name in below)  # an ablation of d3prefine is no baseline
    assert [v["variant"] for v in section["multistep_vs_variants"]] == ["zero", "iso"]
    report = out.with_suffix(".md").read_text()
    assert f"## {ESTIMATOR}" in report and "| method | MPJPE (mm) |" in report and "(best d3prefine)" in report
    assert "### Targets" in report and report.count("PASS") + report.count("FAIL") >= 5
    assert "beat variant zero" in report


def test_grid_edges_flag_open_ends_only():
    grid = accuracy.SMOOTHER_GRIDS[Smoother.ONE_EURO]
    assert accuracy.grid_edges(Smoother.ONE_EURO, {"min_cutoff": 4.0, "beta": 0.0}, grid) == []  # beta 0: a natural bound
    assert accuracy.grid_edges(Smoother.ONE_EURO, {"min_cutoff": 30.0, "beta": 300.0}, grid) == ["min_cutoff 30", "beta 300"]
    grid = accuracy.SMOOTHER_GRIDS[Smoother.SAVGOL]
    assert accuracy.grid_edges(Smoother.SAVGOL, {"window": 15, "polyorder": 0}, grid) == []
    assert accuracy.grid_edges(Smoother.SAVGOL, {"window": 3, "polyorder": 11}, grid) == ["window 3", "polyorder 11"]
    assert accuracy.grid_edges(Smoother.SAVGOL, {"window": 21, "polyorder": 5}, grid) == []


def test_accuracy_needs_a_training_file_of_the_same_estimator(files, tmp_path, capsys):
    other = tmp_path / "other.h5"
    save_poses(other, [build_sequence(40, name="o")])  # no provenance estimator: labelled "other"
    argv = ["--val", other, "--train", files["train"], "--weights", files["weights"], "--device", "cpu", "--out", tmp_path / "a"]
    assert accuracy.main([str(a) for a in argv]) == 1
    assert "no --train file holds estimator 'other'" in " ".join(capsys.readouterr().err.split())
    assert not list(tmp_path.glob("a.*"))
    with pytest.raises(SystemExit):
        accuracy.main(["--val", str(other), "--train", str(other), "--variant", "no-equals-sign", "--out", str(tmp_path / "a")])


def test_leave_one_out_runs_the_accuracy_benchmark_per_held_out_estimator(files, tmp_path, capsys):
    out = tmp_path / "loeo"
    argv = ["--fold", f"{ESTIMATOR}={files['weights']}", "--val", files["val"], "--train", files["train"],
            "--max-sequences", "2", "--device", "cpu", "--threads", "1", "--out", out]
    assert leave_one_out.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["benchmark"] == "leave_one_out" and document["target_change_pct"] == -20.0
    (fold,) = document["folds"]
    (fold_document,) = document["fold_documents"]
    assert fold["held_out"] == fold_document["held_out"] == ESTIMATOR
    assert fold["weights"] == str(files["weights"]) and fold["files"] == [str(files["val"])]
    val = accuracy.load_scored(files["val"], 2, 0)
    assert fold["base_mpjpe"] == pytest.approx(pool_reports([evaluate_poses(s.poses_3d, s.gt_3d) for s in val]).summary["mpjpe"])
    (section,) = fold_document["estimators"]
    assert section["sequences"] == 2
    rows = {row["label"]: row for row in section["rows"]}
    # Its defaults: K=1 only, no sampled or bone-length rows.
    assert [row["label"] for row in section["rows"] if row["kind"] == "d3prefine"] == ["d3prefine K=1", "d3prefine K=1, no smoothing"]
    assert fold["d3prefine_mpjpe"] == pytest.approx(rows["d3prefine K=1"]["metrics"]["mpjpe"])
    assert fold["gaussian_mean_mpjpe"] == pytest.approx(rows["Gaussian conditional mean"]["metrics"]["mpjpe"])
    assert fold["d3prefine_mpjpe"] != pytest.approx(fold["base_mpjpe"], abs=1e-3)
    check = fold["check"]
    assert (check["name"], check["subject"], check["threshold"]) == ("MPJPE vs held-out estimator", ESTIMATOR, -20.0)
    assert check["value"] == pytest.approx(report.change_pct(fold["d3prefine_mpjpe"], fold["base_mpjpe"]))
    assert check["pass"] == (check["value"] <= -20.0)
    text = out.with_suffix(".md").read_text()
    assert f"# Held out: {ESTIMATOR}" in text and f"| {ESTIMATOR} | `{files['weights']}` | 1 |" in text
    # A fold naming an estimator no file holds: one error line, nothing written.
    argv[1] = f"Nobody={files['weights']}"
    assert leave_one_out.main([str(a) for a in argv[:-1] + [tmp_path / "none"]]) == 1
    assert "--fold Nobody: no --val and --train files hold estimator 'Nobody'" in " ".join(capsys.readouterr().err.split())
    assert not list(tmp_path.glob("none.*"))


def test_leave_one_out_pairs_the_files_of_two_builds(files, tmp_path, capsys):
    """Two builds hold the same estimator name: one accuracy run per (val, train) pair, pooled."""
    other = tmp_path / "other"
    other.mkdir()
    for key in ("val", "train"):
        shutil.copy(files[key], other / Path(files[key]).name)
    out = tmp_path / "loeo"
    argv = ["--fold", f"{ESTIMATOR}={files['weights']}", "--val", files["val"], "--val", other / Path(files["val"]).name,
            "--train", files["train"], "--train", other / Path(files["train"]).name,
            "--max-sequences", "2", "--device", "cpu", "--threads", "1", "--out", out]
    assert leave_one_out.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    (fold,) = document["folds"]
    first, second = document["fold_documents"][0]["estimators"]
    assert [first["train_file"], second["train_file"]] == [str(files["train"]), str(other / Path(files["train"]).name)]
    assert first["rows"][0]["metrics"]["mpjpe"] == pytest.approx(second["rows"][0]["metrics"]["mpjpe"])
    assert fold["base_mpjpe"] == pytest.approx(first["rows"][0]["metrics"]["mpjpe"]) and len(fold["files"]) == 2
    # Unpaired files of the held-out estimator: one error line.
    unpaired = argv[:8] + ["--max-sequences", "2", "--out", tmp_path / "unpaired"]  # both --val, the first --train
    assert leave_one_out.main([str(a) for a in unpaired]) == 1
    assert "2 --val but 1 --train files hold it" in " ".join(capsys.readouterr().err.split())


def test_leave_one_out_fold_argument():
    assert leave_one_out.parse_fold("TemporalLifter9=runs/loeo/t9") == ("TemporalLifter9", Path("runs/loeo/t9"))
    for bad in ("abc", "=runs/x", "name="):
        with pytest.raises(argparse.ArgumentTypeError, match="expected NAME=DIR"):
            leave_one_out.parse_fold(bad)


def test_speed_quick(files, tmp_path):
    out = tmp_path / "speed"
    argv = ["--quick", "--weights", files["weights"], "--estimators", files["estimators"], "--input", files["val"],
            "--device", "cpu", "--threads", "1", "--out", out]
    assert speed.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    (row,) = document["throughput"]
    assert (row["device"], row["threads"], row["steps"], row["batch_size"], row["frames"]) == ("cpu", 1, 1, 64, 2000)
    assert row["frames_per_s"] == pytest.approx(row["frames"] / row["seconds"])
    assert row["repeats"] == 2 and row["frames_per_s_min"] <= row["frames_per_s"] <= row["frames_per_s_max"]
    temporal, frame = document["estimators"]
    assert temporal["estimator"] == "TemporalLifter" and temporal["frames_per_s"] > 0
    assert frame["estimator"] == "FrameLifter" and "not found" in frame["skipped"]
    assert [r["frames"] for r in document["scaling"]] == [200, 2000]
    for r in document["scaling"]:
        assert 0 < r["rss_after_load_mb"] <= r["peak_rss_mb"] < 4096 and r["seconds"] > 0
    one, many = document["many_files"]
    assert (one["files"], many["files"], one["frames"], many["frames"]) == (1, 12, 600, 600)
    assert many["input"] == "12 files of 50 frames" and min(one["frames_per_s"], many["frames_per_s"]) > 0
    startup = {row["command"]: row for row in document["startup"]}
    assert list(startup) == ["d3prefine --help", "d3prefine info walk.npz", "usage error (refine --steps 0)",
                             "d3prefine refine walk.npz (whole run, CPU)"]
    assert all(0 < r["seconds_min"] <= r["seconds"] <= r["seconds_max"] and r["repeats"] == 1 for r in startup.values())
    assert all(0 < r["cpu_seconds"] for r in startup.values())
    assert len(document["settings"]["load_average"]["before"]) == 3
    throughput, peak, linear, growth, files, help_, info = document["targets"]
    assert files["value"] == pytest.approx(many["frames_per_s"] / one["frames_per_s"]) and files["threshold"] == 0.8
    assert help_["value"] == startup["d3prefine --help"]["cpu_seconds"] and (help_["threshold"], info["threshold"]) == (0.5, 1.0)
    assert throughput["value"] is None and "n/a: measured with 1 threads" in throughput["name"]  # the target is for 2
    assert peak["value"] is None and peak["pass"] is None  # 100k frames are not run in --quick
    assert peak["threshold"] == pytest.approx(953.67, abs=0.01)  # below 1 GB = 10^9 bytes
    short, long = document["scaling"]
    ratio = (long["seconds"] / long["frames"]) / (short["seconds"] / short["frames"])
    assert linear["unit"] == "x" and linear["value"] == pytest.approx(ratio) and linear["pass"] == (ratio <= 1.5)
    per_frame = (long["peak_increase_mb"] - short["peak_increase_mb"]) * 1024 / (long["frames"] - short["frames"])
    assert growth["unit"] == "KiB/frame" and growth["value"] == pytest.approx(per_frame) and growth["pass"] == (per_frame <= 4.0)
    report = out.with_suffix(".md").read_text()
    for title in ("## Refinement throughput", "## Base estimators", "## Scaling", "## Targets", "| device | threads | K |",
                  "## Many small files versus one file", "## Start-up"):
        assert title in report
    assert "skipped:" in report and "n/a" in report


def test_speed_startup_only(files, tmp_path):
    out = tmp_path / "startup"
    argv = ["--quick", "--startup-only", "--weights", files["weights"], "--input", files["val"], "--threads", "1", "--out", out]
    assert speed.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert len(document["startup"]) == 4 and document["throughput"] == document["many_files"] == []
    assert [t["name"].split(" (")[0] for t in document["targets"]] == ["start-up: d3prefine --help", "start-up: d3prefine info walk.npz"]
    report = out.with_suffix(".md").read_text()
    assert "## Start-up" in report and "## Scaling" not in report and "## Refinement throughput" not in report


def test_synthetic_walk_is_a_valid_pose_sequence(tmp_path):
    p2d, p3d = speed.synthetic_walk(50)
    save_poses(tmp_path / "walk.npz", [PoseSequence(name="walk", poses_2d=p2d, poses_3d=p3d)])
    (seq,) = load_poses(tmp_path / "walk.npz")
    assert seq.poses_3d.shape == (50, 17, 3) and np.abs(seq.poses_2d).max() < 1.0
    sequences = speed.tiled(p2d, p3d, 700, 300)
    assert [len(s[1]) for s in sequences] == [234, 233, 233] and np.array_equal(sequences[1][1][0], p3d[234 % 50])


def test_report_checks_changes_and_tables():
    assert report.Check("t", "row", -15.0, report.Compare.AT_MOST, -15.0, "%").verdict == "PASS"
    assert report.Check("t", "row", 1.9, report.Compare.AT_LEAST, 2.0, "mm").measured(signed=True) == "+1.9 mm FAIL"
    assert report.Check("t", "row", None, report.Compare.AT_MOST, 1.0, "MiB").to_json()["pass"] is None
    assert report.Check("t", "row", float("nan"), report.Compare.AT_MOST, 1.0, "MiB").verdict == "n/a"
    assert report.change_pct(42.0, 50.0) == pytest.approx(-16.0) and report.change_pct(1.0, 0.0) is None
    assert report.markdown_table(["a", "b"], [["x|y", "1"]]).splitlines() == ["| a | b |", "| --- | ---: |", "| x\\|y | 1 |"]


def test_reverse_steps_probe(files, tmp_path):
    out = tmp_path / "steps"
    argv = ["--val", files["val"], "--weights", files["weights"], "--windows", "5", "--threads", "1", "--out", out]
    assert reverse_steps.main([str(a) for a in argv]) == 0
    (section,) = json.loads(out.with_suffix(".json").read_text())["files"]
    assert section["windows"] == 5 and [row["t"] for row in section["steps"]] == [75, 50, 25]
    # The true forward state at step t carries t/T of the input's error (per joint, so also on average).
    for row in section["steps"]:
        assert row["true_state_mpjpe"] == pytest.approx(row["t"] / 100 * section["input_mpjpe"], rel=1e-4)
        assert row["ddim_state_mpjpe"] > 0 and row["ddim_x0_mpjpe"] > 0
    assert "| t | true forward state |" in out.with_suffix(".md").read_text()


def test_smoothing_window_choice(files, tmp_path):
    out = tmp_path / "smoothing"
    argv = ["--train", files["train"], "--weights", files["weights"], "--sequences", "3", "--threads", "1", "--out", out]
    assert smoothing.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    (section,) = document["files"]
    assert section["sequences"] == 3 and section["frames"] == 180
    assert [row["window"] for row in section["rows"]] == list(smoothing.WINDOWS)
    unfiltered, *filtered = section["rows"]
    assert all(change == 0 for change in unfiltered["change_pct_vs_unfiltered"].values())
    assert all(row["metrics"]["mpjpe"] != unfiltered["metrics"]["mpjpe"] for row in filtered)
    best = min(filtered, key=lambda row: row["metrics"]["mpjpe"])["window"]
    assert document["best_window"] == best and document["default_window"] == 9
    assert f"Lowest MPJPE over all files: window {best}" in out.with_suffix(".md").read_text()


def test_scarce_data_probe(files, tmp_path, monkeypatch):
    for name, fields in scarce_data.MODELS.items():  # full learning rate, no EMA lag: 4 steps move the models apart
        monkeypatch.setitem(scarce_data.MODELS, name, {**fields, "warmup": 1, "ema_decay": 0.0})
    out = tmp_path / "scarce"
    argv = ["--train", files["train"], "--val", files["val"], "--sequences", "3", "--val-sequences", "2",
            "--steps", "4", "--eval-every", "2", "--threads", "1", "--out", out]
    assert scarce_data.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["settings"]["sequences"] == 3 and document["train_sequences"] == 3 and document["train_frames"] == 180
    assert document["windows_drawn"] == 4 * 64 and document["val_windows"] == 2 * (40 - 27 + 1)
    assert {name: [r["step"] for r in curve] for name, curve in document["curves"].items()} == dict.fromkeys(scarce_data.MODELS, [2, 4])
    (scored,) = document["files"]
    rows = {r["method"]: r["metrics"] for r in scored["rows"]}
    assert list(rows) == ["base estimator", "regression K=1", "diffusion K=1", "diffusion K=2", "diffusion, mixed errors K=1"]
    val = accuracy.load_scored(files["val"], 2, 0)
    pred, gt = np.concatenate([s.poses_3d for s in val]), np.concatenate([s.gt_3d for s in val])
    assert rows["base estimator"]["mpjpe"] == pytest.approx(1000 * mpjpe(pred, gt), rel=1e-5)
    # Three trainings: the models differ, and so do their refinements (by more than rounding).
    values = sorted(metrics["mpjpe"] for metrics in rows.values())
    assert min(np.diff(values)) > 1e-3
    text = out.with_suffix(".md").read_text()
    assert "up to 3 training sequences per `--train` file" in text and "| regression K=1 | " in text and "(+0.00)" in text


def test_provenance_is_the_tree_that_ran(files, tmp_path, monkeypatch):
    """A file edited while a benchmark runs does not mark its report "with uncommitted changes"."""
    status = {"value": ""}  # `git status --porcelain`: clean until the work starts
    monkeypatch.setattr(report, "_git", lambda *args: status["value"] if args[0] == "status" else "0" * 40)
    load = report.Refiner.from_pretrained

    def load_then_edit(*args, **kwargs):
        status["value"] = " M README.md"
        return load(*args, **kwargs)

    monkeypatch.setattr(report.Refiner, "from_pretrained", load_then_edit)
    out = tmp_path / "steps"
    argv = ["--val", files["val"], "--weights", files["weights"], "--windows", "2", "--threads", "1", "--out", out]
    assert reverse_steps.main([str(a) for a in argv]) == 0
    run = json.loads(out.with_suffix(".json").read_text())["run"]
    assert run["git_commit"] == "0" * 40 and run["git_dirty"] is False
    assert status["value"] == " M README.md"  # the edit did happen during the run
    assert "(with uncommitted changes)" not in out.with_suffix(".md").read_text()


def test_guard_auroc_and_separation_by_hand():
    assert guard.auroc(np.array([1.0, 2.0, 3.0, 4.0]), np.array([False, False, True, True])) == 1.0
    assert guard.auroc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5
    assert guard.auroc(np.array([4.0, 3.0, 2.0]), np.array([True, False, False])) == 1.0
    assert guard.auroc(np.array([1.0, 2.0]), np.array([True, True])) is None
    rows = [{"frames": 10, "input_mm": 50.0, "refined_mm": r, "worse": r > 50.0, "score": s, "condition": 1.0, "correction": 1.0}
            for r, s in ((60.0, 2.0), (40.0, 2.0), (70.0, 0.0), (30.0, 0.0))]
    result = guard.separation(rows, threshold=1.0)
    assert (result["flagged_share"], result["worse_share"], result["precision"], result["recall"]) == (0.5, 0.5, 0.5, 0.5)
    assert result["refined_mpjpe_mm"] == 50.0 and result["refined_mpjpe_unflagged_mm"] == 50.0


def test_guard_benchmark_sets_a_threshold_no_validation_sequence_exceeds(files, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(files["weights"], weights)
    out = tmp_path / "guard"
    argv = ["--train", files["train"], "--val", files["val"], "--test", files["val"], "--perturb", "--sequences", "1",
            "--weights", weights, "--threads", "1", "--out", out, "--write-weights"]
    assert guard.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    threshold = document["threshold"]
    assert document["reference"]["sequences"] == 1 and document["threshold_sequences"] == 1
    assert round(threshold * 10) == pytest.approx(threshold * 10)
    sets = document["sets"]
    assert sets[f"{ESTIMATOR} ({files['val']})"]["sequences"] == 3
    assert {"validation, bodies", "validation, noisy-2d", "validation, scaled-3d"} <= set(sets)
    refiner = Refiner.from_pretrained(weights, device="cpu")
    assert refiner.guard.threshold == threshold
    assert f"threshold **{threshold:g}**" in out.with_suffix(".md").read_text()


def test_uncertainty_benchmark_fits_and_stores_a_conformal_scale(files, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(files["weights"], weights)
    out = tmp_path / "uncertainty"
    argv = ["--val", files["val"], "--test", files["val"], "--sequences", "1", "--steps", "2", "--samples", "3",
            "--weights", weights, "--threads", "1", "--out", out, "--write-weights"]
    # The default rule widens by the guard score: these weights hold no guard reference.
    assert uncertainty.main([str(a) for a in argv]) == 1
    assert Refiner.from_pretrained(weights, device="cpu").calibration is None
    assert uncertainty.main([str(a) for a in [*argv, "--widening", "none"]]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    scale = document["calibration"]["scale"]
    assert document["calibration"]["widening"] == "none" and document["scales"] == {"none": scale, "guard": scale}  # no guard: factor 1
    fitted = document["sets"]["validation, calibration half (fitted on)"]
    assert fitted["joint_frames"] == 40 * 16 and fitted["coverage_calibrated"] >= 0.9  # conformal: at least the level on its own data
    assert document["pooled_scale"] == scale and fitted["coverage_pooled_scale"] == fitted["coverage_calibrated"]  # pooled by default
    assert fitted["coverage_by_widening"] == {"none": fitted["coverage_calibrated"], "guard": fitted["coverage_calibrated"]}
    assert fitted["median_radius_mm"] == pytest.approx(scale * fitted["median_spread_mm"])
    assert set(fitted["coverage_per_sequence"].values()) == {fitted["coverage_calibrated"]}  # one sequence: its own coverage
    refiner = Refiner.from_pretrained(weights, device="cpu")
    assert refiner.calibration.scale == scale and (refiner.calibration.steps, refiner.calibration.samples) == (2, 3)
    assert refiner.calibration.widening is Widening.NONE
    assert f"Scale **{scale:.2f}**" in out.with_suffix(".md").read_text()
    assert document["correction_grid"] == {} and "Choosing the correction weight" not in out.with_suffix(".md").read_text()
    # one --val file: its own quantile is the pooled one
    assert uncertainty.main([str(a) for a in [*argv, "--widening", "none", "--pooling", "worst-file"]]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["settings"]["pooling"] == "worst-file" and document["calibration"]["scale"] == document["pooled_scale"] == scale
    assert f"coverage at the pooled scale {scale:.2f}" in out.with_suffix(".md").read_text()


def test_per_sequence_coverage_counts_each_sequence_on_its_own():
    error = np.array([1.0, 2.0, 3.0, 1.0, 5.0])
    radius = np.array([2.0, 2.0, 2.0, 0.5, 5.0])
    assert uncertainty.per_sequence_coverage(error, radius, np.array([0, 0, 0, 1, 1])).tolist() == pytest.approx([2 / 3, 1 / 2])


def test_worst_file_pooling_takes_the_largest_scale_of_the_files_on_their_own():
    """Two files of ratios error / spread: 1..10 and 11..20 (spread 1). The pooled 90 % quantile is the
    ceil(21 x 0.9) = 19th smallest of 20 ratios (19); each file's own is its 10th of 10 (10 and 20), the largest 20."""
    def parts(errors: np.ndarray, first: int) -> uncertainty.Parts:
        n = len(errors)
        return uncertainty.Parts(np.ones(n), np.zeros(n), np.zeros(n), np.full(n, first + 1.0), errors, np.arange(n) // 5 + first)
    files = [parts(np.arange(1.0, 11.0), 0), parts(np.arange(11.0, 21.0), 0)]
    rule = (Widening.NONE, 0.0)
    assert uncertainty.fit_scale(files, rule, 0.9, uncertainty.Pooling.POOLED) == 19.0
    assert uncertainty.fit_scale(files, rule, 0.9, uncertainty.Pooling.WORST_FILE) == 20.0
    assert uncertainty.concat_parts(files).sequence.tolist() == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    assert uncertainty.concat_parts([files[0], parts(np.ones(2), 3)]).condition.tolist() == [1.0] * 10 + [4.0] * 2
    with pytest.raises(ValueError):
        uncertainty.Pooling("mean")


def test_uncertainty_benchmark_chooses_the_correction_weight_on_select_files(files, tmp_path):
    weights = tmp_path / "weights"
    shutil.copytree(files["weights"], weights)
    out = tmp_path / "uncertainty"
    argv = ["--val", files["val"], "--sequences", "1", "--steps", "2", "--samples", "3", "--weights", weights, "--threads", "1",
            "--out", out, "--write-weights", "--widening", "correction"]
    assert uncertainty.main([str(a) for a in argv]) == 2  # the weight is chosen on --select files
    assert Refiner.from_pretrained(weights, device="cpu").calibration is None
    assert uncertainty.main([str(a) for a in [*argv, "--select", files["val"]]]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    grid, calibration = document["correction_grid"], document["calibration"]
    assert [float(w) for w in grid["weights"]] == list(CORRECTION_WEIGHTS) and grid["select"] == [f"{ESTIMATOR} ({files['val']}, selection)"]
    reaching = [float(w) for w, row in grid["weights"].items() if row["coverage"][0] >= 0.9]
    assert grid["chosen"] == (min(reaching) if reaching else max(CORRECTION_WEIGHTS)) == calibration["correction_weight"]
    assert calibration["scale"] == document["scales"]["correction"] == grid["weights"][str(grid["chosen"])]["scale"]
    selected = document["sets"][grid["select"][0]]
    assert selected["coverage_by_widening"]["correction"] == grid["weights"][str(grid["chosen"])]["coverage"][0]
    assert set(selected["coverage_by_widening"]) == {"none", "guard", "correction", "correction-guard", "correction-condition"}
    refiner = Refiner.from_pretrained(weights, device="cpu")
    assert refiner.calibration.widening is Widening.CORRECTION and refiner.calibration.correction_weight == grid["chosen"]
    assert f"**{grid['chosen']:g}**" in out.with_suffix(".md").read_text()
    # a set that trained on every estimator at hand takes the weight chosen for another set instead
    given = [*argv, "--correction-weight", "0.5"]
    assert uncertainty.main([str(a) for a in [*given, "--select", files["val"]]]) == 2  # one or the other
    assert uncertainty.main([str(a) for a in given]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["calibration"]["correction_weight"] == 0.5 and document["correction_grid"] == {}
    assert set(document["sets"]["validation, other half (held out)"]["coverage_by_widening"]) == {"none", "guard", "correction", "correction-guard", "correction-condition"}
    assert "The correction weight 0.5 was given" in out.with_suffix(".md").read_text()
    assert Refiner.from_pretrained(weights, device="cpu").calibration.correction_weight == 0.5


def test_scarce_data_probe_fine_tunes_from_init_weights(files, tmp_path, monkeypatch):
    monkeypatch.setitem(scarce_data.MODELS, "diffusion", {"warmup": 1, "ema_decay": 0.0})
    out = tmp_path / "scarce_init"
    argv = ["--train", files["train"], "--val", files["val"], "--sequences", "2", "--val-sequences", "2", "--steps", "2",
            "--eval-every", "2", "--threads", "1", "--models", "diffusion", "--init", files["weights"], "--select-every", "2", "--out", out]
    assert scarce_data.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    (scored,) = document["files"]
    rows = {r["method"]: r["metrics"]["mpjpe"] for r in scored["rows"]}
    assert list(rows) == ["base estimator", "diffusion K=1", "diffusion K=2", f"{scarce_data.SHIPPED} K=1", f"{scarce_data.TUNED} K=1",
                          f"{scarce_data.SELECTED} K=1"]
    val = accuracy.load_scored(files["val"], 2, 0)
    shipped = Refiner.from_pretrained(files["weights"], device="cpu").refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in val])
    assert rows[f"{scarce_data.SHIPPED} K=1"] == pytest.approx(pool_reports(
        [evaluate_poses(r.poses_3d, s.gt_3d, s.layout) for r, s in zip(shipped, val)]).summary["mpjpe"], rel=1e-6)
    assert rows[f"{scarce_data.TUNED} K=1"] != rows[f"{scarce_data.SHIPPED} K=1"]  # two steps at the full rate moved it
    curves = {name: [r["step"] for r in curve] for name, curve in document["curves"].items()}
    assert curves == {"diffusion": [2], scarce_data.TUNED: [0, 2], scarce_data.SELECTED: [0, 2]}  # fine-tuning validates its start
    assert "fine-tuned from it" in out.with_suffix(".md").read_text()
    assert "| diffusion | — | " in out.with_suffix(".md").read_text()  # no step 0 for a run from scratch
    # --init-lr sets the fine-tuning's learning rate: at 0 the fine-tuned weights are the init weights
    assert scarce_data.main([str(a) for a in [*argv[:-1], out.with_name("frozen"), "--init-lr", "0"]]) == 0
    frozen = json.loads(out.with_name("frozen.json").read_text())
    (scored,) = frozen["files"]
    rows = {r["method"]: r["metrics"]["mpjpe"] for r in scored["rows"]}
    assert rows[f"{scarce_data.TUNED} K=1"] == pytest.approx(rows[f"{scarce_data.SHIPPED} K=1"], rel=1e-6)
    # --init-anchor reaches the fine-tuning: at 1000 (x the learning rate 2e-3, capped at 1) every step is taken back
    # by default train --init's anchor for the sequences each run trains on (2 and, one held out, 1)
    assert document["settings"]["init_anchor"] is None
    assert document["anchors"] == {scarce_data.TUNED: FINE_TUNE_ANCHOR, scarce_data.SELECTED: FINE_TUNE_ANCHOR}
    assert f"`train --anchor 25` for '{scarce_data.SELECTED}'" in out.with_suffix(".md").read_text()
    assert scarce_data.main([str(a) for a in [*argv[:-1], out.with_name("anchored"), "--init-anchor", "1000"]]) == 0
    anchored = {r["method"]: r["metrics"]["mpjpe"] for r in json.loads(out.with_name("anchored.json").read_text())["files"][0]["rows"]}
    assert anchored[f"{scarce_data.TUNED} K=1"] == pytest.approx(anchored[f"{scarce_data.SHIPPED} K=1"], rel=1e-6)
    # no step beat step 0: the init weights, refined with the guard train fits on the pairs (reference on the kept, threshold on the held out)
    kept, held_out = scarce_data.held_out_split(accuracy.load_scored(files["train"], 2, 0), 2, None)
    guarded = Refiner.from_pretrained(files["weights"], device="cpu")
    fit_guard(guarded, kept, held_out, init=guarded.guard)
    refined = guarded.refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in val])
    assert rows[f"{scarce_data.SELECTED} K=1"] == pytest.approx(pool_reports(
        [evaluate_poses(r.poses_3d, s.gt_3d, s.layout) for r, s in zip(refined, val)]).summary["mpjpe"], rel=1e-6)
    assert abs(rows[f"{scarce_data.SELECTED} K=1"] - rows[f"{scarce_data.SHIPPED} K=1"]) > 1e-3  # the guard's fallback moved it
    one = [*argv[:argv.index("--sequences") + 1], "1", *argv[argv.index("--sequences") + 2:-1], out.with_name("one")]
    assert scarce_data.main([str(a) for a in one]) == 1  # one training pair: none left to hold out
    assert frozen["settings"]["init_lr"] == 0.0 and "peak learning rate of 0" in out.with_name("frozen.md").read_text()


def test_scarce_data_refines_each_model_at_the_rate_it_trained_on(files, tmp_path, monkeypatch):
    """50 fps pairs and 30 fps init weights: the weights as they are refine at 30 fps and back, as
    refine does; the models trained on the pairs at their own 50 fps, as train stores it."""
    monkeypatch.setitem(scarce_data.MODELS, "diffusion", {"warmup": 1, "ema_decay": 0.0})
    paths = {}
    for name in ("train", "val"):
        sequences = load_poses(files[name])
        for seq in sequences:
            seq.fps = 50.0
        paths[name] = tmp_path / f"{name}50.h5"
        save_poses(paths[name], sequences)
    weights = tmp_path / "weights30"
    weights.mkdir()
    shutil.copy(files["weights"] / "noise.safetensors", weights)
    _denoiser(weights / "denoiser.safetensors", trained=True, fps=30.0)
    out = tmp_path / "scarce50"
    argv = ["--train", paths["train"], "--val", paths["val"], "--sequences", "2", "--val-sequences", "2", "--steps", "2", "--eval-every", "2",
            "--threads", "1", "--models", "diffusion", "--init", weights, "--init-lr", "0", "--select-every", "2", "--out", out]
    assert scarce_data.main([str(a) for a in argv]) == 0
    rows = {r["method"]: r["metrics"]["mpjpe"] for r in json.loads(out.with_suffix(".json").read_text())["files"][0]["rows"]}
    val = accuracy.load_scored(paths["val"], 2, 0)
    shipped = Refiner.from_pretrained(weights, device="cpu")
    at_30 = accuracy.pooled_report([r.poses_3d for r in shipped.refine_sequences(val)], val).summary["mpjpe"]
    as_is = accuracy.pooled_report([r.poses_3d for r in shipped.refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in val])], val)
    assert rows[f"{scarce_data.SHIPPED} K=1"] == pytest.approx(at_30, rel=1e-6)
    assert rows[f"{scarce_data.SHIPPED} K=1"] != pytest.approx(as_is.summary["mpjpe"], rel=1e-6)
    # at learning rate 0 the fine-tuned model is the init weights, refined at the pairs' 50 fps
    assert rows[f"{scarce_data.TUNED} K=1"] == pytest.approx(as_is.summary["mpjpe"], rel=1e-6)


def test_scarce_data_scores_guarded_init_weights_with_and_without_their_fallback(files, tmp_path, monkeypatch):
    monkeypatch.setitem(scarce_data.MODELS, "diffusion", {"warmup": 1, "ema_decay": 0.0})
    guarded = tmp_path / "guarded"
    guarded.mkdir()
    shutil.copy(files["weights"] / "noise.safetensors", guarded / "noise.safetensors")
    cov = np.tile(np.eye(5), (17, 1, 1))
    cov[0] = 0.0
    reference = GuardReference(np.zeros((17, 5)), cov, 0.01, -5.0)  # a threshold every sequence exceeds: the fallback leans on the input
    set_denoiser_metadata(files["weights"] / "denoiser.safetensors", guarded / "denoiser.safetensors", {GUARD_METADATA_KEY: reference.to_json()})
    rows = {}
    for name, init in (("plain", files["weights"]), ("guarded", guarded)):
        argv = ["--train", files["train"], "--val", files["val"], "--sequences", "2", "--val-sequences", "2", "--steps", "1",
                "--eval-every", "1", "--threads", "1", "--models", "diffusion", "--init", init, "--select-every", "2", "--out", tmp_path / name]
        assert scarce_data.main([str(a) for a in argv]) == 0
        (scored,) = json.loads((tmp_path / name).with_suffix(".json").read_text())["files"]
        rows[name] = {r["method"]: r["metrics"]["mpjpe"] for r in scored["rows"]}
    assert f"{scarce_data.UNGUARDED} K=1" not in rows["plain"]  # weights without a guard have no fallback to turn off
    assert list(rows["guarded"]) == ["base estimator", "diffusion K=1", "diffusion K=2", f"{scarce_data.SHIPPED} K=1",
                                     f"{scarce_data.UNGUARDED} K=1", f"{scarce_data.TUNED} K=1", f"{scarce_data.SELECTED} K=1"]
    # without its fallback the guarded set refines as the same tensors without a guard do; with it, it leans on the input
    assert rows["guarded"][f"{scarce_data.UNGUARDED} K=1"] == pytest.approx(rows["plain"][f"{scarce_data.SHIPPED} K=1"], rel=1e-6)
    assert abs(rows["guarded"][f"{scarce_data.SHIPPED} K=1"] - rows["plain"][f"{scarce_data.SHIPPED} K=1"]) > 1e-3


def test_scarce_data_disjoint_by_draws_training_pairs_only_from_unscored_motions(files, tmp_path, monkeypatch):
    sequences = _sequences(6, 40, 30, "m")
    for seq, motion in zip(sequences, ("a", "a", "b", "c", "c", "d")):
        seq.provenance["source_file"] = motion
    save_poses(tmp_path / "one.h5", sequences)
    scored = accuracy.load_scored(tmp_path / "one.h5", 2, 0)
    keep = scarce_data.disjoint(scored, "source_file")
    shared = {seq.provenance["source_file"] for seq in scored}
    assert [keep(seq) for seq in sequences] == [seq.provenance["source_file"] not in shared for seq in sequences]
    assert scarce_data.disjoint(scored, None) is None
    with pytest.raises(InputError, match=f"--disjoint-by camera: sequence '{scored[0].name}' has no provenance key 'camera'"):
        scarce_data.disjoint(scored, "camera")
    kept, held_out = scarce_data.held_out_split(sequences, 2, "source_file")  # motions a, b, c, d: b and d held out
    assert [s.name for s in kept] == ["m0", "m1", "m3", "m4"] and [s.name for s in held_out] == ["m2", "m5"]
    assert scarce_data.held_out_split(sequences, 1, "source_file") == ([], sequences)  # every group held out: the probe refuses it
    kept, held_out = scarce_data.held_out_split(sequences, 2, None)  # without a key every sequence is its own group
    assert [s.name for s in kept] == ["m0", "m2", "m4"] and [s.name for s in held_out] == ["m1", "m3", "m5"]
    # the probe: the same file for training and scoring, the training pairs from the other motions only
    monkeypatch.setitem(scarce_data.MODELS, "diffusion", {"warmup": 1, "ema_decay": 0.0})
    out = tmp_path / "disjoint"
    argv = ["--train", tmp_path / "one.h5", "--val", tmp_path / "one.h5", "--sequences", "6", "--val-sequences", "2", "--steps", "2",
            "--eval-every", "2", "--threads", "1", "--models", "diffusion", "--disjoint-by", "source_file", "--out", out]
    assert scarce_data.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    unscored = [seq for seq in sequences if seq.provenance["source_file"] not in shared]
    assert 0 < len(unscored) < 6 and document["train_sequences"] == len(unscored)
    assert document["train_frames"] == 40 * len(unscored) and document["settings"]["disjoint_by"] == "source_file"
    assert "share no provenance `source_file` with a scored sequence" in out.with_suffix(".md").read_text()


def test_refine_sequences_refines_other_frame_rates_as_the_cli_does(files):
    refiner = Refiner.from_pretrained(files["weights"], device="cpu")
    refiner.fps = 30.0
    seq = accuracy.load_scored(files["val"], 1, 0)[0]
    (same,) = refiner.refine_sequences([seq])
    np.testing.assert_array_equal(same.poses_3d, refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size).poses_3d)
    seq.fps = 60.0
    (back,) = refiner.refine_sequences([seq], steps=2, samples=2)
    assert back.poses_3d.shape == seq.poses_3d.shape and back.uncertainty.shape == seq.poses_3d.shape[:2]
    assert (back.uncertainty >= 0).all() and not np.array_equal(back.poses_3d, same.poses_3d)
    (ignored,) = refiner.refine_sequences([seq], fps_policy="ignore")
    np.testing.assert_array_equal(ignored.poses_3d, same.poses_3d)
    with pytest.raises(InputError, match=f"sequence '{seq.name}' is 60 fps, the weights learned 30 fps"):
        refiner.refine_sequences([seq], fps_policy="refuse")


def test_h36m_rows_shipped_weights_and_per_action_and_subject_means(files, tmp_path):
    val = _sequences(3, 40, 20, "S8_")
    for seq, action, subject in zip(val, ("Walking", "Eating", "Walking"), ("S8", "S8", "S9")):
        seq.provenance["action_group"], seq.provenance["subject"] = action, subject
    save_poses(tmp_path / "val.h5", val)
    out = tmp_path / "h36m"
    argv = ["--val", tmp_path / "val.h5", "--train", files["train"], "--weights", files["weights"] / "denoiser.safetensors",
            "--noise", files["weights"] / "noise.safetensors", "--shipped", files["weights"], "--shipped", f"old={files['weights']}",
            "--variant", f"zero={files['zero']}", "--bone-lengths", "input",
            "--steps", "1", "--samples", "0", "--device", "cpu", "--threads", "1", "--out", out]
    assert h36m.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    assert document["benchmark"] == "h36m" and document["run"]["command"].startswith("python -m benchmarks.h36m --val ")
    (section,) = document["estimators"]
    kinds = [row["kind"] for row in section["rows"]]
    assert kinds == ["base", "smoother", "smoother", "bones", "gaussian_mean", *["shipped"] * 4, "variant", *["d3prefine"] * 3]
    labels = [row["label"] for row in section["rows"]]
    assert labels[5:9] == ["shipped weights as they are (K=1)", "shipped weights as they are (K=1, bone lengths input)",
                           "shipped weights old as they are (K=1)", "shipped weights old as they are (K=1, bone lengths input)"]
    assert section["rows"][5]["metrics"] == section["rows"][7]["metrics"]  # the same files under two names
    base = section["actions"]["base estimator"]
    walking = pool_reports([evaluate_poses(s.poses_3d, s.gt_3d) for s in (val[0], val[2])]).summary
    eating = evaluate_poses(val[1].poses_3d, val[1].gt_3d).summary
    assert base["per_action"]["Walking"]["mpjpe"] == pytest.approx(walking["mpjpe"])
    assert base["mean_over_actions"]["p_mpjpe"] == pytest.approx((walking["p_mpjpe"] + eating["p_mpjpe"]) / 2)
    assert base["mean_over_actions"]["mpjpe"] != pytest.approx(section["rows"][0]["metrics"]["mpjpe"])  # not frame-pooled
    s8 = pool_reports([evaluate_poses(s.poses_3d, s.gt_3d) for s in val[:2]]).summary
    subjects = section["subjects"]["base estimator"]
    assert subjects["S8"]["mpjpe"] == pytest.approx(s8["mpjpe"]) and subjects["S9"]["mpjpe"] == pytest.approx(evaluate_poses(val[2].poses_3d, val[2].gt_3d).summary["mpjpe"])
    assert section["subject_sequences"] == {"S8": 2, "S9": 1} and set(subjects["S8"]) == set(h36m.ACTION_METRICS)
    text = out.with_suffix(".md").read_text()
    assert text.startswith("# d3prefine Human3.6M benchmark") and "mean over actions (Human3.6M convention)" in text
    assert "| method | Eating | Walking |" in text
    assert "MPJPE (mm) per subject" in text and "(S8 2, S9 1)" in text and f"| base estimator | {s8['mpjpe']:.1f} (+0.0%) |" in text
    every = np.concatenate([np.linalg.norm((s.poses_3d - s.poses_3d[:, :1]) - (s.gt_3d - s.gt_3d[:, :1]), axis=-1) for s in val])
    assert section["joints"]["base estimator"] == pytest.approx((1000 * every.mean(0)).tolist())  # pooled over every frame
    assert section["joint_names"][:2] == ["pelvis", "r_hip"] and section["root_joint"] == 0
    assert "| method | r_hip | r_knee |" in text  # the root left out
    assert f"| base estimator | {1000 * every[:, 1].mean():.1f} | " in text


def test_h36m_needs_action_groups_and_subjects(files, tmp_path, capsys):
    save_poses(tmp_path / "val.h5", _sequences(2, 30, 30, "v"))
    argv = ["--val", tmp_path / "val.h5", "--train", files["train"], "--weights", files["weights"], "--steps", "1", "--samples", "0",
            "--device", "cpu", "--threads", "1", "--out", tmp_path / "h"]
    assert h36m.main([str(a) for a in argv]) == 1
    assert "provenance has no 'action_group'" in capsys.readouterr().err
    grouped = _sequences(2, 30, 30, "v")
    for seq in grouped:
        seq.provenance["action_group"] = "Walking"
    save_poses(tmp_path / "val.h5", grouped, overwrite=True)
    assert h36m.main([str(a) for a in argv]) == 1
    assert "provenance has no 'subject'" in capsys.readouterr().err


def test_h36m_probe_changes_one_cause_at_a_time(files, tmp_path):
    from tests.conftest import CENTRE_PX, FOCAL_PX  # a camera that projects exactly like the test sequences' 2D

    val = _sequences(2, 40, 40, "S8_")
    for seq in val:
        seq.fps = 50.0
        seq.provenance.update(subject="S8", camera="cam_a")
    save_poses(tmp_path / "val.h5", val)
    camera = {"R": np.eye(3).tolist(), "T": [0.0, 0.0, 0.0], "f": [FOCAL_PX, FOCAL_PX], "c": list(CENTRE_PX), "k": [0.0, 0.0, 0.0],
              "p": [0.0, 0.0], "width": 1000, "height": 1000}
    (tmp_path / "cameras.json").write_text(json.dumps({"S8": {"cam_a": camera}}))
    _denoiser(tmp_path / "denoiser.safetensors", trained=True, fps=30.0)  # trained at 30 fps: a resampled row too
    out = tmp_path / "probe"
    argv = ["--val", tmp_path / "val.h5", "--estimator", files["estimators"] / "temporal.safetensors", "--cameras",
            tmp_path / "cameras.json", "--reference", tmp_path / "val.h5", "--weights", tmp_path / "denoiser.safetensors",
            "--noise", files["weights"] / "noise.safetensors", "--threads", "1", "--out", out]
    assert h36m_probe.main([str(a) for a in argv]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    rows = {(r["condition"], r["refined"]): r for r in document["rows"]}
    detections = rows[("detections (as is)", "50 fps as is")]
    assert ("detections (as is)", "at the weights' 30 fps") in rows and len(rows) == 6
    assert rows[("detections, lifter error halved", "50 fps as is")]["input_mpjpe"] == pytest.approx(detections["input_mpjpe"] / 2)
    assert rows[("perfect 2D, ground truth as 3D input", "50 fps as is")]["input_mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert document["reference"]["bones_gt_mm"] == pytest.approx(document["bones_gt_mm"])
    assert document["bones_gt_mm"]["thigh"] > 100
    assert "## Median bone lengths (mm)" in out.with_suffix(".md").read_text()


def test_accuracy_setting_rows_may_use_shipped_sets_and_their_blend(files, tmp_path):
    out = tmp_path / "blend"
    argv = ["--val", files["val"], "--train", files["train"], "--weights", files["weights"], "--steps", "1", "--samples", "0",
            "--setting", "weights=blend", "--setting", "weights=varied,flip", "--setting", "weights=blend,no_fallback", "--max-sequences", "2", "--device", "cpu", "--threads", "1", "--out", out]
    assert accuracy.main([str(a) for a in argv]) == 0
    (section,) = json.loads(out.with_suffix(".json").read_text())["estimators"]
    rows = {row["label"]: row for row in section["rows"]}
    assert rows["d3prefine K=1, --weights blend"]["params"] == {"samples": 1, "steps": 1, "weights": "blend"}
    val = [s for s in load_poses(files["val"]) if s.name in section["sequence_names"]]
    blended = BlendedRefiner.shipped("cpu")
    for label, refiner, options in (("d3prefine K=1, --weights blend", blended, {}),
                                    ("d3prefine K=1, --weights blend --no-fallback", blended, {"fallback": False}),
                                    ("d3prefine K=1, --weights varied --flip", Refiner.from_pretrained("varied", device="cpu"), {"flip": True})):
        expected = pool_reports([evaluate_poses(r.poses_3d, s.gt_3d) for r, s in zip(refiner.refine_sequences(val, **options), val)]).summary
        assert rows[label]["metrics"] == pytest.approx(expected, rel=1e-4)
    assert rows["d3prefine K=1, --weights blend"]["metrics"]["mpjpe"] != pytest.approx(rows["d3prefine K=1"]["metrics"]["mpjpe"], abs=1e-2)


def test_setting_rows_parse_refine_options_and_refuse_unknown_ones():
    assert accuracy.parse_setting("overlap=18, flip,bone_lengths=constant") == {"overlap": 18, "flip": True, "bone_lengths": "constant"}
    assert accuracy.parse_setting("weights=blend,flip") == {"weights": "blend", "flip": True}
    assert accuracy.parse_setting("no_fallback") == {"no_fallback": True}
    assert accuracy.setting_flags({"steps": 1, "weights": "blend", "no_fallback": True}) == "--weights blend --no-fallback"
    assert accuracy.refine_options({"steps": 1, "weights": "blend", "no_fallback": True}) == {"steps": 1, "fallback": False}
    assert accuracy.refine_options({"steps": 1, "flip": True}) == {"steps": 1, "flip": True}
    assert accuracy.setting_flags({"steps": 1, "weights": "pool", "flip": True}) == "--weights pool --flip"
    assert accuracy.setting_flags({"steps": 1, "overlap": 18, "flip": True, "bone_lengths": "constant"}) == \
        "--overlap 18 --flip --bone-lengths constant"
    for bad in ("flip=1", "overlap", "overlap=x", "bone_lengths=rigid", "sample=2", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            accuracy.parse_setting(bad)


def test_skeleton_rows_are_the_subjects_bones_before_and_after_refinement(files, tmp_path):
    """An estimate that is the truth scaled by 1.5 about the root has the truth's bone directions:
    on the subject's skeleton it is the truth (0 mm); the last row is the default refinement
    re-chained to the truth's median lengths, as refine --skeleton writes it: 50 fps sequences
    refined at the weights' 30 fps and back, as refine does."""
    scaled = []
    for seq in load_poses(files["val"]):
        root = seq.gt_3d[:, :1]
        seq.poses_3d = (root + 1.5 * (seq.gt_3d - root)).astype(np.float32)
        seq.fps = 50.0
        scaled.append(seq)
    val = tmp_path / "scaled.h5"
    save_poses(val, scaled)
    weights = tmp_path / "weights30"
    weights.mkdir()
    shutil.copy(files["weights"] / "noise.safetensors", weights)
    _denoiser(weights / "denoiser.safetensors", trained=True, fps=30.0)
    out = tmp_path / "skeleton"
    with pytest.raises(SystemExit) as usage:  # a usage error, before the weights load or anything is written
        skeleton.main([str(a) for a in ["--val", val, "--weights", tmp_path / "missing", "--max-sequences", "0", "--out", out]])
    assert usage.value.code == 2 and not out.with_suffix(".json").exists()
    assert skeleton.main([str(a) for a in ["--val", val, "--weights", weights, "--max-sequences", "2", "--threads", "1", "--out", out]]) == 0
    (scored,) = json.loads(out.with_suffix(".json").read_text())["files"]
    rows = {r["method"]: r for r in scored["rows"]}
    assert list(rows) == [skeleton.BASE, skeleton.BASE_SKELETON, skeleton.REFINED, skeleton.REFINED_SKELETON] and scored["sequences"] == 2
    assert rows[skeleton.BASE_SKELETON]["metrics"]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert rows[skeleton.BASE_SKELETON]["worse_share"] == 0.0 and rows[skeleton.BASE]["worse_share"] is None
    chosen = accuracy.load_scored(val, 2, 0)
    refiner = Refiner.from_pretrained(weights, device="cpu")
    refined = refiner.refine_sequences(chosen)
    as_is = accuracy.pooled_report([r.poses_3d for r in refiner.refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in chosen])], chosen)
    assert rows[skeleton.REFINED]["metrics"]["mpjpe"] != pytest.approx(as_is.summary["mpjpe"], rel=1e-6)  # not refined at 50 fps
    for method, poses in ((skeleton.REFINED, [r.poses_3d for r in refined]),
                          (skeleton.REFINED_SKELETON, [rechain(r.poses_3d, median_bone_lengths(s.gt_3d, s.layout), s.layout) for r, s in zip(refined, chosen)])):
        assert rows[method]["metrics"]["mpjpe"] == pytest.approx(accuracy.pooled_report(poses, chosen).summary["mpjpe"], rel=1e-6)
    assert rows[skeleton.REFINED_SKELETON]["metrics"]["mpjpe"] != rows[skeleton.REFINED]["metrics"]["mpjpe"]
    assert "| base estimator on the subject's skeleton | 0.00 (-100.0%) |" in out.with_suffix(".md").read_text()


def test_headroom_mixes_input_and_refinement_by_share():
    """Two frames, two joints (the root at the origin): the input's joint 1 is 0.3 m off, the
    refinement's 0.1 m: a = 0, 1 and 1.5 leave 0.15, 0.05 and 0 m per frame (summed over 2 frames)."""
    x = np.zeros((2, 2, 3))
    y, z = x.copy(), x.copy()
    y[:, 1, 0], z[:, 1, 0] = 0.3, 0.1
    errors = headroom.share_errors(y, z, x)
    assert len(errors) == 31 and headroom.SHARES[20] == 1.0
    assert errors[0] == pytest.approx(0.3) and errors[20] == pytest.approx(0.1) and errors[30] == pytest.approx(0.0, abs=1e-12)
    assert int(errors.argmin()) == 30
    y[1, 1, 0] = 0.1  # offsets 0.3 and 0.1: their mean 0.2 removed leaves 0.1 m on joint 1 in each frame
    assert headroom.offset_removed_error(y, x) == pytest.approx(0.1) and headroom.offset_removed_error(z, x) == pytest.approx(0.0)
    np.testing.assert_allclose(headroom.constant_offset(y, x), [[0, 0, 0], [0.2, 0, 0]], atol=1e-12)


def test_headroom_splits_the_correction_into_constant_and_varying_image_plane_and_depth():
    """Two frames, two joints (the root at the origin): joint 1 is corrected by (0.1, 0, 0.2) m
    then (0.3, 0, 0): constant (0.2, 0, 0) + (0, 0, 0.1), varying (-0.1, 0, 0) + (0, 0, 0.1) and
    (0.1, 0, 0) + (0, 0, -0.1). With a correction of (0.2, 0, +-0.1) m whose truth is the input
    moved by the constant image-plane part alone: that part's best share is 1, the varying depth part's 0."""
    y = np.zeros((2, 2, 3))
    z = y.copy()
    z[0, 1], z[1, 1] = [0.1, 0.0, 0.2], [0.3, 0.0, 0.0]
    parts = headroom.correction_parts(y, z)
    assert list(parts) == list(headroom.PARTS)
    np.testing.assert_allclose(sum(parts.values()), z - y, atol=1e-12)
    np.testing.assert_allclose(parts["constant, image plane"][:, 1], [[0.2, 0, 0]] * 2, atol=1e-12)
    np.testing.assert_allclose(parts["constant, depth"][:, 1], [[0, 0, 0.1]] * 2, atol=1e-12)
    np.testing.assert_allclose(parts["varying, image plane"][:, 1], [[-0.1, 0, 0], [0.1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(parts["varying, depth"][:, 1], [[0, 0, 0.1], [0, 0, -0.1]], atol=1e-12)
    z[0, 1], z[1, 1] = [0.2, 0.0, 0.1], [0.2, 0.0, -0.1]  # a constant image-plane and a varying depth part only
    x = y.copy()
    x[:, 1, 0] = 0.2  # the truth: the input moved by the constant part
    best = {name: headroom.best_share(e, 2) for name, e in headroom.part_share_errors(y, headroom.correction_parts(y, z), x).items()}
    assert best["constant, image plane"]["share"] == 1.0 and best["varying, depth"]["share"] == 0.0
    assert best["varying, depth"]["mpjpe_mm"] == pytest.approx(0.0, abs=1e-9)
    assert best["constant, image plane"]["whole_mm"] == pytest.approx(50.0)  # 0.1 m on one of two joints
    assert best["constant, image plane"]["none_mm"] == pytest.approx(1000 * np.sqrt(0.05) / 2)


def test_image_misfit_is_zero_for_a_scaled_projection_and_grows_off_it():
    """Keypoints that are the poses' camera x, y doubled and shifted fit exactly; moving one joint
    0.1 m sideways in 3D leaves a residual (three joints, so the frame's mean moves too)."""
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(4, 3, 3))
    keypoints = 2.0 * poses[..., :2] + [5.0, -3.0]
    assert headroom.image_misfit(poses, keypoints) == pytest.approx(0.0, abs=1e-12)
    moved = poses.copy()
    moved[:, 1, 0] += 0.1
    assert headroom.image_misfit(moved, keypoints) > 0.01
    moved = poses.copy()
    moved[..., 2] += 1.0  # depth alone does not change the weak-perspective fit
    assert headroom.image_misfit(moved, keypoints) == pytest.approx(0.0, abs=1e-12)


def test_headroom_probe_bounds_the_fallback(files, tmp_path):
    out = tmp_path / "headroom"
    assert headroom.main([str(a) for a in ["--val", files["val"], "--weights", files["weights"], "--threads", "1", "--out", out]]) == 0
    (scored,) = json.loads(out.with_suffix(".json").read_text())["files"]
    rows = {r["method"]: r["mpjpe_mm"] for r in scored["rows"]}
    chosen = accuracy.load_scored(files["val"], None, 0)
    refiner = Refiner.from_pretrained(files["weights"], device="cpu")
    pooled = lambda results: accuracy.pooled_report([r.poses_3d for r in results], chosen).summary["mpjpe"]  # mm
    assert rows[headroom.BASE] == pytest.approx(accuracy.pooled_report([s.poses_3d for s in chosen], chosen).summary["mpjpe"], rel=1e-6)
    assert rows[headroom.NETWORK] == pytest.approx(pooled(refiner.refine_sequences(chosen, fallback=False)), rel=1e-6)
    assert rows[headroom.DEFAULT] == pytest.approx(pooled(refiner.refine_sequences(chosen)), rel=1e-6)
    assert rows[headroom.PER_SEQUENCE] <= rows[headroom.GLOBAL] <= min(rows[headroom.BASE], rows[headroom.NETWORK])
    assert rows[headroom.BASE_OFFSET] < rows[headroom.BASE] and scored["best_share"] in headroom.SHARES
    offsets = scored["offset_per_joint_mm"]
    assert len(offsets[headroom.BASE]) == 17 == len(scored["joints"]) and offsets[headroom.BASE][0] == 0.0  # the root
    weighted = sum(s.num_frames * np.linalg.norm(headroom.constant_offset(s.poses_3d, s.gt_3d), axis=-1) for s in chosen)
    np.testing.assert_allclose(offsets[headroom.BASE], 1000 * weighted / sum(s.num_frames for s in chosen), rtol=1e-9)
    assert f"| {headroom.PER_SEQUENCE} |" in out.with_suffix(".md").read_text()
    assert list(scored["parts"]) == list(headroom.PARTS) and 0.0 <= scored["constant_image_plane_closer_to_2d_pct"] <= 100.0
    assert headroom.SHARES[headroom.WHOLE] == 1.0 and headroom.WHOLE == 20
    for best in scored["parts"].values():  # every part whole is the refinement without the fallback
        assert best["whole_mm"] == pytest.approx(rows[headroom.NETWORK], rel=1e-6) and best["mpjpe_mm"] <= best["whole_mm"]
        assert best["share"] in headroom.SHARES


def test_head_geometry_measures_a_hand_built_pose():
    """Facing -y (left +x, up +z): the thorax-to-head-top line (0.2 m) leans 30 degrees forward, the nose
    halfway up it and 60 mm in front, the spine 20 mm behind the pelvis-thorax line 0.2 m up (atan 0.1)."""
    pose = np.zeros((2, 17, 3))
    pose[:, 7] = [0.0, 0.02, 0.2]
    pose[:, 8] = [0.0, 0.0, 0.4]
    pose[:, 10] = [0.0, -0.1, 0.4 + 0.2 * np.cos(np.pi / 6)]
    pose[:, 9] = [0.0, -0.05 - 0.06 * np.cos(np.pi / 6), 0.4 + 0.1 * np.cos(np.pi / 6) - 0.03]
    pose[:, 11], pose[:, 14] = [0.15, 0.0, 0.4], [-0.15, 0.0, 0.4]
    measured = joint_geometry.head_geometry(pose)
    assert measured == pytest.approx({"nose_fraction": 0.5, "nose_forward_mm": 60.0, "head_tilt_deg": 30.0,
                                      "spine_back_deg": np.degrees(np.arctan(0.1))})


def test_joint_geometry_probe_reports_each_source(files, tmp_path):
    out = tmp_path / "geometry"
    assert joint_geometry.main([str(a) for a in ["--val", files["val"], "--weights", files["weights"], "--threads", "1", "--out", out]]) == 0
    document = json.loads(out.with_suffix(".json").read_text())
    (entry,) = document["files"]
    assert entry["sequences"] == 3 and list(entry["rows"]) == list(joint_geometry.SOURCES)
    truth = [joint_geometry.head_geometry(s.gt_3d) for s in load_poses(files["val"])]
    assert entry["rows"]["ground truth"]["nose_fraction"] == pytest.approx(np.percentile([g["nose_fraction"] for g in truth], [5, 50, 95]))
    assert "## " + entry["estimator"] in out.with_suffix(".md").read_text()
