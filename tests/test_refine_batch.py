"""Refining many inputs at once: the library stream, the prefetching thread and ``refine`` over many files
(batches shared across files, SLURM shards, threads, per-file errors)."""

from __future__ import annotations

import copy
import json
import threading
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from d3prefine.checkpoint import save_denoiser
from d3prefine.cli import app
from d3prefine.io import load_poses, save_poses
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.prefetch import prefetch
from d3prefine.preprocess import error_triple
from d3prefine.refine import Refiner
from tests.conftest import build_sequence

TINY = DenoiserConfig(window=9, dim=16, depth=1, heads=2)
runner = CliRunner()


@pytest.fixture(scope="module")
def refiner():
    seqs = [build_sequence(60, seed=s) for s in range(3)]
    noise = NoiseModel.fit([error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in seqs], layout="h36m17")
    torch.manual_seed(0)
    model = PoseDenoiser(TINY)
    torch.nn.init.normal_(model.head.weight, std=0.5)  # a non-zero output, standing in for trained weights
    return Refiner(model, noise, device="cpu")


def _groups(lengths_per_group):
    return [[(s.poses_2d, s.poses_3d, s.image_size) for s in (build_sequence(n, seed=10 * g + n) for n in lengths)]
            for g, lengths in enumerate(lengths_per_group)]


@pytest.mark.parametrize("options", [{"steps": 2}, {"steps": 3, "samples": 3, "seed": 5}])
def test_stream_gives_each_group_what_it_gets_alone(refiner, options):
    groups = _groups([(3, 30), (), (70,), (9, 10, 1)])  # an empty group is handed back in its place
    streamed = list(refiner.refine_stream(enumerate(groups), batch_size=4, **options))
    assert [key for key, _ in streamed] == [0, 1, 2, 3]
    for (_, results), group in zip(streamed, groups):
        alone = refiner.refine_many(group, batch_size=64, **options)
        assert len(results) == len(alone) == len(group)
        for a, b in zip(results, alone):  # the windows share batches with other groups: float rounding only
            np.testing.assert_allclose(a.poses_3d, b.poses_3d, atol=1e-5, rtol=0)
            if options.get("samples"):
                np.testing.assert_allclose(a.uncertainty, b.uncertainty, atol=1e-5, rtol=0)
                assert a.uncertainty.min() >= 0 and a.uncertainty[:, 1:].max() > 0


def test_stream_reads_groups_lazily_and_yields_each_when_done(refiner):
    groups = _groups([(20,)] * 12)  # 3 windows of 9 frames (hop 6) per group
    read = []

    def source():
        for k, group in enumerate(groups):
            read.append(k)
            yield k, group

    for key, _ in refiner.refine_stream(source(), batch_size=4):
        # group `key` is done after the batch holding its last window: at most the next group was read to fill it
        assert len(read) <= key + 2
    assert len(read) == 12


def test_prefetch_keeps_order_bounds_lookahead_and_reraises():
    produced = []

    def items():
        for k in range(20):
            produced.append(k)
            yield k

    seen = []
    for item in prefetch(items(), depth=2):
        time.sleep(0.002)
        seen.append(item)
        assert len(produced) <= item + 4  # queue of 2, one being put, one being made
    assert seen == list(range(20))

    def failing():
        yield 1
        raise KeyError("bad item")

    with pytest.raises(KeyError, match="bad item"):
        list(prefetch(failing(), depth=1))
    endless = prefetch(iter(int, 1), depth=1)  # never ends by itself
    assert next(endless) == 0
    endless.close()  # the consumer stops: the thread ends too
    assert not any(t.name == "d3prefine-prefetch" for t in threading.enumerate())


@pytest.fixture(scope="module")
def weights(tmp_path_factory, refiner):
    folder = tmp_path_factory.mktemp("weights")
    save_denoiser(folder / "denoiser.safetensors", refiner.model, {})
    refiner.noise.save(folder / "noise.safetensors")
    return folder


def _files(folder, count, frames=(20, 13)):
    paths = []
    for k in range(count):
        path = folder / f"in{k:02d}.npz"
        save_poses(path, [build_sequence(n, seed=100 * k + n, name=f"s{j}") for j, n in enumerate(frames)])
        paths.append(path)
    return paths


def _refine(*args, code=0):
    result = runner.invoke(app, ["refine", *map(str, args)])
    assert result.exit_code == code, result.output
    return result


