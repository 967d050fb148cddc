"""The shared batch machinery of the commands (d3prefine.cli._common) and the process helpers (d3prefine.runtime)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from d3prefine.cli import COMMANDS, _common, app
from d3prefine.cli._common import Shard, apply_shard, default_threads, device_option, expand_inputs, output_paths, run_batch
from d3prefine.errors import ExitCode, InputError, UsageError
from d3prefine.runtime import Device, jsonable, resolve_device, run_reporting, subsample


def touch(folder: Path, *names: str) -> list[Path]:
    paths = [folder / name for name in names]
    for path in paths:
        path.write_bytes(b"")
    return paths


@pytest.mark.parametrize("text, expected", [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 1 / 2 ", Shard(1, 2))])
def test_shard_parse(text, expected):
    assert Shard.parse(text) == expected


@pytest.mark.parametrize("text", ["1/1", "4/4", "-1/4", "1", "1/", "/2", "a/2", "1/2/3", "0/0"])
def test_shard_parse_rejects(text):
    with pytest.raises(typer.BadParameter):
        Shard.parse(text)


def test_shards_select_every_nth_and_partition():
    items = list(range(10))
    assert Shard(1, 3).select(items) == [1, 4, 7]
    assert sorted(sum((Shard(i, 3).select(items) for i in range(3)), [])) == items
    assert apply_shard(items, None) == items


def test_expand_inputs_keeps_order_folders_globs_and_missing(tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    b, a, c = touch(folder, "b.npz", "a.h5", "c.HDF5")
    touch(folder, "readme.txt", "w.safetensors")
    loose = touch(tmp_path, "z.npz", "y1.npz", "y2.npz")
    missing = tmp_path / "missing.npz"
    got = expand_inputs([loose[0], folder, tmp_path / "y*.npz", missing, loose[0], folder / ".." / "z.npz"])
    assert got == [loose[0], a, b, c, loose[1], loose[2], missing]
    assert expand_inputs([folder], (".safetensors",)) == [folder / "w.safetensors"]


def test_expand_inputs_usage_errors(tmp_path):
    with pytest.raises(typer.BadParameter, match="no input files"):
        expand_inputs([])
    with pytest.raises(typer.BadParameter, match="matches no file"):
        expand_inputs([tmp_path / "*.npz"])
    with pytest.raises(typer.BadParameter, match="holds no files ending in"):
        expand_inputs([tmp_path])


def test_output_paths_naming(tmp_path):
    a, b = touch(tmp_path, "walk.npz", "run.h5")
    assert output_paths([a, b], output=None, out_dir=None, tag=".refined") == {
        a: tmp_path / "walk.refined.npz",
        b: tmp_path / "run.refined.h5",
    }
    out = tmp_path / "new" / "deeper"
    assert output_paths([a, b], output=None, out_dir=out, tag=".refined") == {
        a: out / "walk.refined.npz",
        b: out / "run.refined.h5",
    }
    assert out.is_dir()
    assert output_paths([a], output=tmp_path / "x.hdf5", out_dir=None, tag=".refined") == {a: tmp_path / "x.hdf5"}


def test_output_paths_usage_errors(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a, b = touch(tmp_path, "one/walk.npz", "two/walk.npz")
    cases = [
        (dict(inputs=[a, b], output=tmp_path / "o.npz", out_dir=None, tag=".r"), "takes a single input, got 2"),
        (dict(inputs=[a], output=tmp_path / "o.npz", out_dir=tmp_path, tag=".r"), "not both"),
        (dict(inputs=[a], output=a, out_dir=None, tag=".r"), "is also an input"),
        (dict(inputs=[a, b], output=None, out_dir=None, tag=""), "is also an input"),
        (dict(inputs=[a, b], output=None, out_dir=tmp_path, tag=".r"), "would both write"),
    ]
    for kwargs, message in cases:
        inputs = kwargs.pop("inputs")
        with pytest.raises(typer.BadParameter, match=message):
            output_paths(inputs, **kwargs)


def test_run_batch_continue_on_error(tmp_path, capsys):
    paths = [Path(name) for name in ("a", "bad", "b", "crash", "c")]

    def process(path: Path) -> str:
        if path.name == "bad":
            raise InputError(f"{path}: broken")
        if path.name == "crash":
            raise RuntimeError("boom")
        return path.name.upper()

    batch = run_batch(paths, process, continue_on_error=True)
    assert batch.values == ["A", "B", "C"]
    assert [(o.path.name, o.error) for o in batch.failures] == [
        ("bad", "bad: broken"),
        ("crash", "crash: unexpected RuntimeError: boom"),
    ]
    assert batch.skipped == [] and batch.exit_code is ExitCode.FAILED
    err = capsys.readouterr().err
    assert "error: bad: broken\n" in err and "summary: 3 succeeded, 2 failed" in err


def test_run_batch_stops_at_first_failure(capsys):
    paths = [Path(name) for name in ("a", "bad", "b")]

    def process(path: Path) -> str:
        if path.name == "bad":
            raise InputError("bad: broken")
        return path.name

    batch = run_batch(paths, process, continue_on_error=False)
    assert batch.values == ["a"] and batch.skipped == [Path("b")] and batch.exit_code == 1
    assert "1 input not processed" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError):  # bugs keep their traceback
        run_batch(paths, lambda path: 1 / 0 if path.name == "b" else None, continue_on_error=False)
    assert run_batch(paths[:1], str, continue_on_error=False).exit_code is ExitCode.OK


def test_resolve_device(monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(Device.AUTO) == "cpu"
    for name in ("cuda", "cuda:1"):
        with pytest.raises(UsageError, match=f"^{name} requested but CUDA is not available"):
            resolve_device(name)
        with pytest.raises(typer.BadParameter, match=f"^{name} requested but CUDA is not available"):  # exit 2 on the command line
            device_option(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"
    assert resolve_device("CUDA:1") == "cuda:1"
    with pytest.raises(UsageError, match=r"cuda:2 requested but this machine has 2 CUDA device\(s\), cuda:0 .. cuda:1"):
        resolve_device("cuda:2")
    for bad in ("tpu", "cuda:", "cuda:-1", "cuda1", "cpu:0"):
        with pytest.raises(UsageError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SLURM_ARRAY_TASK_ID": "3"}, None),  # no count: not an array job's full environment
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, Shard(3, 4)),
        ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "1"}, Shard(7, 8)),  # --array=1-8
        ({"SLURM_ARRAY_TASK_ID": "20", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "10"},
         Shard(2, 4)),  # --array=0-30:10
    ],
)
def test_shard_from_slurm(env, expected):
    assert Shard.from_slurm(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"},  # --array=1,2,3,4 read without its minimum
        {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2"},
        {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"},
    ],
)
def test_shard_from_slurm_refuses_irregular_arrays(env):
    with pytest.raises(typer.BadParameter, match="give --shard I/N"):
        Shard.from_slurm(env)


def test_default_threads(monkeypatch):
    for name in ("SLURM_JOB_ID", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_common, "usable_cores", lambda: 8)
    assert default_threads(None) is None  # torch's choice
    assert default_threads(Shard(0, 2)) == 4 and default_threads(Shard(1, 3)) == 2 and default_threads(Shard(5, 16)) == 1
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert default_threads(None) == 1 and default_threads(Shard(0, 2)) == 1  # SLURM gives 1 CPU per task unless told
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert default_threads(Shard(0, 2)) == 6


def test_jsonable_and_emit_json(capsys):
    value = {"a": np.float32(1.5), "b": np.array([1.0, np.nan]), "c": (Path("x"), Device.CPU), 3: math.inf}
    assert jsonable(value) == {"a": 1.5, "b": [1.0, None], "c": ["x", "cpu"], "3": None}
    _common.emit_json(value)
    assert capsys.readouterr().out.startswith('{\n  "a": 1.5,')


def test_run_reporting_exit_codes(capsys):
    def fail(error):
        raise error

    assert run_reporting(lambda: None) is ExitCode.OK
    assert run_reporting(lambda: fail(InputError("x.npz: broken"))) is ExitCode.FAILED
    assert run_reporting(lambda: fail(UsageError("no such device"))) is ExitCode.USAGE
    assert capsys.readouterr().err == "error: x.npz: broken\nerror: no such device\n"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_ends_with_examples(name):
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    tail = result.stdout.rstrip().split("Examples:")[-1].split("\n")
    examples = [line.strip() for line in tail if line.strip()]
    assert examples == list(COMMANDS[name].EXAMPLES) and all(line.startswith(f"d3prefine {name} ") for line in examples)


def test_subsample_is_seeded_and_keeps_the_order():
    items = list("abcdefgh")
    picked = subsample(items, 3, seed=0)
    assert picked == subsample(items, 3, seed=0) and len(picked) == 3 and picked == sorted(picked)
    assert subsample(items, None, 0) == items and subsample(items, 8, 0) == items and subsample(items, 20, 0) == items
    assert {tuple(subsample(items, 3, seed)) for seed in range(5)} != {tuple(picked)}  # other seeds, other picks
