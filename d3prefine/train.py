"""Training of the PoseDenoiser on estimator outputs paired with ground truth.

Each training example is a random window of ``W`` frames of one sequence, root-relative:
2D pose ``p``, estimator pose ``y`` and ground truth ``x``. A diffusion step ``t`` is drawn,
the clean pose is corrupted by the forward process ``x_t = x + s_t e`` and the network predicts
the whitened error, which the noise model de-normalizes to ``e_hat = E[e | p, y] + L z``. The
loss is measured on the implied clean pose ``x0_hat = x_t - s_t e_hat`` in metres (MPJPE, plus
an optional velocity term), so it weighs every step by how much it moves the pose.

Objectives (``objective``):
    diffusion   t = T for a share ``final_step_share`` of the windows (the step every
                refinement starts from, and the only one of K = 1), else uniform in 1..T;
    regression  t = T only with the real error: the same network as a plain one-shot regressor.
Forward errors (``forward_errors``):
    sampled     e drawn from the noise model's conditional law (the paper's forward process);
    real        e = y - x, the estimator's own error, scaled by s_t;
    mixed       half the windows of each batch one way, half the other.
Intermediate states (``intermediate_states``, diffusion windows with t < T):
    forward     the forward process above;
    sampler     the state a DDIM sampler reaches after its first step, from T to t:
                ``x_t = x_T - (1 - s_t) e_hat_T`` with ``x_T = x + e`` (the estimator output ``y``
                for real errors) and ``e_hat_T`` the current network's gradient-free estimate
                there; for real errors, the forward state with the real error replaced by the
                network's own estimate.
Anchor (``anchor``, fine-tuning only): after every AdamW step each weight moves toward the value
it started from by ``lr_t * anchor`` of the distance, ``w <- w - lr_t * anchor * (w - w_init)``
(L2-SP, Li et al. 2018, decoupled from the gradient as AdamW decouples its weight decay): with a
few pairs of a new estimator, a run learns what they share and forgets less of what the init
weights know. At the peak learning rate 2e-3 an anchor of 25 takes back 5 % of the drift per step
(at most all of it: ``lr_t * anchor`` is capped at 1).
Mirror (``mirror``): each training window is replaced, with that probability, by its mirror
image (:meth:`JointLayout.mirror`: camera x and image u negated, left and right joints swapped, in
2D, estimate and ground truth alike), the same transform ``refine --flip`` applies at test time.
Kept weights (``keep``): the EMA weights of the validation with the lowest MPJPE (``best``; a
fine-tuning run is validated at step 0 too, so it hands its start back when training only hurts)
or of the last step (``last``).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from d3prefine.architectures import build_denoiser
from d3prefine.checkpoint import TrainingProgress, load_checkpoint, save_checkpoint, save_denoiser
from d3prefine.config import DenoiserConfig, ForwardErrors, IntermediateStates, KeptWeights, Objective, TrainConfig
from d3prefine.error_model import ErrorModel
from d3prefine.io import PoseSequence
from d3prefine.metrics import mpjpe
from d3prefine.model import PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import model_inputs, root_relative
from d3prefine.runtime import derived_seed
from d3prefine.schedule import ErrorSchedule
from d3prefine.skeleton import get_layout
from d3prefine.windows import frame_indices, window_starts


class WindowSampler:
    """Random fixed-length windows over many sequences, held as three concatenated arrays.

    Sequences shorter than the window are edge-padded to it. Arrays (float32, root-relative):
    ``p (N, J, 2)`` normalized 2D, ``y (N, J, 3)`` and ``x (N, J, 3)`` metres. ``fps`` is the
    frame rate the sequences share (``None`` if any lacks one or they differ).
    """

    def __init__(self, sequences: Sequence[PoseSequence], window: int, root: int) -> None:
        p, y, x, starts, offset = [], [], [], [], 0
        for seq in sequences:
            if seq.gt_3d is None:
                raise ValueError(f"sequence {seq.name!r} has no gt_3d; training needs ground truth")
            inputs = model_inputs(seq.poses_2d, seq.poses_3d, seq.image_size, root)
            n = len(inputs.y)
            idx = np.arange(n) if n >= window else frame_indices(int(window_starts(n, window, window)[0]), n, window)
            p.append(inputs.p[idx])
            y.append(inputs.y[idx])
            x.append(root_relative(seq.gt_3d, root)[idx])
            starts.append(offset + np.arange(len(idx) - window + 1))
            offset += len(idx)
        if not starts:
            raise ValueError("no training sequences")
        self.p, self.y, self.x = (torch.from_numpy(np.concatenate(a).astype(np.float32)) for a in (p, y, x))
        self.starts = torch.from_numpy(np.concatenate(starts))
        self.window = window
        rates = {seq.fps for seq in sequences}
        self.fps = rates.pop() if len(rates) == 1 else None

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Windows starting at ``self.starts[index]``: ``p (B, W, J, 2)``, ``y``, ``x (B, W, J, 3)``."""
        frames = self.starts[index][:, None] + torch.arange(self.window)
        return tuple(a[frames].to(device) for a in (self.p, self.y, self.x))

    def sample(self, batch_size: int, generator: torch.Generator, device: torch.device):
        """A random batch (uniform over all window positions)."""
        return self.batch(torch.randint(len(self.starts), (batch_size,), generator=generator), device)

    def fixed(self, count: int, seed: int) -> torch.Tensor:
        """Indices of ``count`` fixed windows (for validation), drawn with ``seed``."""
        g = torch.Generator().manual_seed(seed)
        return torch.randperm(len(self.starts), generator=g)[:count]


