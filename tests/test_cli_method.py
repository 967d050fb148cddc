"""``fit-noise``, ``train`` and ``refine`` through the command line, on small generated data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.checkpoint import CHECKPOINT_FORMAT, NOISE_DIGEST_KEY, denoiser_metadata, set_denoiser_metadata
from d3prefine.cli import app
from d3prefine.config import FEW_SEQUENCES, FINE_TUNE_ANCHOR
from d3prefine.guard import GUARD_METADATA_KEY
from d3prefine.guard_fit import GUARD_QUANTILE, MIN_THRESHOLD, guard_scores, reference_of, threshold_of
from d3prefine.io import load_poses, save_poses
from d3prefine.noise import NoiseModel
from d3prefine.refine import Refiner
from d3prefine.tensorfile import read_tensors, write_tensors
from tests.conftest import build_sequence

runner = CliRunner()
TINY = ["--window", "9", "--dim", "16", "--depth", "1", "--heads", "2"]


def invoke(*args: str, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Training and validation files, fitted noise statistics and a tiny trained denoiser."""
    folder = tmp_path_factory.mktemp("method")
    paths = {"train": folder / "train.h5", "val": folder / "val.npz"}
    save_poses(paths["train"], [build_sequence(60, seed=s, name=f"t{s}") for s in range(3)])
    save_poses(paths["val"], [build_sequence(40, seed=9, name="v")])
    paths["noise"] = folder / "noise.safetensors"
    invoke("fit-noise", paths["train"], "-o", paths["noise"], "--estimator", "unit-test", "--force")  # 180 frames < 290
    paths["model"] = folder / "model.safetensors"
    invoke("train", "--data", paths["train"], "--val", paths["val"], "--noise", paths["noise"], "-o", paths["model"],
           "--steps", "6", "--batch-size", "4", "--eval-every", "3", "--device", "cpu", *TINY)
    return paths


def test_fit_noise_json_summary(trained, tmp_path):
    result = invoke("fit-noise", trained["train"], "-o", tmp_path / "n.safetensors", "--mode", "full_body", "--json", "--force")
    document = json.loads(result.stdout)
    assert document["mode"] == "full_body" and document["info"]["frames"] == 180
    assert len(document["info"]["error_rms_per_joint_mm"]) == 17 and document["info"]["error_rms_per_joint_mm"][0] == 0
    assert 0.0 <= document["info"]["explained_variance"] <= 1.0


def test_fit_noise_needs_ground_truth_and_refuses_to_overwrite(trained, tmp_path):
    seq = build_sequence(20)
    seq.gt_3d = None
    save_poses(tmp_path / "no_gt.npz", [seq])
    result = invoke("fit-noise", tmp_path / "no_gt.npz", "-o", tmp_path / "n.safetensors", code=1)
    assert "missing key 'gt_3d'" in result.stderr and not (tmp_path / "n.safetensors").exists()
    result = invoke("fit-noise", trained["train"], "-o", trained["noise"], code=1)
    assert "exists" in result.stderr


def test_fit_noise_never_writes_over_its_inputs_and_names_its_output(trained, tmp_path):
    gt = tmp_path / "gt.npz"
    save_poses(gt, [build_sequence(20, name="t0")])
    before = gt.read_bytes()
    (tmp_path / "gt.safetensors").symlink_to(gt)  # another name of the ground-truth file
    result = invoke("fit-noise", trained["train"], "--gt", gt, "-o", tmp_path / "gt.safetensors", "--overwrite", code=1)
    assert "refusing to write over input file" in result.stderr and gt.read_bytes() == before
    result = invoke("fit-noise", trained["train"], "--gt", gt, "-o", gt, "--overwrite", code=2)
    assert result.stderr.startswith("error: ") and "expected a .safetensors file name" in result.stderr
    assert gt.read_bytes() == before
    save_poses(tmp_path / "one.npz", [build_sequence(1, name="single")])
    result = invoke("fit-noise", tmp_path / "one.npz", "-o", tmp_path / "n.safetensors", "--force", code=1)
    assert result.stderr.endswith(f"error: {tmp_path / 'one.npz'}: fitting a noise model needs at least 2 frames\n")


def test_paths_with_markup_characters_are_printed_as_they_are(trained, tmp_path):
    out = tmp_path / "x[b]y[red].safetensors"
    result = invoke("fit-noise", trained["train"], "-o", out, "--estimator", "[/bold]lifter", "--force")
    assert out.is_file() and f"wrote {out}:" in result.stderr and "([/bold]lifter)" in result.stdout


