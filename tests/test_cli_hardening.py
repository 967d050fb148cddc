"""Hostile-audit cases (issue 19): bad options and damaged files fail early, in one line, and
leave no file behind."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.errors import WeightsError
from d3prefine.io import save_poses
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.refine import DEFAULT_WEIGHTS_DIR, DENOISER_FILE, Refiner
from d3prefine.tensorfile import read_tensors, write_tensors
from tests.conftest import build_sequence

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
    result = subprocess.run(
        [sys.executable, "-W", "default", "-m", "d3prefine", "evaluate", str(tmp_path / "big.npz")],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'big.npz'}: key 'poses_3d': expected values within ±10000, got 1e+30 (a damaged file?)"
    ]


def test_a_denoiser_producing_non_finite_poses_is_a_weights_error():
    model = PoseDenoiser(DenoiserConfig(window=9, dim=16, depth=1, heads=2))
    torch.nn.init.constant_(model.head.weight, 3e38)  # finite, but the head's sum over channels overflows float32
    refiner = Refiner(model, NoiseModel.isotropic(0.02, num_joints=17, layout="h36m17"), "cpu")
    seq = build_sequence(12)
    with pytest.raises(WeightsError, match="produced NaN or inf poses"):
        refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size)