def _loss(x0_hat: torch.Tensor, x: torch.Tensor, velocity_weight: float) -> torch.Tensor:
    """MPJPE of ``(B, W, J, 3)`` poses plus the weighted velocity error (metres)."""
    loss = mpjpe(x0_hat, x, root=None)
    if velocity_weight > 0:
        loss = loss + velocity_weight * mpjpe(x0_hat.diff(dim=1), x.diff(dim=1), root=None)
    return loss


def _lr_factor(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainState:
    """Everything that changes while training (saved in checkpoints)."""

    model: PoseDenoiser
    ema: PoseDenoiser
    optimizer: torch.optim.AdamW
    generator: torch.Generator
    step: int = 0
    history: list | None = None
    best_step: int | None = None  # the validation with the lowest MPJPE so far (rank 0; keep=best)
    best: dict[str, torch.Tensor] | None = None  # the EMA weights at best_step


class Trainer:
    """Trains a PoseDenoiser; single process or data parallel under ``torchrun``."""

    def __init__(
        self,
        model_config: DenoiserConfig,
        train_config: TrainConfig,
        noise: NoiseModel,
        train_data: WindowSampler,
        val_data: WindowSampler,
        device: torch.device,
        init: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """``init``: a state dict of ``model_config``'s network to start from (fine-tuning), else
        seeded random weights."""
        self.config = train_config
        self.device = device
        self.noise = noise.to(device)
        self.schedule = ErrorSchedule(model_config.num_train_timesteps)
        self.layout = get_layout(model_config.layout)
        self.train_data, self.val_data = train_data, val_data
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, the same on every process;
            torch.manual_seed(train_config.seed)  # the caller's global RNG state is left as it was
            model = build_denoiser(model_config)
        if init is not None:
            model.load_state_dict(init)
        model = model.to(device)
        ema = copy.deepcopy(model).requires_grad_(False)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
        generator = torch.Generator().manual_seed(train_config.seed + 1000 * self.rank)
        self.state = TrainState(model, ema, optimizer, generator, 0, [])
        self.parallel = (
            torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
            if self.world > 1
            else model
        )
        self.val_index = val_data.fixed(train_config.val_windows, seed=train_config.seed)
        self.fine_tuning = init is not None
        if train_config.anchor > 0 and not self.fine_tuning:
            raise ValueError("anchor > 0 pulls toward initial weights: it needs init (fine-tuning)")
        self.anchor = [p.detach().clone() for p in model.parameters()] if train_config.anchor > 0 else None

    def error_model(self, network: torch.nn.Module) -> ErrorModel:
        """``network`` (the trained model, its parallel wrapper or the EMA copy) with this run's noise statistics and schedule."""
        return ErrorModel(network, self.noise, self.schedule)

    # ------------------------------------------------------------------ one step
    def _forward_errors(self, y: torch.Tensor, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        real = y - x
        mode = self.config.forward_errors if self.config.objective is Objective.DIFFUSION else ForwardErrors.REAL
        if mode is ForwardErrors.REAL:
            return real
        sampled = self.noise.sample(mean, self.state.generator)
        if mode is ForwardErrors.SAMPLED:
            return sampled
        use_real = (torch.rand(len(y), generator=self.state.generator) < 0.5).to(y.device).reshape(-1, 1, 1, 1)
        return torch.where(use_real, real, sampled)

    def _sampler_states(self, x_t: torch.Tensor, x_T: torch.Tensor, p: torch.Tensor, mean: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` with the windows at t < T replaced by the first DDIM step's state ``x_T - (1 - s_t) e_hat_T`` (metres)."""
        T = self.schedule.num_train_timesteps
        inner = t < T
        if not bool(inner.any()):
            return x_t
        with torch.no_grad():
            e_T = self.error_model(self.state.model).predict(x_T[inner], p[inner], T, mean[inner]).error
        x_t = x_t.clone()
        x_t[inner] = self.schedule.add_noise(x_T[inner] - e_T, e_T, t[inner])  # x0_hat_T + s_t e_hat_T, as ErrorSchedule.step moves
        return x_t

    def train_step(self) -> float:
        """One optimizer step; returns the loss (metres)."""
        st, cfg = self.state, self.config
        p, y, x = self.train_data.sample(cfg.batch_size, st.generator, self.device)
        T = self.schedule.num_train_timesteps
        if cfg.objective is Objective.REGRESSION:
            t = torch.full((len(y),), T)
        else:
            t = torch.randint(1, T + 1, (len(y),), generator=st.generator)
            t[torch.rand(len(y), generator=st.generator) < cfg.final_step_share] = T
        t = t.to(self.device)
        if cfg.mirror > 0:  # drawn after t, so mirror 0 leaves every other draw as it was
            flip = (torch.rand(len(y), generator=st.generator) < cfg.mirror).to(self.device).reshape(-1, 1, 1, 1)
            p, y, x = (torch.where(flip, self.layout.mirror(a), a) for a in (p, y, x))
        mean = self.noise.mean(p, y)
        error = self._forward_errors(y, x, mean)
        x_t = self.schedule.add_noise(x, error, t)
        if cfg.intermediate_states is IntermediateStates.SAMPLER:
            x_t = self._sampler_states(x_t, x + error, p, mean, t)
        x0_hat = self.error_model(self.parallel).predict(x_t, p, t, mean).clean
        loss = _loss(x0_hat, x, cfg.velocity_weight)
        lr = cfg.lr * _lr_factor(st.step, cfg)
        for group in st.optimizer.param_groups:
            group["lr"] = lr
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.model.parameters(), 1.0)
        st.optimizer.step()
        with torch.no_grad():
            if self.anchor is not None:  # decoupled pull toward the init weights (module docstring)
                pull = min(1.0, lr * cfg.anchor)  # 1: back to the init weights
                for m, a in zip(st.model.parameters(), self.anchor):
                    m.lerp_(a, pull)
            for e, m in zip(st.ema.parameters(), st.model.parameters()):
                e.lerp_(m, 1.0 - cfg.ema_decay)
        st.step += 1
        return float(loss.detach())

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, batch_size: int = 256) -> dict[str, float]:
        """MPJPE (mm) on the fixed validation windows: input, conditional mean only, EMA model (K=1)."""
        totals = np.zeros(3)
        ema = self.error_model(self.state.ema)
        for chunk in self.val_index.split(batch_size):
            p, y, x = self.val_data.batch(chunk, self.device)
            refined = ema.sample(p, y, steps=1)[0]
            for k, pose in enumerate((y, y - self.noise.mean(p, y), refined)):
                totals[k] += float(mpjpe(pose, x, root=None)) * len(chunk)
        totals *= 1000.0 / len(self.val_index)  # metres -> millimetres
        return {"val_input_mpjpe": totals[0], "val_gaussian_mean_mpjpe": totals[1], "val_mpjpe": totals[2]}

    # ------------------------------------------------------------------ loop
    def _agreed(self, decision: bool) -> bool:
        """Rank 0's ``decision``, the same on every rank (broadcast under ``torchrun``), so that all
        ranks stop at the same step and none waits forever in a collective of the next one."""
        if self.world == 1:
            return decision
        flag = torch.tensor([float(decision)], device=self.device)
        dist.broadcast(flag, src=0)
        return bool(flag.item())

    def fit(
        self,
        out: Path,
        *,
        checkpoint: Path | None = None,
        max_minutes: float | None = None,
        on_step: Callable[[int, float], None] | None = None,
        on_eval: Callable[[dict], None] | None = None,
        info: dict | None = None,
    ) -> list[dict]:
        """Train until ``config.steps`` (or ``max_minutes``), validating and checkpointing every
        ``eval_every`` steps; write the EMA weights to ``out``. Returns the validation history."""
        st, cfg = self.state, self.config
        start, losses = time.monotonic(), []
        if self.fine_tuning and st.step == 0 and self.rank == 0:
            self._record({"step": 0, **self.validate()}, on_eval)  # the weights it starts from
        while st.step < cfg.steps:
            losses.append(self.train_step())
            if on_step is not None:
                on_step(st.step, losses[-1])
            # max_minutes is the same on every rank: without it no rank needs rank 0's clock
            timed_out = max_minutes is not None and self._agreed(time.monotonic() - start > 60.0 * max_minutes)
            if st.step % cfg.eval_every == 0 or st.step == cfg.steps or timed_out:
                if self.rank == 0:
                    self._record({"step": st.step, "train_loss_mm": 1000.0 * float(np.mean(losses)), **self.validate()}, on_eval)
                    losses = []
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint)  # every rank: their random states are gathered
                if self.world > 1:
                    dist.barrier()
            if timed_out:
                break
        if self.rank == 0:
            kept = self.kept_model()
            info = {**(info or {}), "train_config": asdict(cfg), "steps_done": st.step, "kept_step": self.kept_step, "history": st.history}
            save_denoiser(out, kept, info, fps=self.train_data.fps, noise_digest=self.noise.digest())
        return st.history

    def _record(self, record: dict, on_eval: Callable[[dict], None] | None) -> None:
        """Append a validation ``record`` to the history; with ``keep=best`` remember the EMA weights
        when its MPJPE is the lowest so far."""
        st = self.state
        if self.config.keep is KeptWeights.BEST:
            best = next((r["val_mpjpe"] for r in st.history if r["step"] == st.best_step), float("inf"))
            if st.best is None or record["val_mpjpe"] < best:
                st.best_step, st.best = record["step"], {k: v.detach().clone() for k, v in st.ema.state_dict().items()}
        st.history.append(record)
        if on_eval is not None:
            on_eval(record)

    @property
    def kept_step(self) -> int:
        """The step whose EMA weights :meth:`kept_model` returns."""
        st = self.state
        return st.step if self.config.keep is KeptWeights.LAST or st.best is None else st.best_step

    def kept_model(self) -> PoseDenoiser:
        """The network :meth:`fit` writes: the EMA weights of the best validation so far
        (``keep=best``; rank 0 validates) or of the last step (``keep=last``, or before any validation)."""
        st = self.state
        if self.kept_step == st.step:
            return st.ema
        kept = copy.deepcopy(st.ema)
        kept.load_state_dict(st.best)
        return kept

    # ------------------------------------------------------------------ checkpoints
    def _generator_states(self) -> list[torch.Tensor]:
        """The sampler's random state of every rank, in rank order (a collective under ``torchrun``)."""
        state = self.state.generator.get_state()
        if self.world == 1:
            return [state]
        on_device = state.to(self.device)  # NCCL gathers device tensors only
        states = [torch.empty_like(on_device) for _ in range(self.world)]
        dist.all_gather(states, on_device)
        return [s.cpu() for s in states]

    def save_checkpoint(self, path: Path) -> None:
        """Model, EMA, AdamW moments and every rank's sampler state, atomically. Under ``torchrun``
        every rank must call it (the random states are gathered); rank 0 writes the file."""
        st = self.state
        progress = TrainingProgress(st.step, st.history, self._generator_states(), self.noise.digest(), st.best_step, st.best)
        if self.rank == 0:
            save_checkpoint(path, model=st.model, ema=st.ema, optimizer=st.optimizer, progress=progress, train_config=asdict(self.config))

    def load_checkpoint(self, path: Path) -> None:
        """Resume from :meth:`save_checkpoint`'s file; the architecture and the noise statistics
        (when the checkpoint records their digest) must match, else a one-line error. Each rank takes
        its own random state back; a rank the checkpoint has none for (resumed on more processes)
        draws from a generator seeded by the seed, its rank and the step."""
        st = self.state
        progress = load_checkpoint(path, model=st.model, ema=st.ema, optimizer=st.optimizer, noise_digest=self.noise.digest())
        if self.rank < len(progress.generator_states):
            st.generator.set_state(progress.generator_states[self.rank])
        else:
            st.generator.manual_seed(derived_seed(self.config.seed, self.rank, progress.step))
        st.step, st.history, st.best_step, st.best = progress.step, progress.history, progress.best_step, progress.best


def init_distributed(device: str) -> tuple[torch.device, bool]:
    """Join the ``torchrun`` process group when launched by it; returns this process's device and
    whether a group was joined. Outside ``torchrun`` nothing happens."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return torch.device(device), False
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.device(device).type == "cuda"
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank), True
    return torch.device("cpu"), True