def test_fit_noise_isotropic_needs_errors(tmp_path):
    seq = build_sequence(20)
    seq.poses_3d = seq.gt_3d.copy()
    save_poses(tmp_path / "perfect.npz", [seq])
    result = invoke("fit-noise", tmp_path / "perfect.npz", "-o", tmp_path / "n.safetensors", "--mode", "isotropic", code=1)
    assert "needs errors, but every prediction equals its ground truth" in result.stderr
    assert not (tmp_path / "n.safetensors").exists()


def test_empty_and_missing_arguments_are_one_line_usage_errors(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(trained["val"].parent)  # a folder of pose files that '' must not stand for
    result = invoke("refine", "", "--out-dir", tmp_path, code=2)
    assert result.stderr.startswith("error: Invalid value: an input is the empty string") and list(tmp_path.iterdir()) == []
    result = invoke("train", "--data", "", "--val", trained["val"], "--noise", trained["noise"], "-o", tmp_path / "m.safetensors", code=2)
    assert "an input is the empty string" in result.stderr
    result = invoke("refine", trained["val"], "-o", code=2)
    assert result.stderr == "error: Option '-o' requires an argument. (see 'd3prefine --help')\n"


def test_an_existing_output_is_refused_before_refining(trained, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(Refiner, "refine_many", lambda *args, **kwargs: calls.append(args))
    out = tmp_path / "out.npz"
    out.write_bytes(b"keep")
    for target in (out, tmp_path / "out.csv", tmp_path / "missing" / "out.npz"):
        result = invoke("refine", trained["val"], "-o", target, "--weights", trained["model"], "--noise", trained["noise"], code=1)
        assert result.stderr.startswith(f"error: {target}: ")
    assert calls == [] and out.read_bytes() == b"keep"


def test_train_never_writes_over_its_inputs(trained, tmp_path):
    base = ["train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"], "--steps", "1", *TINY]
    before = {key: trained[key].read_bytes() for key in ("train", "noise")}
    result = invoke(*base, "-o", tmp_path / "m.safetensors", "--checkpoint", trained["train"], code=2)
    assert "--checkpoint" in result.stderr and ".safetensors" in result.stderr
    result = invoke(*base, "-o", tmp_path / "m.safetensors", "--checkpoint", trained["noise"], "--overwrite", code=1)
    assert "refusing to write over input file" in result.stderr
    result = invoke(*base, "-o", trained["noise"], "--overwrite", code=1)
    assert "refusing to write over input file" in result.stderr
    assert {key: trained[key].read_bytes() for key in ("train", "noise")} == before
    assert not (tmp_path / "m.safetensors").exists()


def test_resuming_a_damaged_checkpoint_is_a_one_line_error(trained, tmp_path):
    checkpoint = tmp_path / "model.ckpt.safetensors"
    tensors, metadata = read_tensors(trained["model"].with_name(checkpoint.name), CHECKPOINT_FORMAT)
    write_tensors(checkpoint, {k: v for k, v in tensors.items() if k != "generator.0"}, metadata)
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                    "-o", tmp_path / "model.safetensors", "--steps", "9", "--resume", *TINY, code=1)
    assert result.stderr.strip().splitlines()[-1] == f"error: {checkpoint}: not a complete checkpoint (KeyError: 'generator.0')"


def test_resuming_another_architecture_is_a_one_line_error(trained, tmp_path):
    shutil.copy(trained["model"].with_name("model.ckpt.safetensors"), tmp_path / "model.ckpt.safetensors")
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                    "-o", tmp_path / "model.safetensors", "--steps", "9", "--resume", *TINY[:-2], "--heads", "4", code=1)
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: ") and "checkpoint architecture differs from the requested one" in line


