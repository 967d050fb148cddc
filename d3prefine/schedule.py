"""The error-diffusion schedule: forward corruption and deterministic DDIM-style reverse steps.

A diffusion step ``t`` in ``0..T`` has an error scale ``s_t`` rising linearly from 0 (clean)
to 1 (as noisy as the estimator). The forward process corrupts a clean pose with an error
``e`` (from the noise model):

    x_t = x_0 + s_t * e

so ``x_T`` looks like an estimator output. The reverse process starts at ``x_T = y`` (the
estimator output) and, given the network's error estimate ``e_hat`` at step ``t``, moves to
the previous step of a K-step subsequence (DDIM with eta = 0):

    x0_hat = x_t - s_t * e_hat
    x_prev = x0_hat + s_prev * e_dir,    e_dir = e_hat

With K = 1 the single step goes from T to 0 and equals the one-shot residual correction
``y - e_hat``. With ``eta > 0`` (stochastic sampling) the direction is partly replaced by a
fresh zero-mean error ``n ~ N(0, L L^T)`` supplied by the caller:
``e_dir = mean + sqrt(1 - eta^2) (e_hat - mean) + eta * n``.
Poses are ``(..., J, 3)`` metres throughout; the schedule itself has no device or randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepOutput:
    """Result of one reverse step.

    Attributes:
        prev_sample: the pose at the previous step of the subsequence, ``(..., J, 3)`` metres.
        pred_original_sample: the current estimate of the clean pose ``x0_hat``, ``(..., J, 3)``.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class ErrorSchedule:
    """Linear error-scale schedule over ``num_train_timesteps`` steps (``T``)."""

    def __init__(self, num_train_timesteps: int = 100) -> None:
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        self.num_train_timesteps = num_train_timesteps
        self.timesteps = torch.tensor([num_train_timesteps])

    def scale(self, t: torch.Tensor | int) -> torch.Tensor:
        """Error scale ``s_t = t / T`` in ``[0, 1]`` (float tensor of ``t``'s shape)."""
        return torch.as_tensor(t, dtype=torch.float32) / self.num_train_timesteps

    def _scale_like(self, t: torch.Tensor | int, poses: torch.Tensor) -> torch.Tensor | float:
        """``s_t`` broadcastable over poses ``(B, ..., J, 3)``: a float for one step, ``(B, 1, ...)`` for steps ``(B,)``."""
        s = self.scale(t)
        return float(s) if s.dim() == 0 else s.to(poses.device).reshape(-1, *([1] * (poses.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, error: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Forward process ``x_t = x0 + s_t e`` for poses ``(B, ..., J, 3)`` and steps ``t (B,)``."""
        return x0 + self._scale_like(t, x0) * error

    def remove_error(self, sample: torch.Tensor, error: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """The clean pose ``x0_hat = x_t - s_t e`` implied by an error estimate, for poses
        ``(B, ..., J, 3)`` at one step ``t`` or at steps ``t (B,)`` (the inverse of :meth:`add_noise`)."""
        return sample - self._scale_like(t, sample) * error

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose the K reverse steps: ``K`` evenly spaced steps from ``T`` down to ``T / K``."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"steps must be in 1..{self.num_train_timesteps}, got {num_inference_steps}")
        k = num_inference_steps
        self.timesteps = torch.tensor([math.ceil(self.num_train_timesteps * (k - i) / k) for i in range(k)])

    def previous_timestep(self, t: int) -> int:
        """The step after ``t`` in the current subsequence (0 after the last)."""
        later = [int(s) for s in self.timesteps if s < t]
        return later[0] if later else 0

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        eta: float = 0.0,
        error_mean: torch.Tensor | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> StepOutput:
        """One reverse step from ``timestep`` with the predicted error ``model_output`` (metres).

        ``eta = 0`` is deterministic. ``eta > 0`` needs ``error_mean`` (the conditional mean)
        and ``variance_noise`` (a zero-mean error sample, drawn by the caller with its own
        ``torch.Generator``).
        """
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        s_prev = float(self.scale(self.previous_timestep(timestep)))
        x0_hat = self.remove_error(sample, model_output, timestep)
        direction = model_output
        if eta > 0.0:
            if error_mean is None or variance_noise is None:
                raise ValueError("eta > 0 needs error_mean and variance_noise")
            direction = error_mean + math.sqrt(1.0 - eta**2) * (model_output - error_mean) + eta * variance_noise
        return StepOutput(prev_sample=x0_hat + s_prev * direction, pred_original_sample=x0_hat)
