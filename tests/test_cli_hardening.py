"""Hostile-audit cases (issue 19): bad options and damaged files fail early, in one line, and
leave no file behind."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from d3prefine import io as d3io
from d3prefine.checkpoint import load_denoiser
from d3prefine.cli import app
from d3prefine.errors import WeightsError
from d3prefine.io import load_poses, save_poses
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.outputfile import claim_output, lock_path, temporaries
from d3prefine.refine import DEFAULT_WEIGHTS_DIR, DENOISER_FILE, Refiner
from d3prefine.tensorfile import read_tensors, write_tensors
from d3prefine.train import TrainConfig, _lr_factor
from tests.conftest import build_sequence, cli_json

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


def one_line_error(result, code: int) -> str:
    """Assert exit ``code``, nothing on stdout and exactly one ``error:`` line on stderr; return it."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def walk(tmp_path) -> Path:
    path = tmp_path / "walk.npz"
    save_poses(path, [build_sequence(30)])
    return path


# ------------------------------------------------------------------ item 1: ranges and damaged values
def test_refine_help_states_the_ranges_validation_applies():
    help_text = " ".join(invoke("refine", "--help").stdout.split())
    assert "1<=x<=100" in help_text  # --steps
    assert "0.0<=x<=1.0" in help_text  # --eta


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--steps", "101"], "less than or equal to 100"),
        (["--samples", "2", "--steps", "2", "--eta", "0"], "--eta > 0"),
        (["--samples", "2", "--steps", "1"], "--steps >= 2"),
    ],
)
def test_bad_sampling_options_are_one_line_usage_errors(walk, tmp_path, options, fragment):
    line = one_line_error(invoke("refine", walk, "-o", tmp_path / "out.npz", *options), 2)
    assert fragment in line
    assert not (tmp_path / "out.npz").exists()


def _shipped_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    shutil.copytree(DEFAULT_WEIGHTS_DIR, folder, ignore=shutil.ignore_patterns("*.txt", "*.json", "*.log", "*.md"))
    return folder


def test_weights_with_random_tensor_bytes_are_one_line_errors(walk, tmp_path):
    folder = _shipped_copy(tmp_path)
    path = folder / DENOISER_FILE
    data = bytearray(path.read_bytes())
    header = 8 + struct.unpack("<Q", data[:8])[0]
    data[header:] = np.random.default_rng(0).bytes(len(data) - header)
    path.write_bytes(bytes(data))
    line = one_line_error(invoke("refine", walk, "-o", tmp_path / "out.npz", "--weights", folder), 1)
    assert str(path) in line
    assert not (tmp_path / "out.npz").exists()


def test_weights_with_huge_finite_values_are_one_line_errors(walk, tmp_path):
    folder = _shipped_copy(tmp_path)
    tensors, meta = read_tensors(folder / DENOISER_FILE, "d3prefine-denoiser")
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], 1e30)
    (folder / DENOISER_FILE).unlink()
    write_tensors(folder / DENOISER_FILE, tensors, meta)
    line = one_line_error(invoke("refine", walk, "-o", tmp_path / "out.npz", "--weights", folder), 1)
    assert f"tensor {name!r} holds values beyond" in line


def test_huge_pose_values_fail_in_one_line_without_numpy_warnings(tmp_path):
    seq = build_sequence(30)
    seq_members = {"poses_2d": seq.poses_2d, "poses_3d": seq.poses_3d.copy(), "gt_3d": seq.gt_3d, "image_size": np.array(seq.image_size)}
    seq_members["poses_3d"][3, 4, 1] = 1e30
    np.savez(tmp_path / "big.npz", **seq_members)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy overflow warning would escape as an exception, not one line
        for command in ("evaluate", "refine", "info"):
            line = one_line_error(invoke(command, tmp_path / "big.npz"), 1)
            assert line == f"error: {tmp_path / 'big.npz'}: sequence 'big': key 'poses_3d': expected values within ±10000, got 1e+30 (a damaged file?)"