def test_train_writes_weights_checkpoint_and_resumes(trained, tmp_path):
    checkpoint = trained["model"].with_name("model.ckpt.safetensors")
    assert checkpoint.is_file()
    info = json.loads(invoke("info", "--json", trained["model"]).stdout)
    assert "d3prefine-denoiser" in json.dumps(info)
    shutil.copy(checkpoint, tmp_path / checkpoint.name)  # resume a copy: the other tests use the 6-step model
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                    "-o", tmp_path / "model.safetensors", "--steps", "9", "--batch-size", "4", "--eval-every", "3",
                    "--device", "cpu", "--resume", "--json", "--no-guard", *TINY)
    document = json.loads(result.stdout)
    assert document["steps"] == 9 and [h["step"] for h in document["history"]] == [3, 6, 9]
    assert document["guard"] is None and Refiner.from_pretrained(tmp_path / "model.safetensors", trained["noise"], device="cpu").guard is None
    strict = invoke("refine", trained["val"], "--weights", tmp_path / "model.safetensors", "--noise", trained["noise"],
                    "-o", tmp_path / "out.npz", "--strict", "--device", "cpu", code=2)
    assert "hold no guard reference (weights written by 'd3prefine train' hold one unless --no-guard" in strict.stderr
    assert "resumed from" in result.stderr and (tmp_path / "model.safetensors").is_file()
    other = tmp_path / "other_noise.safetensors"
    invoke("fit-noise", trained["train"], "-o", other, "--mode", "isotropic")
    shutil.copy(checkpoint, tmp_path / checkpoint.name)
    refused = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", other,
                     "-o", tmp_path / "model.safetensors", "--steps", "9", "--device", "cpu", "--resume", *TINY, code=2)
    assert refused.stderr.endswith("was trained with other noise statistics than --noise; resume with the same --noise\n")


def test_train_stores_a_refine_guard_fitted_on_its_data(trained, tmp_path):
    """The reference from the --data sequences refined, the threshold the 0.99 quantile of the
    --val scores rounded up to 0.1 and at least 1: ``refine --strict`` takes the validation file."""
    stored = Refiner.from_pretrained(trained["model"], trained["noise"], device="cpu")
    assert stored.guard is not None
    train, val = load_poses(trained["train"]), load_poses(trained["val"])
    again = reference_of(stored, train)  # refined with no fallback: the stored guard plays no part
    np.testing.assert_allclose(again.mean, stored.guard.mean, rtol=1e-6)
    np.testing.assert_allclose(again.cov, stored.guard.cov, rtol=1e-6, atol=1e-12)
    assert again.correction_m == pytest.approx(stored.guard.correction_m, rel=1e-6)
    (score,) = guard_scores(stored, val)
    assert stored.guard.threshold == max(MIN_THRESHOLD, threshold_of(np.array([score]), GUARD_QUANTILE)) == 1.0  # one score, 0.02: the floor
    invoke("refine", trained["val"], "--weights", trained["model"], "--noise", trained["noise"], "-o", tmp_path / "out.npz", "--strict",
           "--device", "cpu")
    (refined,) = load_poses(tmp_path / "out.npz")
    assert refined.provenance["refine"]["guard"]["flagged"] is False


def test_fine_tuning_pools_its_guard_with_the_init_weights_guard(trained, tmp_path):
    tuned = tmp_path / "tuned.safetensors"
    document = json.loads(invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                                 "--init", trained["model"], "-o", tuned, "--steps", "2", "--batch-size", "4", "--eval-every", "1",
                                 "--device", "cpu", "--json").stdout)
    assert document["guard"]["pooled_with_init"] is True
    init = Refiner.from_pretrained(trained["model"], trained["noise"], device="cpu").guard
    refiner = Refiner.from_pretrained(tuned, trained["noise"], device="cpu")
    own = reference_of(refiner, load_poses(trained["train"]))
    np.testing.assert_allclose(refiner.guard.mean, 0.5 * (init.mean + own.mean), rtol=1e-6, atol=1e-12)
    assert refiner.guard.correction_m == pytest.approx(own.correction_m, rel=1e-6) and refiner.guard.threshold == document["guard"]["threshold"]


def test_fine_tuning_from_weights_with_a_damaged_guard_is_a_one_line_error(trained, tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    set_denoiser_metadata(trained["model"], damaged, {GUARD_METADATA_KEY: '{"mean": [1]}'})
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"], "--init", damaged,
                    "-o", tmp_path / "tuned.safetensors", "--steps", "1", "--device", "cpu", code=1)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "invalid guard reference" in result.stderr
    assert str(damaged) in result.stderr and not (tmp_path / "tuned.safetensors").exists()


def test_train_rejects_unknown_objective(trained, tmp_path):
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                    "-o", tmp_path / "m.safetensors", "--objective", "gan", code=2)
    assert "gan" in result.output


