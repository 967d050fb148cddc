"""The error model: the one place where network output becomes metres, and the one sampling loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from d3prefine.error_model import ErrorModel
from d3prefine.noise import NoiseModel
from d3prefine.schedule import ErrorSchedule

NOISE = Path(__file__).resolve().parent.parent / "weights" / "noise.safetensors"


class ConstantNetwork(nn.Module):
    """Predicts the whitened error ``c * t / T`` everywhere (records the steps it was called with)."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c, self.calls = c, []

    def forward(self, x_t: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(t.tolist())
        return torch.full_like(x_t, self.c) * (t.float() / 100).reshape(-1, 1, 1, 1)


@pytest.fixture(scope="module")
def windows():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 27, 17, 2, generator=g) * 0.3, torch.randn(2, 27, 17, 3, generator=g) * 0.2


def test_predict_denormalizes_and_implies_the_clean_pose(windows):
    p, y = windows
    noise = NoiseModel.load(NOISE)
    model = ErrorModel(ConstantNetwork(0.5), noise, ErrorSchedule(100))
    mean = noise.mean(p, y)
    at_50 = model.predict(y, p, 50, mean)
    torch.testing.assert_close(at_50.error, noise.denormalize(torch.full_like(y, 0.25), mean))
    torch.testing.assert_close(at_50.clean, y - 0.5 * at_50.error)
    per_window = model.predict(y, p, torch.tensor([100, 20]), mean)  # one step per window, as in training
    torch.testing.assert_close(per_window.clean[1], y[1] - 0.2 * per_window.error[1])


def test_sample_runs_k_steps_from_the_estimator_output(windows):
    p, y = windows
    noise = NoiseModel.load(NOISE)
    network = ConstantNetwork(0.0)  # an untrained denoiser: e_hat is the conditional mean at every step
    model = ErrorModel(network, noise, ErrorSchedule(100))
    expected = y - noise.mean(p, y)
    for steps in (1, 2, 5):
        network.calls.clear()
        refined = model.sample(p, y, steps=steps)
        assert refined.shape == (1, *y.shape) and [c[0] for c in network.calls] == model.schedule.timesteps.tolist()
        torch.testing.assert_close(refined[0], expected, atol=1e-6, rtol=0)
    z = torch.randn(3, 2, *y.shape, generator=torch.Generator().manual_seed(1))
    sampled = model.sample(p, y, steps=2, eta=0.5, noise=z)  # S = 3 stochastic samples, each its own noise
    assert sampled.shape == (3, *y.shape) and not torch.allclose(sampled[0], sampled[1])
    torch.testing.assert_close(model.sample(p, y, steps=2, eta=0.5, noise=z), sampled)