def test_a_denoiser_producing_non_finite_poses_is_a_weights_error():
    model = PoseDenoiser(DenoiserConfig(window=9, dim=16, depth=1, heads=2))
    torch.nn.init.constant_(model.head.weight, 3e38)  # finite, but the head's sum over channels overflows float32
    refiner = Refiner(model, NoiseModel.isotropic(0.02, num_joints=17, layout="h36m17"), "cpu")
    seq = build_sequence(12)
    with pytest.raises(WeightsError, match="produced NaN or inf poses"):
        refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size)


# ------------------------------------------------------------------ item 2: outputs checked and claimed first
def test_every_output_is_checked_before_any_input_is_refined(tmp_path):
    for name in ("a", "b"):
        save_poses(tmp_path / f"{name}.npz", [build_sequence(30, name=name)])
    (tmp_path / "b.refined.npz").write_bytes(b"earlier result")
    line = one_line_error(invoke("refine", tmp_path / "a.npz", tmp_path / "b.npz"), 1)
    assert line == f"error: {tmp_path / 'b.refined.npz'}: already exists (use --overwrite to replace it)"
    assert not (tmp_path / "a.refined.npz").exists()  # refused before the first input was refined
    assert (tmp_path / "b.refined.npz").read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "b.refined.npz"]


def test_an_output_another_process_is_writing_fails_at_once(walk, tmp_path):
    target = tmp_path / "walk.refined.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from d3prefine.outputfile import claim_output\n"
         "with claim_output(sys.argv[1]):\n    print('claimed', flush=True); time.sleep(60)", str(target)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "claimed"
        line = one_line_error(invoke("refine", walk), 1)
        assert line.startswith(f"error: {target}: being written by pid {holder.pid} on ")
        assert not target.exists()
    finally:
        holder.terminate()
        holder.wait()
    assert lock_path(target).exists()  # killed without clean-up: its lock file stays, its lock does not
    invoke("refine", walk)  # free again
    assert target.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz", "walk.refined.npz"]


@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder no one may create files in: mode 0555, and immutable (``chattr +i``) for root."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("root writes into read-only folders and chattr +i is unavailable here")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_a_read_only_output_folder_fails_before_refining(walk, read_only_folder):
    # checked before anything is loaded: missing weights would be the error otherwise
    line = one_line_error(invoke("refine", walk, "--out-dir", read_only_folder, "--weights", read_only_folder / "none.safetensors"), 1)
    assert line.startswith(f"error: {read_only_folder / 'walk.refined.npz'}: cannot write in {read_only_folder} (")
    assert list(read_only_folder.iterdir()) == []


def test_two_fit_noise_runs_cannot_write_the_same_file(tmp_path):
    save_poses(tmp_path / "train.npz", [build_sequence(300, name="t")])
    target = tmp_path / "noise.safetensors"
    with claim_output(target):
        line = one_line_error(invoke("fit-noise", tmp_path / "train.npz", "-o", target), 1)
    assert f"{target}: being written by pid {os.getpid()}" in line and not target.exists()


def test_a_training_run_cannot_write_the_weights_another_run_is_writing(tmp_path):
    save_poses(tmp_path / "train.npz", [build_sequence(30, name="t")])
    model = tmp_path / "model.safetensors"
    with claim_output(tmp_path / "model.ckpt.safetensors"):  # the checkpoint is claimed as well
        line = one_line_error(invoke("train", "--data", tmp_path / "train.npz", "--val", tmp_path / "train.npz",
                                     "--noise", tmp_path / "missing.safetensors", "-o", model), 1)
    # refused before the noise statistics (missing here) are even read
    assert line.startswith(f"error: {tmp_path / 'model.ckpt.safetensors'}: being written by pid {os.getpid()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz"]


# ------------------------------------------------------------------ item 3: SIGTERM and stale temporaries
SLOW_WRITE = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job (pytest ... &) inherits SIGINT ignored
import d3prefine.io as io
write = io._write_npz
def slow(path, sequences):
    write(path, sequences)
    print("writing", flush=True)
    time.sleep(60)