def test_refine_writes_refined_poses_and_keeps_the_input(trained, tmp_path):
    source = trained["val"]
    before = source.read_bytes()
    out = tmp_path / "out.npz"
    result = invoke("refine", source, "-o", out, "--weights", trained["model"], "--noise", trained["noise"],
                    "--device", "cpu", "--steps", "2", "--json")
    assert source.read_bytes() == before
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["frames"] == 40 and entry["output"] == str(out) and entry["file"] == str(source)
    (original,), (refined,) = load_poses(source), load_poses(out)
    np.testing.assert_array_equal(refined.poses_3d, original.poses_3d)
    np.testing.assert_array_equal(refined.gt_3d, original.gt_3d)
    assert refined.poses_3d_refined.shape == (40, 17, 3) and refined.uncertainty is None
    assert refined.provenance["refine"]["steps"] == 2 and refined.provenance["source"] == "tests/conftest.py"
    assert refined.provenance["refine"]["smooth"] == 9
    invoke("refine", source, "-o", out, "--weights", trained["model"], "--noise", trained["noise"], code=1)
    again = invoke("refine", source, "-o", out, "--weights", trained["model"], "--noise", trained["noise"], "--overwrite")
    assert "refined 1 file(s)" in again.stderr
    evaluation = json.loads(invoke("evaluate", out, "--json").stdout)
    assert evaluation["sequences"][0]["baseline_source"] == "poses_3d"


def test_refine_flip_option_matches_the_library_and_is_recorded(trained, tmp_path):
    args = ("--weights", trained["model"], "--noise", trained["noise"], "--device", "cpu")
    plain, flipped = tmp_path / "plain.npz", tmp_path / "flipped.npz"
    invoke("refine", trained["val"], "-o", plain, *args)
    invoke("refine", trained["val"], "-o", flipped, "--flip", *args)
    (a,), (b,) = load_poses(plain), load_poses(flipped)
    assert a.provenance["refine"]["flip"] is False and b.provenance["refine"]["flip"] is True
    refiner = Refiner.from_pretrained(trained["model"], trained["noise"], device="cpu")
    (expected,) = refiner.refine_sequences(load_poses(trained["val"]), flip=True)
    np.testing.assert_allclose(b.poses_3d_refined, expected.poses_3d, atol=1e-6)
    assert np.abs(a.poses_3d_refined - b.poses_3d_refined).max() > 1e-4


def test_refine_overlap_option_is_checked_and_recorded(trained, tmp_path):
    args = ("--weights", trained["model"], "--noise", trained["noise"], "--device", "cpu")
    refiner = Refiner.from_pretrained(trained["model"], trained["noise"], device="cpu")
    default, wide = tmp_path / "default.npz", tmp_path / "wide.npz"
    invoke("refine", trained["val"], "-o", default, *args)
    invoke("refine", trained["val"], "-o", wide, "--overlap", str(refiner.window - 1), *args)
    (a,), (b,) = load_poses(default), load_poses(wide)
    assert a.provenance["refine"]["overlap"] == refiner.window // 3 and b.provenance["refine"]["overlap"] == refiner.window - 1
    (expected,) = refiner.refine_sequences(load_poses(trained["val"]), overlap=refiner.window - 1)
    np.testing.assert_allclose(b.poses_3d_refined, expected.poses_3d, atol=1e-6)
    assert np.abs(a.poses_3d_refined - b.poses_3d_refined).max() > 1e-5
    bad = invoke("refine", trained["val"], "-o", tmp_path / "bad.npz", "--overlap", str(refiner.window), *args, code=2)
    assert "'--overlap'" in bad.stderr and f"window of {refiner.window} frames" in bad.stderr
    assert not (tmp_path / "bad.npz").exists()


def test_refine_smoothing_option(trained, tmp_path):
    args = ("--weights", trained["model"], "--noise", trained["noise"], "--device", "cpu")
    raw, smoothed = tmp_path / "raw.npz", tmp_path / "smoothed.npz"
    invoke("refine", trained["val"], "-o", raw, "--smooth", "0", *args)
    invoke("refine", trained["val"], "-o", smoothed, "--smooth", "5", *args)
    (a,), (b,) = load_poses(raw), load_poses(smoothed)
    assert a.provenance["refine"]["smooth"] == 0 and b.provenance["refine"]["smooth"] == 5
    assert not np.allclose(a.poses_3d_refined, b.poses_3d_refined)
    bad = invoke("refine", trained["val"], "-o", tmp_path / "bad.npz", "--smooth", "4", *args, code=2)
    assert "'--smooth'" in bad.stderr and "odd window" in bad.stderr
    assert not (tmp_path / "bad.npz").exists()


