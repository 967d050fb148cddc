"""The method on the real example sequences shipped in examples/ (Bandai-Namco mocap, validation actor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from d3prefine.io import load_poses
from d3prefine.metrics import mpjpe
from d3prefine.model import DenoiserConfig
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.train import ForwardErrors, TrainConfig, Trainer, WindowSampler

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def sequences():
    return [seq for name in ("walk.npz", "wave.npz", "walk_frame_lifter.npz") for seq in load_poses(EXAMPLES / name)]


def _triples(sequences):
    return [error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in sequences]


def test_conditional_mean_reduces_the_error_it_was_fitted_on(sequences):
    noise = NoiseModel.fit(_triples(sequences), mode="full_body", layout="h36m17")
    for p, y, x in _triples(sequences):
        corrected = y - noise.mean(torch.from_numpy(p), torch.from_numpy(y)).numpy()
        assert mpjpe(corrected, x) < 0.9 * mpjpe(y, x)


def test_forward_process_at_step_T_has_the_fitted_error_statistics(sequences):
    noise = NoiseModel.fit(_triples(sequences), layout="h36m17")
    data = WindowSampler(sequences, window=27, root=0)
    trainer = Trainer(DenoiserConfig(window=27, dim=16, depth=1), TrainConfig(forward_errors=ForwardErrors.SAMPLED),
                      noise, data, data, torch.device("cpu"))
    index = torch.arange(len(data.starts))
    p, y, x = data.batch(index, torch.device("cpu"))
    mean = noise.mean(p, y)
    T = trainer.schedule.num_train_timesteps
    draws = torch.stack([trainer.schedule.add_noise(x, trainer._forward_errors(y, x, mean), torch.full((len(x),), T)) - x
                         for _ in range(4)])
    residual = (draws - mean).reshape(-1, 17, 3).double()
    for joint in (3, 13):  # an ankle and a wrist
        chol = noise.chol[joint].double()
        np.testing.assert_allclose(torch.cov(residual[:, joint].T).numpy(), (chol @ chol.T).numpy(), rtol=0.1, atol=2e-5)
        assert residual[:, joint].mean(0).abs().max() < 0.1 * chol.diagonal().min()
    assert torch.count_nonzero(residual[:, 0]) == 0  # the root never moves


def test_a_few_hundred_steps_on_one_real_sequence_reduce_the_training_loss(sequences):
    walk = sequences[:1]
    noise = NoiseModel.fit(_triples(sequences[1:]), layout="h36m17")  # fitted on the other sequences
    data = WindowSampler(walk, window=27, root=0)
    config = TrainConfig(steps=300, batch_size=8, lr=2e-3, warmup=30, objective="regression", velocity_weight=0.0)
    torch.manual_seed(0)
    trainer = Trainer(DenoiserConfig(window=27, dim=32, depth=2), config, noise, data, data, torch.device("cpu"))
    losses = [trainer.train_step() for _ in range(300)]
    assert np.mean(losses[-30:]) < 0.8 * np.mean(losses[:30])