io._write_npz = slow
from d3prefine.cli import main
sys.argv = ["d3prefine", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("signum, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_during_the_write_leaves_no_file(walk, tmp_path, signum, code, name):
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITE, "refine", str(walk)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout.readline().strip() == "writing"
    assert len(temporaries(tmp_path / "walk.refined.npz")) == 1 and lock_path(tmp_path / "walk.refined.npz").exists()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    assert stderr.strip().splitlines()[-1].endswith(f" by {name}; unfinished outputs were not written")
    # one line besides the guard's warning (the synthetic test body is unlike the shipped weights' training data)
    assert len([line for line in stderr.strip().splitlines() if not line.startswith("warning: ")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz"]


def test_a_rerun_removes_what_a_killed_run_left(walk, tmp_path):
    target = tmp_path / "walk.refined.npz"
    stale = tmp_path / ".walk.refined.npz.0badc0de.tmp"
    stale.write_bytes(b"half a file")
    lock_path(target).write_text("pid 1 on a dead host\n")  # SIGKILL leaves the file, not the lock
    invoke("refine", walk)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz", "walk.refined.npz"]


# ------------------------------------------------------------------ item 4: --fill keeps the inputs, NaN in gt_3d
@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_fill_keeps_the_input_arrays_and_marks_the_filled_frames(tmp_path, suffix):
    seq = build_sequence(40)
    seq.poses_3d[10:13, 5] = np.nan  # l_knee missing in frames 10-12
    seq.poses_2d[20, 15, 0] = np.nan  # r_elbow x missing in frame 20
    save_poses(tmp_path / f"gap{suffix}", [seq])
    one_line_error(invoke("refine", tmp_path / f"gap{suffix}"), 1)  # NaN without --fill
    result = invoke("refine", tmp_path / f"gap{suffix}", "--fill", "3")
    assert result.exit_code == 0, result.output
    (out,) = load_poses(tmp_path / f"gap.refined{suffix}")  # NaN marked in 'filled' loads as valid
    np.testing.assert_array_equal(out.poses_3d, seq.poses_3d)
    np.testing.assert_array_equal(out.poses_2d, seq.poses_2d)
    np.testing.assert_array_equal(out.gt_3d, seq.gt_3d)
    assert out.filled.dtype == bool and out.filled.shape == (40, 17)
    assert np.argwhere(out.filled).tolist() == [[10, 5], [11, 5], [12, 5], [20, 15]]
    assert np.isfinite(out.poses_3d_refined).all()
    # evaluate scores the refined poses against the input refine was given (gaps interpolated)
    scores = cli_json("evaluate", str(tmp_path / f"gap.refined{suffix}"))
    assert scores["sequences"][0]["frames"] == 40 and scores["sequences"][0]["baseline"]["mpjpe"] > 0
    # refining the output again needs --fill too, and gives the same mask
    one_line_error(invoke("refine", tmp_path / f"gap.refined{suffix}", "-o", tmp_path / f"again{suffix}"), 1)
    invoke("refine", tmp_path / f"gap.refined{suffix}", "-o", tmp_path / f"again{suffix}", "--fill", "3")
    (again,) = load_poses(tmp_path / f"again{suffix}")
    np.testing.assert_array_equal(again.filled, out.filled)


def test_nan_in_ground_truth_does_not_block_refine(tmp_path):
    seq = build_sequence(30)
    seq.gt_3d[4:8] = np.nan
    np.savez(tmp_path / "gt_gap.npz", poses_2d=seq.poses_2d, poses_3d=seq.poses_3d, gt_3d=seq.gt_3d, image_size=np.array(seq.image_size))
    result = invoke("refine", tmp_path / "gt_gap.npz")
    assert result.exit_code == 0, result.output
    (out,) = load_poses(tmp_path / "gt_gap.refined.npz", allow_nan=("gt_3d",))
    np.testing.assert_array_equal(out.gt_3d, seq.gt_3d)
    assert out.filled is None and np.isfinite(out.poses_3d_refined).all()


# ------------------------------------------------------------------ item 5: batch reruns
@pytest.fixture
def folder(tmp_path) -> Path:
    """A folder of two pose files, ``a.npz`` and ``b.npz``."""
    for name in ("a", "b"):
        save_poses(tmp_path / f"{name}.npz", [build_sequence(30, seed=ord(name), name=name)])
    return tmp_path


def test_a_folder_refined_in_place_can_be_refined_again(folder):
    invoke("refine", folder)
    again = invoke("refine", folder, "--overwrite", "--json")  # the outputs are not taken as inputs
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.npz", "a.refined.npz", "b.npz", "b.refined.npz"]
    assert [Path(f["file"]).name for f in json.loads(again.stdout)["files"]] == ["a.npz", "b.npz"]


def test_skip_existing_refines_only_the_missing_outputs(folder):
    invoke("refine", folder / "a.npz")
    before = (folder / "a.refined.npz").read_bytes()
    result = invoke("refine", folder, "--skip-existing", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [Path(f["file"]).name for f in document["files"]] == ["b.npz"]
    assert [Path(s["file"]).name for s in document["skipped"]] == ["a.npz"]
    assert (folder / "a.refined.npz").read_bytes() == before and (folder / "b.refined.npz").exists()
    nothing = invoke("refine", folder, "--skip-existing")  # all done: nothing to refine, exit 0
    assert nothing.exit_code == 0 and "skipped 2 input(s)" in nothing.stderr
    assert "not both" in one_line_error(invoke("refine", folder, "--skip-existing", "--overwrite"), 2)


def test_evaluate_on_a_folder_does_not_pool_raw_and_refined_files(folder):
    invoke("refine", folder)
    document = cli_json("evaluate", str(folder))
    assert [Path(s["file"]).name for s in document["sequences"]] == ["a.refined.npz", "b.refined.npz"]
    assert document["pooled"]["frames"] == 60  # each sequence once, not twice
    assert all(s["baseline_source"] for s in document["sequences"])  # the raw poses are the baseline column


def test_batch_script_passes_extra_options_to_refine(folder):
    env = {**os.environ, "D3PREFINE": f"{sys.executable} -m d3prefine"}
    (folder / "out").mkdir()
    (folder / "out" / "a.refined.npz").write_bytes(b"an earlier run's output")
    script = [str(ROOT / "examples" / "batch.sh"), str(folder), str(folder / "out"), "1", "--smooth", "0", "--skip-existing"]
    subprocess.run(["bash", *script], cwd=ROOT, env=env, check=True)
    (out,) = load_poses(folder / "out" / "b.refined.npz")
    assert out.provenance["refine"]["smooth"] == 0  # --smooth 0 reached refine
    assert (folder / "out" / "a.refined.npz").read_bytes() == b"an earlier run's output"  # --skip-existing too
    assert [Path(s["file"]).name for s in json.loads((folder / "out" / "shard0.json").read_text())["skipped"]] == ["a.npz"]


# ------------------------------------------------------------------ item 6: fit-noise sample size and uncertainty
def test_fit_noise_refuses_too_few_frames_unless_forced(tmp_path):
    save_poses(tmp_path / "small.npz", [build_sequence(104, name="s")])
    target = tmp_path / "noise.safetensors"
    line = one_line_error(invoke("fit-noise", tmp_path / "small.npz", "-o", target), 1)
    assert line == (
        f"error: {tmp_path / 'small.npz'}: 104 frames are too few for a per_joint fit: it needs at least 290 "
        "(10 per parameter, 29 per Gaussian block); give more data, or --force to fit anyway"
    )
    assert not target.exists()
    forced = invoke("fit-noise", tmp_path / "small.npz", "-o", target, "--force", "--json")
    assert forced.exit_code == 0 and "warning: 104 frames are too few" in forced.stderr
    info = json.loads(forced.stdout)["info"]
    assert info["frames"] == 104 and info["frames_required"] == 290 and info["jackknife_groups"] == 4  # blocks of 32 frames
    assert info["explained_variance_se"] > 0
    full = json.loads(invoke("fit-noise", tmp_path / "small.npz", "-o", tmp_path / "full.safetensors", "--mode", "full_body", "--force", "--json").stdout)
    # 104 frames for 5,797 parameters: nearly everything "explained" in sample, a third on held-out frames
    assert full["info"]["explained_variance"] > 0.95 and full["info"]["explained_variance_held_out"] < 0.5


def test_fit_noise_reports_the_standard_error_of_the_explained_variance(tmp_path):
    save_poses(tmp_path / "train.npz", [build_sequence(400, seed=s, name=f"t{s}") for s in range(3)])
    result = invoke("fit-noise", tmp_path / "train.npz", "-o", tmp_path / "noise.safetensors", "--json")
    info = json.loads(result.stdout)["info"]
    assert info["frames"] == 1200 and info["jackknife_groups"] == 20
    assert 0.0 < info["explained_variance_se"] < 0.01  # 0.5 %: 1,200 frames pin the fit down
    assert abs(info["explained_variance_held_out"] - info["explained_variance"]) < 0.02
    table = invoke("fit-noise", tmp_path / "train.npz", "-o", tmp_path / "noise2.safetensors").stdout
    assert f"{100 * info['explained_variance']:.1f}% ± {100 * info['explained_variance_se']:.1f}% (jackknife standard error over 20 groups" in " ".join(table.split())


# ------------------------------------------------------------------ item 7: warm-up and EMA scale with the run
@pytest.mark.parametrize("steps, warmup, decay", [(4000, 500, 0.998), (20000, 500, 0.998), (50, 6, 0.84), (8, 1, 0.0)])
def test_warmup_and_ema_scale_with_the_run_and_keep_the_shipped_recipe(steps, warmup, decay):
    config = TrainConfig(steps=steps)
    assert config.warmup == warmup and config.ema_decay == pytest.approx(decay, abs=1e-15)
    assert TrainConfig(steps=4000).ema_decay == 0.998  # exactly the shipped weights' schedule
    factors = [_lr_factor(step, config) for step in range(steps)]
    assert max(factors) == 1.0 and factors.index(1.0) == warmup - 1 and factors[-1] < 0.1


def test_a_short_training_run_moves_the_weights(tmp_path):
    save_poses(tmp_path / "train.npz", [build_sequence(40, seed=s, name=f"t{s}") for s in range(2)])
    noise, model = tmp_path / "noise.safetensors", tmp_path / "model.safetensors"
    assert invoke("fit-noise", tmp_path / "train.npz", "-o", noise, "--force").exit_code == 0
    result = invoke("train", "--data", tmp_path / "train.npz", "--val", tmp_path / "train.npz", "--noise", noise, "-o", model,
                    "--steps", "8", "--batch-size", "4", "--eval-every", "8", "--device", "cpu",
                    "--window", "9", "--dim", "16", "--depth", "1", "--heads", "2", "--mirror", "0.5")
    assert result.exit_code == 0, result.output
    info = json.loads(read_tensors(model, "d3prefine-denoiser")[1]["info"])
    assert info["train_config"]["warmup"] == 1 and info["train_config"]["ema_decay"] == 0.0 and info["train_config"]["mirror"] == 0.5
    refused = invoke("train", "--data", tmp_path / "train.npz", "--val", tmp_path / "train.npz", "--noise", noise, "-o", tmp_path / "m2.safetensors",
                     "--mirror", "1.5")
    assert refused.exit_code == 2 and "--mirror" in refused.output and not (tmp_path / "m2.safetensors").exists()
    torch.manual_seed(0)  # the initial weights (zero head) of the same seed
    start = PoseDenoiser(DenoiserConfig(window=9, dim=16, depth=1, heads=2))
    trained = load_denoiser(model)
    # with warm-up 500 and EMA 0.998 the head stayed within 0.2 % of its zero start after 8 steps
    assert float(trained.head.weight.detach().abs().max()) > 1e-3 and float(start.head.weight.detach().abs().max()) == 0.0


# ------------------------------------------------------------------ item 8: declared sizes checked before reading
def _npz_declaring(path: Path, frames: int) -> Path:
    """``walk``'s arrays, with a ``poses_3d`` member of only a header declaring ``frames`` frames."""
    np.savez(path, poses_2d=build_sequence(30).poses_2d)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (frames, 17, 3)})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("poses_3d.npy", header.getvalue())
    return path


def test_a_header_declaring_more_than_the_file_holds_fails_without_allocating(tmp_path):
    bad = _npz_declaring(tmp_path / "bad.npz", 10**7)  # 1.9 GiB declared (under the limit), 4.5 kB on disk
    assert bad.stat().st_size < 5000
    tracemalloc.start()  # numpy reports its array allocations to tracemalloc
    try:
        line = one_line_error(invoke("info", bad), 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, peak  # the declared 1.9 GiB was never allocated
    assert f"{bad}: key 'poses_3d': header declares shape (10000000, 17, 3) float32 (1.9 GiB)" in line


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_files_declaring_more_than_the_limit_fail_before_reading(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"walk{suffix}"
    save_poses(path, [build_sequence(30)])  # poses_2d 4,080 bytes, poses_3d and gt_3d 6,120 each
    monkeypatch.setattr(d3io, "MAX_FILE_BYTES", 10_000)  # the second 3D array passes it
    line = one_line_error(invoke("info", path), 1)
    assert re.search(r"key '(poses_3d|gt_3d)': declares 6,[12]\d\d bytes of array data, more than the 10,000 bytes a pose file may hold", line)


# ------------------------------------------------------------------ item 9: messages name the file and the sequence
def test_a_gap_longer_than_fill_names_the_file_and_the_sequence(tmp_path):
    seq = build_sequence(40)
    seq.poses_3d[10:20, 3, 0] = np.nan
    save_poses(tmp_path / "gap.npz", [seq])
    for options, message in [
        ([], "key 'poses_3d': expected finite values, got 10 NaN of 2040"),
        (["--fill", "5"], "key 'poses_3d': NaN gap of 10 frames at frames 10-19 (joint 3 'r_ankle', coordinate x), "
                          "longer than the longest gap to fill (5 frames)"),
    ]:
        run = subprocess.run([sys.executable, "-m", "d3prefine", "refine", str(tmp_path / "gap.npz"), *options],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        assert (run.returncode, run.stdout) == (1, "")
        assert run.stderr == f"error: {tmp_path / 'gap.npz'}: sequence 'walk': {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gap.npz"]


@pytest.mark.parametrize("command", ["refine", "fit-noise", "train", "convert"])
def test_an_empty_or_folder_output_name_is_a_usage_error(walk, tmp_path, command):
    for name, message in [("", "empty file name"), (str(tmp_path), f"{str(tmp_path)!r} is a folder")]:
        line = one_line_error(invoke(command, walk, "-o", name), 2)
        assert f"Invalid value for '--output' / '-o': {message}, expected the path of the file to write" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npz"]


# ------------------------------------------------------------------ item 10: README examples and help
def _readme_block(after: str) -> list[str]:
    """The command lines of the first ```bash block after the line starting with ``after``."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(after):].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("   #")[0].strip() for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_refine_examples_run_right_after_the_set_up(tmp_path, monkeypatch):
    set_up = _readme_block("## Set-up")[0].split(" && ")
    lines = [line for line in set_up if line.startswith("d3prefine ")] + _readme_block("**refine**")
    assert any("--fill" in line for line in lines) and len(lines) >= 6
    monkeypatch.chdir(ROOT)
    for line in lines:
        line = line.replace("/tmp/", f"{tmp_path}/")
        if line.startswith("python -c "):
            subprocess.run(shlex.split(line), check=True, cwd=ROOT)
        elif "my_poses/" not in line:  # the user's own folder
            argv = shlex.split(line)[1:]
            if argv[0] == "refine":
                argv += ["--steps", "2"]  # the last --steps wins: fast, same files and checks
            result = invoke(*argv)
            assert result.exit_code == 0, (line, result.output)
    (gappy,) = load_poses(tmp_path / "gappy.refined.npz")
    assert int(gappy.filled.sum()) == 4 and load_poses(tmp_path / "walk.s8.npz")[0].uncertainty is not None


@pytest.mark.parametrize("command", ["", "refine", "evaluate", "fit-noise", "train", "info", "plot", "convert", "export"])
def test_help_shows_boolean_flags_without_a_value(command):
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0
    assert "--overwrite" in result.stdout or "--version" in result.stdout or "--json" in result.stdout
    assert "<bool>" not in result.stdout and "BOOL" not in result.stdout
