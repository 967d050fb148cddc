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
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from d3prefine.architectures import build_denoiser
from d3prefine.checkpoint import CHECKPOINT_FORMAT, NOISE_DIGEST_KEY, save_denoiser
from d3prefine.error_model import ErrorModel
from d3prefine.errors import UsageError, WeightsError
from d3prefine.io import PoseSequence
from d3prefine.metrics import mpjpe
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import model_inputs, root_relative
from d3prefine.schedule import ErrorSchedule
from d3prefine.tensorfile import read_tensors, write_tensors
from d3prefine.windows import frame_indices, window_starts


class Objective(str, Enum):
    """What the network is trained for (see the module docstring)."""

    DIFFUSION = "diffusion"
    REGRESSION = "regression"


class ForwardErrors(str, Enum):
    """Which errors corrupt the clean poses in the forward process (see the module docstring)."""

    SAMPLED = "sampled"
    REAL = "real"
    MIXED = "mixed"


class IntermediateStates(str, Enum):
    """What the diffusion windows with t < T start from (see the module docstring)."""

    FORWARD = "forward"
    SAMPLER = "sampler"


#: Warm-up and EMA span: an eighth of the run, at most 500 steps. At the shipped recipe's 4,000
#: steps (and beyond) that is the warm-up of 500 steps and the EMA decay 0.998 (a 500-step
#: average) used before; a short run warms up and averages over its own first and last eighth.
MAX_SPAN_STEPS = 500
SPAN_SHARE = 1 / 8