def test_refine_samples_write_uncertainty_and_are_seeded(trained, tmp_path):
    args = [trained["val"], "--weights", trained["model"], "--noise", trained["noise"], "--steps", "3", "--samples", "3"]
    invoke("refine", *args, "-o", tmp_path / "a.npz", "--seed", "4")
    invoke("refine", *args, "-o", tmp_path / "b.npz", "--seed", "4")
    (a,), (b,) = load_poses(tmp_path / "a.npz"), load_poses(tmp_path / "b.npz")
    assert a.uncertainty.shape == (40, 17)
    np.testing.assert_array_equal(a.poses_3d_refined, b.poses_3d_refined)
    result = invoke("refine", trained["val"], "--samples", "3", "-o", tmp_path / "c.npz", code=2)
    assert "--steps >= 2" in result.output


def test_refine_fills_short_nan_gaps_on_request(trained, tmp_path):
    (seq,) = load_poses(trained["val"])
    seq.poses_2d[5:7, 3] = np.nan
    np.savez(tmp_path / "gap.npz", poses_2d=seq.poses_2d, poses_3d=seq.poses_3d, image_size=np.array([1000, 1000]))
    weights = ["--weights", trained["model"], "--noise", trained["noise"]]
    refused = invoke("refine", tmp_path / "gap.npz", *weights, "--out-dir", tmp_path / "o", code=1)
    assert "NaN" in refused.stderr and not list((tmp_path / "o").iterdir())
    filled = invoke("refine", tmp_path / "gap.npz", *weights, "--out-dir", tmp_path / "o", "--fill", "3")
    assert "interpolated 4 missing values" in " ".join(filled.stderr.split())
    (out,) = load_poses(tmp_path / "o" / "gap.refined.npz")
    np.testing.assert_array_equal(out.poses_2d, seq.poses_2d)  # the input as it was, NaN included
    assert np.isfinite(out.poses_3d_refined).all() and np.argwhere(out.filled).tolist() == [[5, 3], [6, 3]]


def test_refine_weights_errors(trained, tmp_path):
    missing = invoke("refine", trained["val"], "--weights", tmp_path / "none.safetensors", "-o", tmp_path / "x.npz", code=1)
    assert "none.safetensors: file not found" in missing.stderr
    wrong = invoke("refine", trained["val"], "--weights", trained["noise"], "--noise", trained["noise"],
                   "-o", tmp_path / "x.npz", code=1)
    assert "expected a d3prefine-denoiser file" in wrong.stderr
    assert not (tmp_path / "x.npz").exists()


def test_refine_unwritable_output_fails_cleanly(trained, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")
    result = invoke("refine", trained["val"], "--weights", trained["model"], "--noise", trained["noise"],
                    "-o", blocker / "out.npz", code=1)
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "not_a_folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]


def test_train_init_starts_from_given_weights(trained, tmp_path):
    data = ["--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"], "--device", "cpu",
            "--steps", "2", "--batch-size", "2", "--eval-every", "2", "--lr", "0"]
    document = json.loads(invoke("train", *data, "--init", trained["model"], "-o", tmp_path / "tuned.safetensors", "--json").stdout)
    assert [h["step"] for h in document["history"]] == [0, 2]  # fine-tuning is validated at its start too
    assert document["kept_step"] == 0  # lr 0: step 2 is no better than step 0 (--keep best)
    tuned = invoke("train", *data, "--init", trained["model"], "-o", tmp_path / "tuned.safetensors", "--overwrite")
    assert "step 0: the --init weights | val MPJPE" in tuned.stderr and "the EMA weights of step 0 (--keep best" in tuned.stderr
    invoke("train", *data, *TINY, "-o", tmp_path / "scratch.safetensors")
    start = read_tensors(trained["model"], "d3prefine-denoiser")[0]
    tuned = read_tensors(tmp_path / "tuned.safetensors", "d3prefine-denoiser")[0]
    scratch = read_tensors(tmp_path / "scratch.safetensors", "d3prefine-denoiser")[0]
    assert all(np.array_equal(start[k].numpy(), tuned[k].numpy()) for k in start)  # lr 0: nothing moved
    assert not all(np.array_equal(start[k].numpy(), scratch[k].numpy()) for k in start)
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(trained["model"], folder / "denoiser.safetensors")
    invoke("train", *data, "--init", folder, "-o", tmp_path / "from_dir.safetensors")
    clash = invoke("train", *data, "--init", trained["model"], "--dim", "32", "-o", tmp_path / "x.safetensors", code=2)
    assert "--dim 16" in clash.output


