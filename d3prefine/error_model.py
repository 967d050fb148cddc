"""The error model: a denoiser network, the noise statistics it was trained with, and the schedule.

The network predicts a whitened error ``z``; the noise statistics turn it into metres,
``e_hat = E[e | p, y] + L z`` (:meth:`ErrorModel.predict`, the one place where that happens), and
the schedule moves a pose by it (:meth:`ErrorModel.sample`, the one reverse-diffusion loop, in
the spirit of a diffusers pipeline: ``schedule.set_timesteps(K)``, then ``schedule.step`` for each
of the K steps). :class:`~d3prefine.refine.Refiner`, training (its loss and validation) and the
benchmark probes all go through it.

Poses are root-relative windows, ``(B, W, J, 3)`` metres (camera frame); 2D poses ``(B, W, J, 2)``
normalized screen units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from d3prefine.noise import NoiseModel
from d3prefine.schedule import ErrorSchedule


@dataclass(frozen=True)
class Prediction:
    """The network's estimate at one step.

    Attributes:
        error: ``e_hat (B, W, J, 3)`` metres, the error the state is believed to carry at full scale.
        clean: ``x0_hat = x_t - s_t e_hat (B, W, J, 3)`` metres, the implied clean pose.
    """

    error: torch.Tensor
    clean: torch.Tensor


class ErrorModel:
    """``network`` (a :class:`~d3prefine.model.PoseDenoiser`, or a wrapper of one such as
    ``DistributedDataParallel``) with its ``noise`` statistics and ``schedule``, on the noise's device."""

    def __init__(self, network: nn.Module, noise: NoiseModel, schedule: ErrorSchedule) -> None:
        self.network, self.noise, self.schedule = network, noise, schedule

    def predict(self, x_t: torch.Tensor, p: torch.Tensor, t: torch.Tensor | int, mean: torch.Tensor) -> Prediction:
        """The estimate from state ``x_t`` at step ``t`` (an int, or one step per window ``(B,)``).

        ``mean`` is the conditional error mean ``noise.mean(p, y)`` of the windows (computed once
        by the caller: it depends on the estimator output ``y``, not on the state).
        """
        steps = torch.full((len(x_t),), t, device=x_t.device) if isinstance(t, int) else t
        error = self.noise.denormalize(self.network(x_t, p, steps), mean)
        return Prediction(error=error, clean=self.schedule.remove_error(x_t, error, t))

    def sample(
        self,
        p: torch.Tensor,
        y: torch.Tensor,
        *,
        steps: int = 1,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Refine estimator windows ``y`` by ``steps`` (K) reverse steps from t = T.

        Args:
            p: ``(B, W, J, 2)`` 2D poses; y: ``(B, W, J, 3)`` estimator poses, metres.
            steps: K evenly spaced steps (1 = the one-shot residual correction ``y - e_hat``).
            eta: stochasticity, used with ``noise``.
            noise: whitened noise ``(S, K, B, W, J, 3)`` for S stochastic samples (DDIM with
                ``eta``), drawn by the caller; ``None`` for the deterministic refinement (S = 1).

        Returns:
            ``(S, B, W, J, 3)`` metres.
        """
        self.schedule.set_timesteps(steps)
        mean = self.noise.mean(p, y)
        no_error = None if noise is None else torch.zeros_like(mean)  # sampled errors are L z around zero
        timesteps = self.schedule.timesteps.tolist()
        first = self.predict(y, p, timesteps[0], mean).error  # every sample starts from y at t = T
        samples = []
        for s in range(1 if noise is None else len(noise)):
            x = y
            for k, t in enumerate(timesteps):
                e_hat = first if k == 0 else self.predict(x, p, t, mean).error
                fresh = None if noise is None else self.noise.denormalize(noise[s, k].to(y.device), no_error)  # L z, metres
                x = self.schedule.step(e_hat, t, x, eta=0.0 if noise is None else eta, error_mean=mean, variance_noise=fresh).prev_sample
            samples.append(x)
        return torch.stack(samples)
