"""Data-parallel training with two CPU processes (gloo): each rank keeps its own random state
across ``--resume``, and the ``--max-minutes`` stop is rank 0's decision on every rank."""

from __future__ import annotations

import gc
import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from d3prefine.checkpoint import CHECKPOINT_FORMAT
from d3prefine.model import DenoiserConfig
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.tensorfile import read_tensors
from d3prefine.train import TrainConfig, Trainer, WindowSampler
from tests.conftest import build_sequence

TINY = DenoiserConfig(window=9, dim=16, depth=1, heads=2)
CONFIG = TrainConfig(steps=6, batch_size=4, warmup=2, eval_every=3, val_windows=4, forward_errors="mixed")


class _Crash(Exception):
    """Stands in for a job killed after its step-3 checkpoint."""


def _trainer() -> Trainer:
    sequences = [build_sequence(60, seed=s) for s in range(2)]
    noise = NoiseModel.fit([error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in sequences], layout="h36m17")
    data = WindowSampler(sequences, TINY.window, root=0)
    return Trainer(TINY, CONFIG, noise, data, data, torch.device("cpu"))


def _crash_after_3(step: int, loss: float) -> None:
    if step == 4:  # both ranks: step 3's checkpoint is written, step 4's gradients were exchanged
        raise _Crash


def _runs(rank: int, out: Path) -> None:
    _trainer().fit(out / "straight.safetensors", checkpoint=out / "straight.ckpt.safetensors")
    try:
        _trainer().fit(out / "crashed.safetensors", checkpoint=out / "resumed.ckpt.safetensors", on_step=_crash_after_3)
    except _Crash:
        pass
    resumed = _trainer()
    resumed.load_checkpoint(out / "resumed.ckpt.safetensors")
    assert resumed.state.step == 3
    resumed.fit(out / "resumed.safetensors", checkpoint=out / "resumed.ckpt.safetensors")
    # Rank 1's clock says the time is up, rank 0's does not: rank 0 decides, nobody hangs or stops early.
    skewed = _trainer()
    if rank == 1:
        import d3prefine.train

        readings = iter([0.0])  # fit's start, then a clock 10**9 s later on every later reading
        d3prefine.train.time = SimpleNamespace(monotonic=lambda: next(readings, 1e9))
    skewed.fit(out / "skewed.safetensors", max_minutes=60.0)
    assert skewed.state.step == CONFIG.steps


def _worker(rank: int, folder: str) -> None:
    torch.set_num_threads(1)
    out = Path(folder)
    dist.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=180))  # a rank left waiting fails, not hangs (180 s: slow spawns when busy)
    try:
        _runs(rank, out)
        # The trainers (and their DistributedDataParallel wrappers) are gone before the group is:
        # once, a rank aborted at exit ("terminate called without an active exception", SIGABRT).
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_process_resume_matches_an_uninterrupted_run(tmp_path):
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    mp.start_processes(_worker, args=(str(tmp_path),), nprocs=2, join=True, start_method="spawn")
    straight, _ = read_tensors(tmp_path / "straight.ckpt.safetensors", CHECKPOINT_FORMAT)
    resumed, meta = read_tensors(tmp_path / "resumed.ckpt.safetensors", CHECKPOINT_FORMAT)
    assert meta["step"] == "6" and meta["world_size"] == "2"
    assert straight.keys() == resumed.keys() and {"generator.0", "generator.1"} <= straight.keys()
    for name, value in straight.items():  # model, EMA, AdamW moments and both ranks' random states
        assert torch.equal(value, resumed[name]), name
    assert not torch.equal(straight["generator.0"], straight["generator.1"])  # the ranks draw different batches
    final, _ = read_tensors(tmp_path / "straight.safetensors", "d3prefine-denoiser")
    again, _ = read_tensors(tmp_path / "resumed.safetensors", "d3prefine-denoiser")
    assert all(torch.equal(final[name], again[name]) for name in final)
