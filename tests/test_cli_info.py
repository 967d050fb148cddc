"""``d3prefine info`` on pose files and safetensors weights, and the app's global options."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import save_poses
from tests.conftest import cli_json

runner = CliRunner()


def info_json(*args: str) -> dict:
    return cli_json("info", *args)


def test_describes_a_pose_file(tmp_path, sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [sequence])
    (entry,) = info_json(str(path))["files"]
    assert entry["file"] == str(path) and entry["kind"] == "poses"
    (seq,) = entry["sequences"]
    assert seq == {
        "name": "walk",
        "frames": 32,
        "joints": 17,
        "joint_layout": "h36m17",
        "arrays": {
            "poses_2d": {"shape": [32, 17, 2], "nan": 0},
            "poses_3d": {"shape": [32, 17, 3], "nan": 0},
            "gt_3d": {"shape": [32, 17, 3], "nan": 0},
        },
        "fps": 30.0,
        "duration_s": pytest.approx(32 / 30),
        "image_size": [1000, 1000],
        "units": "m",
        "provenance": {"source": "tests/conftest.py", "seed": 0},
    }


def test_describes_every_sequence_of_an_hdf5_file(tmp_path, make_sequence):
    path = tmp_path / "takes.hdf5"
    second = dataclasses.replace(make_sequence(12, name="run", seed=3), fps=None, image_size=None,
                                 poses_2d=np.zeros((12, 17, 2), np.float32))
    save_poses(path, [make_sequence(20, name="walk"), second])
    (entry,) = info_json(str(path))["files"]
    assert [(s["name"], s["frames"]) for s in entry["sequences"]] == [("walk", 20), ("run", 12)]
    assert entry["sequences"][1]["fps"] is None and entry["sequences"][1]["duration_s"] is None
    assert entry["sequences"][1]["image_size"] is None


def test_human_output(tmp_path, sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [dataclasses.replace(sequence, name="take[1]")])
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    for text in ("take[1]", "17 (h36m17)", "1000x1000", "poses_2d", '"seed": 0', "1 sequence"):
        assert text in result.stdout, text


def write_weights(path) -> None:
    tensors = {"denoiser.weight": np.zeros((8, 4), np.float32), "denoiser.bias": np.zeros(8, np.float16)}
    save_file(tensors, str(path), metadata={"config": json.dumps({"layers": 4, "joints": 17}), "note": "trial"})


def test_describes_a_safetensors_file(tmp_path):
    path = tmp_path / "denoiser.safetensors"
    write_weights(path)
    (entry,) = info_json(str(path))["files"]
    assert entry == {
        "file": str(path),
        "kind": "weights",
        "metadata": {"config": {"layers": 4, "joints": 17}, "note": "trial"},
        "tensors": {
            "denoiser.bias": {"shape": [8], "dtype": "F16"},
            "denoiser.weight": {"shape": [8, 4], "dtype": "F32"},
        },
    }
    human = runner.invoke(app, ["info", str(path)])
    assert human.exit_code == 0
    assert "denoiser.weight" in human.stdout and "8x4" in human.stdout and '"layers": 4' in human.stdout


def test_folder_expands_to_pose_and_weights_files(tmp_path, sequence):
    save_poses(tmp_path / "b.h5", [sequence])
    save_poses(tmp_path / "a.npz", [sequence])
    write_weights(tmp_path / "c.safetensors")
    (tmp_path / "notes.txt").write_text("ignored")
    files = info_json(str(tmp_path))["files"]
    assert [(e["file"], e["kind"]) for e in files] == [
        (str(tmp_path / "a.npz"), "poses"), (str(tmp_path / "b.h5"), "poses"), (str(tmp_path / "c.safetensors"), "weights")
    ]


def test_quoted_glob_pattern(tmp_path, make_sequence, monkeypatch):
    for name in ("s2", "s1", "t1"):
        save_poses(tmp_path / f"{name}.npz", [make_sequence(4, name=name)])
    files = info_json(str(tmp_path / "s*.npz"))["files"]
    assert [e["sequences"][0]["name"] for e in files] == ["s1", "s2"]
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["info", "z*.npz"])
    assert result.exit_code == 2 and "matches no file" in result.output


@pytest.mark.parametrize("content", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"\xff" * 64])
def test_corrupt_safetensors_is_a_weights_error(tmp_path, content):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: not a valid safetensors file (") and result.stderr.count("\n") == 1
    assert path.read_bytes() == content


def test_missing_safetensors_file(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path / "gone.safetensors")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'gone.safetensors'}: file not found\n"


def test_version_and_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0
    assert re.fullmatch(r"d3prefine \S+\n", version.stdout)
    bare = runner.invoke(app, [])
    assert bare.exit_code == 2  # no command is a usage error; help is shown
    assert "info" in bare.output and "evaluate" in bare.output


def test_python_dash_m_runs_the_same_cli(tmp_path, sequence):
    import subprocess
    import sys

    save_poses(tmp_path / "walk.npz", [sequence])
    result = subprocess.run([sys.executable, "-m", "d3prefine", "info", "--json", str(tmp_path / "walk.npz")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["files"][0]["sequences"][0]["frames"] == 32
    version = subprocess.run([sys.executable, "-m", "d3prefine", "--version"], capture_output=True, text=True, check=False)
    assert version.returncode == 0 and version.stdout.startswith("d3prefine ")