def test_many_files_share_batches_and_match_one_file_runs(weights, tmp_path):
    inputs = _files(tmp_path, 5)
    common = ["--weights", weights, "--device", "cpu", "--batch-size", "5"]
    for options in (["--steps", "2"], ["--steps", "3", "--samples", "2", "--seed", "3"]):
        together = tmp_path / f"together{len(options)}"
        result = _refine(*inputs, "--out-dir", together, "--json", *common, *options)
        assert [entry["file"] for entry in json.loads(result.stdout)["files"]] == list(map(str, inputs))
        for path in inputs:
            alone = tmp_path / f"alone{len(options)}"
            _refine(path, "--out-dir", alone, *common, *options)
            for a, b in zip(load_poses(together / f"{path.stem}.refined.npz"), load_poses(alone / f"{path.stem}.refined.npz")):
                np.testing.assert_allclose(a.poses_3d_refined, b.poses_3d_refined, atol=1e-5, rtol=0)
                if "--samples" in options:
                    np.testing.assert_allclose(a.uncertainty, b.uncertainty, atol=1e-5, rtol=0)


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_bad_file_among_many_keeps_its_meaning(weights, tmp_path, keep_going):
    inputs = _files(tmp_path, 6)
    inputs[2].write_bytes(b"not a pose file")
    args = [*inputs, "--out-dir", tmp_path / "out", "--weights", weights, "--batch-size", "3", "--json"]
    result = _refine(*args, *(["--continue-on-error"] if keep_going else []), code=1)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    expected = [p.stem + ".refined.npz" for p in inputs if p != inputs[2] and (keep_going or p.name < inputs[2].name)]
    assert written == expected  # without --continue-on-error: the files before the bad one, nothing after it
    report = json.loads(result.stdout)
    assert [f["file"] for f in report["failed"]] == [str(inputs[2])] and len(report["files"]) == len(expected)
    assert "in02.npz" in result.stderr and ("not processed" in result.stderr) != keep_going


def test_shard_defaults_to_the_slurm_array_task(weights, tmp_path, monkeypatch):
    inputs = _files(tmp_path, 5, frames=(12,))
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")  # --array=1-2: the second task
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    result = _refine(*inputs, "--out-dir", tmp_path / "out", "--weights", weights, "--json")
    assert [e["file"] for e in json.loads(result.stdout)["files"]] == [str(inputs[1]), str(inputs[3])]
    assert "shard 1/2 from SLURM_ARRAY_TASK_ID=2" in result.stderr and "1 CPU threads" in result.stderr
    explicit = _refine(*inputs, "--out-dir", tmp_path / "out2", "--weights", weights, "--shard", "0/3", "--threads", "1", "--json")
    assert [e["file"] for e in json.loads(explicit.stdout)["files"]] == [str(inputs[0]), str(inputs[3])]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "7")
    bad = _refine(*inputs, "--out-dir", tmp_path / "out3", "--weights", weights, code=2)
    assert bad.stderr.count("\n") == 1 and "give --shard I/N" in bad.stderr


def test_device_and_threads_options(weights, tmp_path):
    (path,) = _files(tmp_path, 1, frames=(12,))
    result = _refine(path, "-o", tmp_path / "a.npz", "--weights", weights, "--threads", "1", "--device", "CPU")
    assert "1 CPU threads" in result.stderr
    bad = _refine(path, "-o", tmp_path / "b.npz", "--device", "gpu0", code=2)
    assert bad.stderr.count("\n") == 1 and "expected auto, cpu, cuda or cuda:N" in bad.stderr
    if not torch.cuda.is_available():
        missing = _refine(path, "-o", tmp_path / "b.npz", "--device", "cuda:1", code=2)
        assert missing.stderr.count("\n") == 1 and "cuda:1 requested but CUDA is not available" in missing.stderr
    assert not (tmp_path / "b.npz").exists()
    assert "--threads" in _refine(path, "--threads", "0", code=2).stderr


@pytest.mark.cuda
def test_cuda_refines_as_the_cpu_does(refiner):
    groups = _groups([(30,), (9, 70)])
    options = {"steps": 3, "samples": 3, "seed": 2, "batch_size": 4}
    on_cpu = list(refiner.refine_stream(enumerate(groups), **options))
    on_gpu = list(Refiner(copy.deepcopy(refiner.model), refiner.noise, device="cuda:0").refine_stream(enumerate(groups), **options))
    for (_, a), (_, b) in zip(on_cpu, on_gpu):
        for x, y in zip(a, b):  # the sampling noise is drawn on the CPU: the same on both devices
            np.testing.assert_allclose(x.poses_3d, y.poses_3d, atol=1e-4, rtol=0)
            np.testing.assert_allclose(x.uncertainty, y.uncertainty, atol=1e-4, rtol=0)


@pytest.mark.cuda
def test_refine_on_a_numbered_cuda_device(weights, tmp_path):
    (path,) = _files(tmp_path, 1, frames=(30,))
    result = _refine(path, "-o", tmp_path / "a.npz", "--weights", weights, "--device", "cuda:0")
    assert "cuda:0" in result.stderr and load_poses(tmp_path / "a.npz")[0].provenance["refine"]["device"] == "cuda:0"
    missing = _refine(path, "-o", tmp_path / "b.npz", "--weights", weights, "--device", f"cuda:{torch.cuda.device_count()}", code=2)
    assert missing.stderr.count("\n") == 1 and "CUDA device(s)" in missing.stderr