def default_span(steps: int) -> float:
    """Steps of warm-up and of EMA averaging for a run of ``steps``: ``min(500, steps / 8)``, >= 1."""
    return max(1.0, min(float(MAX_SPAN_STEPS), SPAN_SHARE * steps))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (stored with the weights)."""

    steps: int = 4000  # optimizer steps (about an hour on 2 CPU cores)
    batch_size: int = 64  # windows per step (per process)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int | None = None  # linear warm-up steps, then cosine decay to lr / 20; None: round(default_span(steps))
    ema_decay: float | None = None  # None: 1 - 1 / default_span(steps) (0.998 from 4,000 steps on)
    velocity_weight: float = 1.0  # weight of the velocity error in the loss
    objective: Objective = Objective.DIFFUSION
    forward_errors: ForwardErrors = ForwardErrors.REAL
    final_step_share: float = 0.5  # diffusion: share of windows trained at t = T (the rest: t uniform in 1..T)
    intermediate_states: IntermediateStates = IntermediateStates.SAMPLER
    eval_every: int = 1000  # steps between validations (an "epoch")
    val_windows: int = 1024  # fixed validation windows
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup is None:
            object.__setattr__(self, "warmup", round(default_span(self.steps)))
        if self.ema_decay is None:
            object.__setattr__(self, "ema_decay", 1.0 - 1.0 / default_span(self.steps))
        if self.warmup < 1 or not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"warmup must be >= 1 and ema_decay in [0, 1], got {self.warmup} and {self.ema_decay}")
        object.__setattr__(self, "objective", Objective(self.objective))  # unknown names raise ValueError
        object.__setattr__(self, "forward_errors", ForwardErrors(self.forward_errors))
        object.__setattr__(self, "intermediate_states", IntermediateStates(self.intermediate_states))
        if not 0.0 <= self.final_step_share <= 1.0:
            raise ValueError(f"final_step_share must be in [0, 1], got {self.final_step_share}")
        if min(self.steps, self.batch_size, self.eval_every, self.val_windows) < 1:
            raise ValueError("steps, batch_size, eval_every and val_windows must be >= 1")


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
            e_T = self.error_model(self.state.model).predict(x_T[inner], p[inner], torch.full_like(t[inner], T), mean[inner]).error
        x_t = x_t.clone()
        x_t[inner] = self.schedule.add_noise(x_T[inner] - e_T, e_T, t[inner])  # x0_hat_T + s_t e_hat_T, as ErrorSchedule.step moves
        return x_t

    def train_step(self) -> float:
        """One optimizer step; returns the loss (metres)."""
        st, cfg = self.state, self.config
        p, y, x = self.train_data.sample(cfg.batch_size, st.generator, self.device)
        mean = self.noise.mean(p, y)
        T = self.schedule.num_train_timesteps
        if cfg.objective is Objective.REGRESSION:
            t = torch.full((len(y),), T)
        else:
            t = torch.randint(1, T + 1, (len(y),), generator=st.generator)
            t[torch.rand(len(y), generator=st.generator) < cfg.final_step_share] = T
        t = t.to(self.device)
        error = self._forward_errors(y, x, mean)
        x_t = self.schedule.add_noise(x, error, t)
        if cfg.intermediate_states is IntermediateStates.SAMPLER:
            x_t = self._sampler_states(x_t, x + error, p, mean, t)
        x0_hat = self.error_model(self.parallel).predict(x_t, p, t, mean).clean
        loss = _loss(x0_hat, x, cfg.velocity_weight)
        for group in st.optimizer.param_groups:
            group["lr"] = cfg.lr * _lr_factor(st.step, cfg)
        st.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.model.parameters(), 1.0)
        st.optimizer.step()
        with torch.no_grad():
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
        while st.step < cfg.steps:
            losses.append(self.train_step())
            if on_step is not None:
                on_step(st.step, losses[-1])
            timed_out = max_minutes is not None and time.monotonic() - start > 60.0 * max_minutes
            if st.step % cfg.eval_every == 0 or st.step == cfg.steps or timed_out:
                if self.rank == 0:
                    record = {"step": st.step, "train_loss_mm": 1000.0 * float(np.mean(losses)), **self.validate()}
                    st.history.append(record)
                    losses = []
                    if on_eval is not None:
                        on_eval(record)
                    if checkpoint is not None:
                        self.save_checkpoint(checkpoint)
                if self.world > 1:
                    dist.barrier()
            if timed_out:
                break
        if self.rank == 0:
            info = {**(info or {}), "train_config": asdict(cfg), "steps_done": st.step, "history": st.history}
            save_denoiser(out, st.ema, info, fps=self.train_data.fps, noise_digest=self.noise.digest())
        return st.history

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        """Model, EMA, AdamW moments and sampler state, atomically."""
        st = self.state
        tensors = {f"model.{k}": v for k, v in st.model.state_dict().items()}
        tensors |= {f"ema.{k}": v for k, v in st.ema.state_dict().items()}
        for i, s in st.optimizer.state_dict()["state"].items():
            tensors |= {f"optim.{i}.{k}": torch.as_tensor(v) for k, v in s.items()}
        tensors["generator"] = st.generator.get_state()
        meta = {
            "format": CHECKPOINT_FORMAT,
            "config": st.model.config.to_json(),
            "train_config": json.dumps(asdict(self.config)),
            "step": str(st.step),
            "history": json.dumps(st.history),
            NOISE_DIGEST_KEY: self.noise.digest(),
        }
        write_tensors(path, tensors, meta)

    def load_checkpoint(self, path: Path) -> None:
        """Resume from :meth:`save_checkpoint`'s file; the architecture and the noise statistics
        (when the checkpoint records their digest) must match, else a one-line error."""
        tensors, meta = read_tensors(path, CHECKPOINT_FORMAT)
        try:
            self._restore(tensors, meta, path)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a damaged or foreign checkpoint
            raise WeightsError(f"{path}: not a complete checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, str], path: Path) -> None:
        st = self.state
        if DenoiserConfig.from_json(meta["config"]) != st.model.config:
            raise WeightsError(f"{path}: checkpoint architecture differs from the requested one ({meta['config']})")
        recorded = meta.get(NOISE_DIGEST_KEY)  # absent from checkpoints written before it was recorded
        if recorded is not None and recorded != self.noise.digest():
            raise UsageError(f"{path}: the checkpoint was trained with other noise statistics than --noise; resume with the same --noise")
        st.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        st.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        optim = st.optimizer.state_dict()
        for i in optim["param_groups"][0]["params"]:
            prefix = f"optim.{i}."
            entries = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entries:
                optim["state"][i] = entries
        st.optimizer.load_state_dict(optim)
        st.generator.set_state(tensors["generator"])
        st.step = int(meta["step"])
        st.history = json.loads(meta["history"])


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
