"""Safetensors files for denoiser weights and resumable training state (never pickle).

A denoiser file holds the network's tensors and, in its metadata, ``format``, the
:class:`DenoiserConfig` as JSON (the model is rebuilt from the file alone) and free-form
JSON ``info`` (training command, validation numbers), ``noise_digest`` (the digest of the noise
statistics it was trained with, checked by ``Refiner.from_pretrained``), plus optional entries
fitted after training on held-out data without changing the tensors: ``guard`` (the
out-of-distribution reference, :mod:`d3prefine.guard`) and ``calibration`` (the uncertainty
scale, :mod:`d3prefine.calibration`).
A training checkpoint additionally holds the EMA weights, the AdamW state, the random
state of every process's batch sampler (``generator.<rank>``; one per ``torchrun`` process) and,
with ``train --keep best``, the EMA weights of the best validation so far (``best.*``, metadata
``best_step``), so ``train --resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from d3prefine.architectures import build_denoiser
from d3prefine.errors import UsageError, WeightsError
from d3prefine.model import DenoiserConfig
from d3prefine.tensorfile import MAX_PARAMETER, read_metadata, read_tensors, write_tensors

DENOISER_FORMAT = "d3prefine-denoiser"
#: Metadata key of the frame rate (frames per second) of the data the denoiser was trained on.
FPS_METADATA_KEY = "fps"
CHECKPOINT_FORMAT = "d3prefine-train-checkpoint"
#: Metadata entry of a denoiser file: :meth:`NoiseModel.digest` of the noise statistics it was trained with.
NOISE_DIGEST_KEY = "noise_digest"


def save_denoiser(
    path: str | Path, model: nn.Module, info: dict, fps: float | None = None, *, noise_digest: str | None = None
) -> None:
    """Save weights with the config and ``info`` as JSON metadata, ``fps``, the frame rate of the
    training data, when known (``Refiner`` resamples other rates to it), and, when given, the
    digest of the noise statistics they were trained with (``train`` always gives it)."""
    meta = {"format": DENOISER_FORMAT, "config": model.config.to_json(), "info": json.dumps(info)}
    if fps is not None:
        meta[FPS_METADATA_KEY] = f"{fps:g}"
    if noise_digest is not None:
        meta[NOISE_DIGEST_KEY] = noise_digest
    write_tensors(path, model.state_dict(), meta)


def load_denoiser(path: str | Path) -> nn.Module:
    """Rebuild a denoiser network from a denoiser file: its config (metadata) names the
    architecture (:mod:`d3prefine.architectures`) and sizes."""
    tensors, meta = read_tensors(path, DENOISER_FORMAT, max_abs=MAX_PARAMETER)
    try:
        model = build_denoiser(DenoiserConfig.from_json(meta["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise WeightsError(f"{path}: config and tensors do not form a denoiser ({str(err).splitlines()[0]})") from None
    return model


def denoiser_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a denoiser file (tensors not read)."""
    return read_metadata(path, DENOISER_FORMAT)


def training_fps(meta: dict[str, str]) -> float | None:
    """The training frame rate recorded in denoiser metadata ``meta`` (``None`` if absent).

    Raises:
        ValueError: the entry is not a positive number.
    """
    if FPS_METADATA_KEY not in meta:
        return None
    try:
        fps = float(meta[FPS_METADATA_KEY])
    except ValueError:
        fps = float("nan")
    if not fps > 0 or fps == float("inf"):
        raise ValueError(f"metadata {FPS_METADATA_KEY!r}: expected a positive frame rate, got {meta[FPS_METADATA_KEY]!r}")
    return fps


def set_denoiser_metadata(path: str | Path, output: str | Path, entries: dict[str, str]) -> None:
    """Write ``output``: the denoiser file ``path`` with ``entries`` added to (or replacing keys of)
    its metadata; the tensors are copied unchanged (``output`` may be ``path``: written atomically)."""
    if "format" in entries or "config" in entries:
        raise ValueError("the format and config entries of a denoiser file cannot be replaced")
    tensors, meta = read_tensors(path, DENOISER_FORMAT)
    write_tensors(output, tensors, {**meta, **entries})


@dataclass
class TrainingProgress:
    """What a checkpoint holds besides the tensors of the model, its EMA and the optimizer."""

    step: int
    history: list
    generator_states: list[torch.Tensor]  # the sampler's random state of each rank (uint8, ``Generator.get_state()``)
    noise_digest: str | None = None  # NoiseModel.digest() of the noise statistics trained with (None: not recorded)
    best_step: int | None = None  # the step of the best validation so far (train --keep best; None: none kept)
    best: dict[str, torch.Tensor] | None = None  # the EMA weights at best_step


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: TrainingProgress,
    train_config: dict,
) -> None:
    """Write a resumable training checkpoint atomically (model, EMA, AdamW moments, every rank's
    random state, step, validation history and the training settings as JSON)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    for i, s in optimizer.state_dict()["state"].items():
        tensors |= {f"optim.{i}.{k}": torch.as_tensor(v) for k, v in s.items()}
    tensors |= {f"generator.{rank}": state for rank, state in enumerate(progress.generator_states)}
    if progress.best is not None:
        tensors |= {f"best.{k}": v for k, v in progress.best.items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_json(),
        "train_config": json.dumps(train_config),
        "step": str(progress.step),
        "history": json.dumps(progress.history),
        "world_size": str(len(progress.generator_states)),
    }
    if progress.noise_digest is not None:
        meta[NOISE_DIGEST_KEY] = progress.noise_digest
    if progress.best_step is not None:
        meta["best_step"] = str(progress.best_step)
    write_tensors(path, tensors, meta)


def load_checkpoint(
    path: str | Path, *, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, noise_digest: str
) -> TrainingProgress:
    """Load :func:`save_checkpoint`'s file into ``model``, ``ema`` and ``optimizer`` (the architecture
    must match, and so must ``noise_digest`` when the checkpoint records one) and return the rest. A
    checkpoint of an older version holds one ``generator``: rank 0's.

    Raises:
        WeightsError: not a checkpoint, another architecture, or missing or damaged entries.
        UsageError: the checkpoint was trained with other noise statistics.
    """
    tensors, meta = read_tensors(path, CHECKPOINT_FORMAT)
    try:
        if DenoiserConfig.from_json(meta["config"]) != model.config:
            raise WeightsError(f"{path}: checkpoint architecture differs from the requested one ({meta['config']})")
        recorded = meta.get(NOISE_DIGEST_KEY)  # absent from checkpoints written before it was recorded
        if recorded is not None and recorded != noise_digest:
            raise UsageError(f"{path}: the checkpoint was trained with other noise statistics than --noise; resume with the same --noise")
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        optim = optimizer.state_dict()
        for i in optim["param_groups"][0]["params"]:
            prefix = f"optim.{i}."
            entries = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if entries:
                optim["state"][i] = entries
        optimizer.load_state_dict(optim)
        if "generator" in tensors:  # written before the per-rank states
            tensors["generator.0"] = tensors.pop("generator")
        world = int(meta.get("world_size", "1"))
        states = [tensors[f"generator.{rank}"] for rank in range(world)]
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None  # absent: keep=last or an older version
        best_step = int(meta["best_step"]) if best is not None else None
        return TrainingProgress(int(meta["step"]), json.loads(meta["history"]), states, recorded, best_step, best)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # a damaged or foreign checkpoint
        raise WeightsError(f"{path}: not a complete checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None
