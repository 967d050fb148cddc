"""Two base 2D -> 3D lifters whose errors the refiner learns to fix, and their CPU training.

* :class:`TemporalLifter`: VideoPose3D (Pavllo et al. 2019) dilated temporal convolutions,
  filter widths ``(3, 3, 3)`` -> a symmetric receptive field of 27 frames.
* :class:`FrameLifter`: single-frame residual MLP (Martinez et al. 2017).

Both take VideoPose3D-normalized 2D (``d3prefine.preprocess.normalize_screen``) ``(B, T, J, 2)``
and return root-relative 3D in the camera frame, metres, ``(B, T - 2 * pad, J, 3)`` with the root
joint exactly 0 (only the ``J - 1`` other joints are predicted). :func:`predict` replicate-pads
the sequence ends so that its output has as many frames as its input.

Weights are saved as safetensors with the model config as JSON in the metadata (no pickle).

The dataset builds (:mod:`recipes.build_dataset`, :mod:`recipes.h36m_build`) train the same two
estimators, :data:`LIFTERS`, on :func:`lifter_input` with :func:`fit_and_save` (the Bandai-Namco
build through :func:`cross_fit`, as :mod:`recipes.estimator_pool` does for its other lifters), and
score them with :func:`pooled_errors_mm`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from enum import Enum
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from d3prefine.errors import WeightsError
from d3prefine.metrics import mpjpe, p_mpjpe
from d3prefine.preprocess import normalize_screen
from d3prefine.skeleton import H36M_17


class LifterKind(str, Enum):
    TEMPORAL = "temporal"
    FRAME = "frame"

    @property
    def estimator_name(self) -> str:
        """The estimator's name in provenance and build summaries: its lifter's class name."""
        return {LifterKind.TEMPORAL: "TemporalLifter", LifterKind.FRAME: "FrameLifter"}[self]


def _with_root(offsets: torch.Tensor, root: int) -> torch.Tensor:
    """Insert a zero root joint: ``(..., J-1, 3)`` -> ``(..., J, 3)``."""
    zero = torch.zeros_like(offsets[..., :1, :])
    return torch.cat([offsets[..., :root, :], zero, offsets[..., root:, :]], dim=-2)


class TemporalLifter(nn.Module):
    """Dilated temporal convolutions; ``pad = receptive_field // 2`` frames lost at each end."""

    def __init__(self, num_joints: int = 17, channels: int = 256, filter_widths: tuple[int, ...] = (3, 3, 3), dropout: float = 0.1, root: int = 0):
        super().__init__()
        self.num_joints, self.root = num_joints, root
        self.expand = nn.Sequential(
            nn.Conv1d(num_joints * 2, channels, filter_widths[0], bias=False),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        blocks = []
        dilation = filter_widths[0]
        for width in filter_widths[1:]:
            blocks.append(
                nn.Sequential(
                    nn.Conv1d(channels, channels, width, dilation=dilation, bias=False),
                    nn.BatchNorm1d(channels),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                    nn.Conv1d(channels, channels, 1, bias=False),
                    nn.BatchNorm1d(channels),
                    nn.ReLU(),
                    nn.Dropout(dropout),
                )
            )
            dilation *= width
        self.blocks = nn.ModuleList(blocks)
        self.shrink = nn.Conv1d(channels, (num_joints - 1) * 3, 1)
        self.receptive_field = math.prod(filter_widths)
        self.pad = self.receptive_field // 2

    def forward(self, poses_2d: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, 2)`` -> ``(B, T - 2 * pad, J, 3)``."""
        b, t = poses_2d.shape[:2]
        x = self.expand(poses_2d.reshape(b, t, -1).transpose(1, 2))
        for block in self.blocks:
            y = block(x)
            cut = (x.shape[-1] - y.shape[-1]) // 2
            x = x[..., cut : x.shape[-1] - cut] + y
        out = self.shrink(x).transpose(1, 2).reshape(b, -1, self.num_joints - 1, 3)
        return _with_root(out, self.root)


class FrameLifter(nn.Module):
    """Residual MLP applied to every frame independently (``pad = 0``)."""

    def __init__(self, num_joints: int = 17, width: int = 512, blocks: int = 2, dropout: float = 0.2, root: int = 0):
        super().__init__()
        self.num_joints, self.root, self.pad = num_joints, root, 0

        def layer() -> list[nn.Module]:
            return [nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]

        self.expand = nn.Sequential(nn.Linear(num_joints * 2, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.ModuleList(nn.Sequential(*layer(), *layer()) for _ in range(blocks))
        self.shrink = nn.Linear(width, (num_joints - 1) * 3)

    def forward(self, poses_2d: torch.Tensor) -> torch.Tensor:
        """``(B, T, J, 2)`` -> ``(B, T, J, 3)``."""
        b, t = poses_2d.shape[:2]
        x = self.expand(poses_2d.reshape(b * t, -1))
        for block in self.blocks:
            x = x + block(x)
        return _with_root(self.shrink(x).reshape(b, t, self.num_joints - 1, 3), self.root)


@dataclass(frozen=True)
class LifterConfig:
    """Architecture of a lifter (stored in the safetensors metadata)."""

    kind: LifterKind
    num_joints: int = 17
    width: int = 256  # TemporalLifter channels or FrameLifter hidden width
    dropout: float = 0.1
    root: int = 0
    filter_widths: tuple[int, ...] = (3, 3, 3)  # TemporalLifter only: receptive field = their product
    blocks: int = 2  # FrameLifter only: residual blocks

    def build(self) -> nn.Module:
        if self.kind == LifterKind.TEMPORAL:
            return TemporalLifter(self.num_joints, self.width, tuple(self.filter_widths), dropout=self.dropout, root=self.root)
        if self.kind == LifterKind.FRAME:
            return FrameLifter(self.num_joints, self.width, self.blocks, dropout=self.dropout, root=self.root)
        raise ValueError(f"unknown lifter kind {self.kind!r}")

    def as_dict(self) -> dict:
        """The fields, JSON-ready (``kind`` as its string value)."""
        return {**asdict(self), "kind": self.kind.value, "filter_widths": list(self.filter_widths)}

    @classmethod
    def from_dict(cls, raw: dict) -> LifterConfig:
        """Inverse of :meth:`as_dict` (files written before ``filter_widths``/``blocks`` get the defaults)."""
        fields = {**raw, "kind": LifterKind(raw["kind"])}
        if "filter_widths" in fields:
            fields["filter_widths"] = tuple(fields["filter_widths"])
        return cls(**fields)


#: The base estimators of the dataset builds: the architecture of each kind.
LIFTERS = {
    LifterKind.TEMPORAL: LifterConfig(LifterKind.TEMPORAL, width=256, dropout=0.1),
    LifterKind.FRAME: LifterConfig(LifterKind.FRAME, width=512, dropout=0.2),
}


@dataclass(frozen=True)
class FitConfig:
    """Training schedule (a fixed number of steps, so runs are reproducible).

    Attributes:
        steps: optimizer steps.
        batch_frames: supervised output frames per step.
        chunk: output frames per training chunk of the TemporalLifter (``batch_frames / chunk`` chunks).
        lr, lr_final: Adam learning rate, decayed exponentially from ``lr`` to ``lr_final``.
        flip: horizontal-flip augmentation (image x and camera x mirrored, left/right swapped).
        seed: torch and sampling seed.
    """

    steps: int = 1500
    batch_frames: int = 2048
    chunk: int = 32
    lr: float = 1e-3
    lr_final: float = 5e-5
    flip: bool = True
    seed: int = 0


class _Batches:
    """Random training batches from windows of normalized 2D ``(T, J, 2)`` and root-relative 3D ``(T, J, 3)``."""

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray], pad: int, chunk: int, rng: np.random.Generator):
        lengths = np.array([len(x) for x in inputs])
        self.pad, self.chunk, self.rng = pad, chunk, rng
        self.x = torch.from_numpy(np.concatenate([np.pad(x, ((pad, pad), (0, 0), (0, 0)), mode="edge") for x in inputs]).astype(np.float32))
        self.y = torch.from_numpy(np.concatenate(targets).astype(np.float32))
        self.y_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self.x_start = self.y_start + 2 * pad * np.arange(len(lengths))
        self.positions = np.maximum(lengths - chunk + 1, 0)  # valid chunk starts per window
        if self.positions.sum() == 0:
            raise ValueError(f"no training window has {chunk} frames")
        self.weights = self.positions / self.positions.sum()

    def sample(self, num_chunks: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(num_chunks, chunk + 2 pad, J, 2)`` inputs and ``(num_chunks, chunk, J, 3)`` targets."""
        window = self.rng.choice(len(self.weights), size=num_chunks, p=self.weights)
        start = (self.rng.random(num_chunks) * self.positions[window]).astype(np.int64)
        x_idx = (self.x_start[window] + start)[:, None] + np.arange(self.chunk + 2 * self.pad)
        y_idx = (self.y_start[window] + start)[:, None] + np.arange(self.chunk)
        return self.x[torch.from_numpy(x_idx)], self.y[torch.from_numpy(y_idx)]


def _flip(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror the samples selected by ``mask`` (B,): negate image u / camera x and swap left-right joints."""
    m = mask[:, None, None, None]
    return torch.where(m, H36M_17.mirror(x), x), torch.where(m, H36M_17.mirror(y), y)


def fit(config: LifterConfig, fit_config: FitConfig, inputs: list[np.ndarray], targets: list[np.ndarray], progress=None) -> nn.Module:
    """Train a lifter with MPJPE loss and Adam.

    Args:
        inputs: windows of normalized 2D ``(T, J, 2)``.
        targets: matching root-relative 3D ``(T, J, 3)`` metres (camera frame).
        progress: optional ``callable(step, loss_m)`` called every 50 steps.
    """
    with torch.random.fork_rng(devices=[]):  # dropout and flips draw from torch's global RNG: seeded
        torch.manual_seed(fit_config.seed)  # here, restored to the caller's state afterwards
        model = config.build()
        chunk = fit_config.chunk if model.pad > 0 else 1
        batches = _Batches(inputs, targets, model.pad, chunk, np.random.default_rng(fit_config.seed))
        num_chunks = max(1, fit_config.batch_frames // chunk)
        optimizer = torch.optim.Adam(model.parameters(), lr=fit_config.lr)
        gamma = (fit_config.lr_final / fit_config.lr) ** (1.0 / max(1, fit_config.steps))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)
        model.train()
        for step in range(fit_config.steps):
            x, y = batches.sample(num_chunks)
            if fit_config.flip:
                x, y = _flip(x, y, torch.rand(len(x)) < 0.5)
            loss = mpjpe(model(x), y, root=None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if progress is not None and (step % 50 == 0 or step == fit_config.steps - 1):
                progress(step, float(loss.detach()))
        model.eval()
        return model


@torch.no_grad()
def predict(model: nn.Module, inputs: list[np.ndarray], max_frames: int = 65536) -> list[np.ndarray]:
    """Root-relative 3D ``(T, J, 3)`` float32 metres for each normalized 2D window ``(T, J, 2)``.

    Each window is replicate-padded by ``model.pad`` frames at both ends, so output length ==
    input length; windows are concatenated into batches of about ``max_frames`` frames.
    """
    model.eval()
    pad = model.pad
    outputs: list[np.ndarray] = []
    group: list[np.ndarray] = []

    def flush() -> None:
        x = np.concatenate([np.pad(w, ((pad, pad), (0, 0), (0, 0)), mode="edge") for w in group])
        y = model(torch.from_numpy(x.astype(np.float32))[None])[0].numpy()
        # y[k] is the output for padded frame k + pad; windows are separated by 2 * pad frames.
        start = 0
        for w in group:
            outputs.append(y[start : start + len(w)])
            start += len(w) + 2 * pad
        group.clear()

    for window in inputs:
        group.append(window)
        if sum(len(w) + 2 * pad for w in group) >= max_frames:
            flush()
    if group:
        flush()
    return outputs


def save_lifter(model: nn.Module, config: LifterConfig, path: str | Path, info: dict | None = None) -> None:
    """Write weights as safetensors with ``{"config": ..., "info": ...}`` JSON metadata."""
    meta = {"config": json.dumps(config.as_dict()), "info": json.dumps(info or {})}
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def load_lifter(path: str | Path) -> tuple[nn.Module, LifterConfig]:
    """Rebuild a lifter saved by :func:`save_lifter`; raises :class:`WeightsError` on any mismatch."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        config = LifterConfig.from_dict(json.loads(meta["config"]))
        model = config.build()
        model.load_state_dict(load_file(str(path)))
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a lifter weights file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    model.eval()
    return model, config


def lifter_input(poses_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """A lifter's input: 2D detections ``(T, J, 2)`` pixels of an image ``(width, height)`` as
    normalized screen coordinates ``(T, J, 2)`` float32."""
    return normalize_screen(poses_2d, image_size).astype(np.float32)


def fit_and_save(
    config: LifterConfig, fit_config: FitConfig, inputs: list[np.ndarray], gt_3d: list[np.ndarray], path: Path,
    info: dict, data_info: dict, progress=None,
) -> tuple[nn.Module, float]:
    """Train a ``config`` lifter (:func:`fit`) and save it to ``path`` (:func:`save_lifter`).

    Args:
        inputs: :func:`lifter_input` of each training sequence, ``(T, J, 2)``.
        gt_3d: its camera-frame ground truth ``(T, J, 3)`` metres (made root-relative here).
        info, data_info: the saved info is ``info``, the fit's config and wall seconds, then
            ``data_info`` (the size of the training data).
        progress: as for :func:`fit`.

    Returns:
        The model and the fit's wall seconds.
    """
    root = config.root
    targets = [(gt - gt[:, root : root + 1]).astype(np.float32) for gt in gt_3d]
    started = time.perf_counter()
    model = fit(config, fit_config, inputs, targets, progress)
    seconds = time.perf_counter() - started
    save_lifter(model, config, path, {**info, "fit": asdict(fit_config), "fit_seconds": round(seconds, 1), **data_info})
    return model, seconds


def estimator_summary(kind: LifterKind, fit_config: FitConfig) -> dict:
    """``{"name", "config", "fit"}`` of the ``kind`` estimator fitted with ``fit_config``: the
    first entries of its part of a build summary."""
    return {"name": kind.estimator_name, "config": LIFTERS[kind].as_dict(), "fit": asdict(fit_config)}


def pooled_errors_mm(predictions: list[np.ndarray], gt: list[np.ndarray]) -> dict[str, float]:
    """Frame-pooled root-relative MPJPE and P-MPJPE in millimetres (rounded to 0.01 mm) of
    predictions and ground truth, matching lists of ``(T, J, 3)`` metres."""
    pred, truth = np.concatenate(predictions), np.concatenate(gt)
    return {"mpjpe_mm": round(1000 * float(mpjpe(pred, truth)), 2), "p_mpjpe_mm": round(1000 * float(p_mpjpe(pred, truth)), 2)}


def cross_fit(
    config: LifterConfig, fit_config: FitConfig, inputs: list[np.ndarray], gt_3d: list[np.ndarray], folds: list[int],
    val_inputs: list[np.ndarray], out: Path, stem: str, info: dict, progress=None,
) -> tuple[list[np.ndarray], list[str], list[np.ndarray], str, dict[str, float]]:
    """Cross-fitted outputs of a ``config`` lifter: every training sequence predicted by the
    lifter fitted on the other folds (seed ``fit_config.seed + 1 + fold``), every validation
    sequence by the lifter fitted on all of them (seed ``fit_config.seed``).

    Args:
        inputs, gt_3d: :func:`lifter_input` ``(T, J, 2)`` and camera-frame ground truth ``(T, J, 3)``
            metres of the training sequences; ``folds`` their fold numbers ``0 .. F-1``.
        val_inputs: :func:`lifter_input` of the validation sequences.
        out: the build directory; the weights go to ``out/estimators/{stem}_fold{f}.safetensors``
            and ``out/estimators/{stem}.safetensors``.
        info: saved with each lifter (``trained_on`` is added).
        progress: ``callable(label) -> callable(step, loss_m)`` or ``None``.

    Returns:
        Training predictions, the weights (relative to ``out``) that made each, validation
        predictions, the full lifter's weights and the fit seconds (``fold<f>`` and ``full``).
    """
    train_pred: list[np.ndarray | None] = [None] * len(inputs)
    train_weights = [""] * len(inputs)
    seconds: dict[str, float] = {}
    runs = [(f"fold{fold}", fold, fit_config.seed + 1 + fold, f"train folds != {fold}") for fold in sorted(set(folds))]
    runs.append(("full", None, fit_config.seed, "train (all folds)"))
    val_pred: list[np.ndarray] = []
    val_weights = ""
    for label, fold, seed, trained_on in runs:
        fitted = [i for i, f in enumerate(folds) if f != fold]
        name = f"{stem}_{label}" if fold is not None else stem
        path = out / "estimators" / f"{name}.safetensors"
        model, seconds[label] = fit_and_save(
            config, replace(fit_config, seed=seed), [inputs[i] for i in fitted], [gt_3d[i] for i in fitted],
            path, {**info, "trained_on": trained_on}, {"train_sequences": len(fitted)},
            None if progress is None else progress(f"{stem} {label}"),
        )
        if fold is None:
            val_pred, val_weights = predict(model, val_inputs), str(path.relative_to(out))
            continue
        held_out = [i for i, f in enumerate(folds) if f == fold]
        for i, pose in zip(held_out, predict(model, [inputs[i] for i in held_out])):
            train_pred[i], train_weights[i] = pose, str(path.relative_to(out))
    return train_pred, train_weights, val_pred, val_weights, seconds