def test_train_anchor_defaults_to_the_fine_tuning_pull_by_sequences_and_needs_init(trained, tmp_path):
    """With --init and no --anchor: 25 for at most 40 training sequences, 2.5 for more (logged)."""
    options = ["--val", trained["val"], "--noise", trained["noise"], "--device", "cpu",
               "--steps", "1", "--batch-size", "2", "--eval-every", "1", "--no-guard"]
    data = ["--data", trained["train"], *options]
    many = tmp_path / "many.h5"
    save_poses(many, [build_sequence(10, seed=s, name=f"m{s}") for s in range(FEW_SEQUENCES + 1)])

    def anchor_of(path):
        return json.loads(read_tensors(path, "d3prefine-denoiser")[1]["info"])["train_config"]["anchor"]

    assert "anchor 25 for 3 training sequences" in invoke("train", *data, "--init", trained["model"], "-o", tmp_path / "tuned.safetensors").stderr
    assert "anchor 2.5 for 41 training sequences" in invoke(
        "train", "--data", many, *options, "--init", trained["model"], "-o", tmp_path / "many.safetensors").stderr
    invoke("train", "--data", many, *options, "--init", trained["model"], "--anchor", "7", "-o", tmp_path / "set.safetensors")
    invoke("train", *data, "--init", trained["model"], "--anchor", "0", "-o", tmp_path / "free.safetensors")
    invoke("train", *data, *TINY, "-o", tmp_path / "scratch.safetensors")
    assert [anchor_of(tmp_path / f"{n}.safetensors") for n in ("tuned", "many", "set", "free", "scratch")] == [
        FINE_TUNE_ANCHOR, FINE_TUNE_ANCHOR / 10, 7.0, 0.0, 0.0]
    alone = invoke("train", *data, *TINY, "--anchor", "5", "-o", tmp_path / "x.safetensors", code=2)
    assert "--anchor pulls toward the --init weights" in alone.output and not (tmp_path / "x.safetensors").exists()


def test_weights_are_bound_to_their_noise_statistics(trained, tmp_path):
    """train records the digest of its --noise; refine refuses other statistics (one line, exit 2)
    unless --noise-mismatch-ok, which the provenance records."""
    trained_with = NoiseModel.load(trained["noise"]).digest()
    assert denoiser_metadata(trained["model"])[NOISE_DIGEST_KEY] == trained_with
    other = tmp_path / "other_noise.safetensors"
    invoke("fit-noise", trained["train"], "-o", other, "--mode", "full_body", "--force")
    base = ["refine", trained["val"], "--weights", trained["model"], "--noise", other, "--device", "cpu"]
    out = tmp_path / "out.npz"
    refused = invoke(*base, "-o", out, code=2)
    assert refused.stderr.startswith(f"error: {other}: not the noise statistics {trained['model']} was trained with")
    assert refused.stderr.count("\n") == 1 and "--noise-mismatch-ok" in refused.stderr and not out.exists()
    accepted = invoke(*base, "-o", out, "--noise-mismatch-ok")
    assert "warning:" in accepted.stderr
    (seq,) = load_poses(out)
    record = seq.provenance["refine"]
    assert record["noise_digest"] == NoiseModel.load(other).digest() != trained_with
    assert record["noise_mismatch_ok"] == {"weights_trained_with": trained_with}
    invoke("refine", trained["val"], "--weights", trained["model"], "--noise", trained["noise"], "-o", tmp_path / "ok.npz", "--device", "cpu")
    (seq,) = load_poses(tmp_path / "ok.npz")
    assert seq.provenance["refine"]["noise_digest"] == trained_with and "noise_mismatch_ok" not in seq.provenance["refine"]


def test_train_refuses_an_unknown_architecture(trained, tmp_path):
    result = invoke("train", "--data", trained["train"], "--val", trained["val"], "--noise", trained["noise"],
                    "-o", tmp_path / "m.safetensors", "--architecture", "mystery", code=2)
    assert "unknown architecture 'mystery', expected one of stcformer" in result.stderr and not (tmp_path / "m.safetensors").exists()
