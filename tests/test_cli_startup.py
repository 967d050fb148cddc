"""A fast start: help, ``info`` and usage errors never import torch or scipy (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "scipy")

# Runs the CLI once per argument list in one fresh interpreter and prints, per run, the exit code
# and the heavy modules loaded so far (a run that loads one taints the runs after it, which then
# fail too: the first failing run is the culprit).
PROBE = """
import json, sys
from d3prefine.cli import app
report = []
for args in json.loads(sys.argv[1]):
    try:
        app(args, prog_name="d3prefine")
    except SystemExit as stop:
        code = stop.code
    report.append([code, sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r})])
print(json.dumps(report))
""".format(heavy=set(HEAVY))


def _probe(runs: list[list[str]]) -> list[tuple[int, list[str]]]:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(runs)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> str:
    from d3prefine.io import save_poses
    from tests.conftest import build_sequence

    path = tmp_path_factory.mktemp("startup") / "walk.h5"  # HDF5: h5py is loaded, torch still not
    save_poses(path, [build_sequence(30, seed=1)])
    return str(path)


def test_help_info_and_usage_errors_load_neither_torch_nor_scipy(walk):
    runs = {
        "--help": (["--help"], 0),
        "--version": (["--version"], 0),
        "refine --help": (["refine", "--help"], 0),
        "train --help": (["train", "--help"], 0),
        "fit-noise --help": (["fit-noise", "--help"], 0),
        "convert --help": (["convert", "--help"], 0),
        "export --help": (["export", "--help"], 0),
        "info (pose file)": (["info", walk], 0),
        "info (weights)": (["info", str(REPO / "weights" / "denoiser.safetensors")], 0),
        "unknown command": (["refien", walk], 2),
        "refine: bad option value": (["refine", walk, "--steps", "0"], 2),
        "refine: bad device": (["refine", walk, "--device", "tpu"], 2),
        "refine: samples without steps": (["refine", walk, "--samples", "2"], 2),
        "refine: no matching input": (["refine", "nothing-*.npz"], 2),
        "train: missing options": (["train", "--data", walk], 2),
        "train: bad objective": (["train", "--data", walk, "--val", walk, "--noise", "n.safetensors", "-o", "m.safetensors",
                                  "--objective", "magic"], 2),
        "fit-noise: bad mode": (["fit-noise", walk, "-o", "n.safetensors", "--mode", "magic"], 2),
    }
    report = _probe([args for args, _ in runs.values()])
    for (name, (_, code)), (exit_code, heavy) in zip(runs.items(), report):
        assert exit_code == code, name
        assert heavy == [], f"{name} imported {heavy}"


def test_the_probe_sees_torch_when_a_command_loads_it(tmp_path):
    # The check above can fail: refining does import torch.
    ((code, heavy),) = _probe([["refine", str(tmp_path / "missing.npz"), "--device", "cpu"]])
    assert code == 1 and "torch" in heavy
