"""``d3prefine train``: train a PoseDenoiser on pose files with ground truth.

Single process: ``d3prefine train --data train.h5 --val val.h5 --noise noise.safetensors -o model.safetensors``.
Data parallel on several GPUs (or CPU processes): ``torchrun --nproc-per-node N -m d3prefine train ...``.
"""

from __future__ import annotations

import gc
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from d3prefine import __version__
from d3prefine.cli._common import (
    DeviceOption,
    JsonOption,
    check_weights_suffix,
    device_option,
    emit_json,
    err_console,
    expand_inputs,
    log,
    output_file_option,
    usage_error,
)
from d3prefine.config import (
    FEW_SEQUENCES,
    FINE_TUNE_ANCHOR,
    MAX_SPAN_STEPS,
    DenoiserConfig,
    ForwardErrors,
    IntermediateStates,
    KeptWeights,
    Objective,
    TrainConfig,
    fine_tune_anchor,
)
from d3prefine.errors import InputError, WeightsError
from d3prefine.guard_fit import GUARD_QUANTILE, GUARD_SEQUENCES, MIN_THRESHOLD, guard_sequences
from d3prefine.io import check_output_path, load_poses
from d3prefine.outputfile import claim_output
from d3prefine.skeleton import get_layout

FilesOption = Annotated[list[str], typer.Option(help="Pose files with gt_3d (repeat the option or give a folder).")]


def _load(files: list[Path]) -> list:
    sequences = [seq for path in files for seq in load_poses(path)]
    missing = [seq.name for seq in sequences if seq.gt_3d is None]
    if missing:
        raise InputError(f"{len(missing)} sequences have no gt_3d (first: {missing[0]!r}); training needs ground truth")
    return sequences


#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine train --data train.h5 --val val.h5 --noise my_noise.safetensors -o runs/denoiser.safetensors --steps 20000",
    "d3prefine train --data train.h5 --val val.h5 --noise my_noise.safetensors -o runs/denoiser.safetensors --resume",
    "d3prefine train --data mine.h5 --val mine_val.h5 --noise weights/noise.safetensors --init weights/ -o runs/mine.safetensors --steps 200 --eval-every 25",
)


def _init_config(start: DenoiserConfig, requested: DenoiserConfig, layout: str) -> DenoiserConfig:
    """The architecture of ``--init`` weights; a usage error if an architecture option asks for
    another (options left at their defaults are taken from the weights) or the layouts differ."""
    if start.layout != layout:
        raise usage_error(f"--init: the weights are for layout {start.layout!r}, the noise statistics for {layout!r}")
    default = DenoiserConfig()
    for name in ("architecture", "window", "dim", "depth", "heads"):
        asked = getattr(requested, name)
        if asked != getattr(default, name) and asked != getattr(start, name):
            raise usage_error(f"--init: the weights have --{name} {getattr(start, name)}, the command asks for {asked}")
    return start


def command(
    ctx: typer.Context,
    data: FilesOption,
    val: FilesOption,
    noise: Annotated[Path, typer.Option("--noise", help="Noise statistics from fit-noise.")],
    output: Annotated[Path, output_file_option("Denoiser weights to write (.safetensors).")],
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps; the warm-up and the EMA scale with them (--warmup, --ema-decay).")] = TrainConfig.steps,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows per step and process.")] = TrainConfig.batch_size,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak AdamW learning rate.")] = TrainConfig.lr,
    objective: Annotated[Objective, typer.Option(help="diffusion (the method) or regression (the same network, t = T only).")] = TrainConfig.objective,
    forward_errors: Annotated[ForwardErrors, typer.Option(help="Errors of the forward process.")] = TrainConfig.forward_errors,
    final_step_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Diffusion: share of windows trained at the last step T.")
    ] = TrainConfig.final_step_share,
    intermediate_states: Annotated[
        IntermediateStates,
        typer.Option(help="Diffusion, t < T: the states the sampler's first step reaches (y - (1 - s_t) e_hat_T for real errors), or forward-process states."),
    ] = TrainConfig.intermediate_states,
    velocity_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the velocity error in the loss.")] = TrainConfig.velocity_weight,
    mirror: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of training windows replaced by their mirror image (left and right swapped, as refine --flip).")
    ] = TrainConfig.mirror,
    warmup: Annotated[
        Optional[int],
        typer.Option(min=1, help=f"Steps of linear learning-rate warm-up (default: an eighth of --steps, at most {MAX_SPAN_STEPS})."),
    ] = None,
    ema_decay: Annotated[
        Optional[float],
        typer.Option(
            min=0.0, max=1.0,
            help=f"Decay of the weights' exponential moving average (default: 1 - 8 / --steps, at most 0.998: an average over the last eighth of the run, at most {MAX_SPAN_STEPS} steps).",
        ),
    ] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="Steps between validations and checkpoints.")] = TrainConfig.eval_every,
    keep: Annotated[
        KeptWeights,
        typer.Option(help="Weights to write: those of the best validation (with --init, step 0 included: never worse than the start on --val) or of the last step."),
    ] = TrainConfig.keep,
    window: Annotated[int, typer.Option(min=1, help="Frames per window.")] = DenoiserConfig.window,
    dim: Annotated[int, typer.Option(min=2, help="Channels per token.")] = DenoiserConfig.dim,
    depth: Annotated[int, typer.Option(min=1, help="STC blocks.")] = DenoiserConfig.depth,
    heads: Annotated[int, typer.Option(min=1, help="Attention heads per half.")] = DenoiserConfig.heads,
    architecture: Annotated[
        str, typer.Option(help="Network architecture, a name in d3prefine.architectures.ARCHITECTURES (recorded in the weights).")
    ] = DenoiserConfig.architecture,
    seed: Annotated[int, typer.Option(help="Seed of initialisation and sampling.")] = TrainConfig.seed,
    checkpoint: Annotated[
        Optional[Path], typer.Option(help="Checkpoint file written every --eval-every steps (default: <output>.ckpt.safetensors).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint file.")] = False,
    init: Annotated[
        Optional[Path],
        typer.Option("--init", help="Fine-tune: start from these denoiser weights (file, folder or shipped set, e.g. weights/ or varied); the architecture is theirs."),
    ] = None,
    anchor: Annotated[
        Optional[float],
        typer.Option(
            min=0.0,
            help=f"With --init: after every step pull each weight toward its --init value by the learning rate x ANCHOR of the distance "
            f"(decoupled L2-SP; default {FINE_TUNE_ANCHOR:g} for at most {FEW_SEQUENCES} training sequences, {fine_tune_anchor(FEW_SEQUENCES + 1):g} for more; 0 turns it off).",
        ),
    ] = None,
    guard: Annotated[
        bool,
        typer.Option(
            "--guard/--no-guard",
            help=f"Store a refine guard with the weights: its reference fitted on up to {GUARD_SEQUENCES} --data sequences refined, "
            f"its threshold the {GUARD_QUANTILE:g} quantile of the scores of up to {GUARD_SEQUENCES} --val sequences, at least {MIN_THRESHOLD:g} (as the shipped weights').",
        ),
    ] = True,
    max_minutes: Annotated[Optional[float], typer.Option(min=0.0, help="Stop (and save) after this wall time.")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="CPU threads for torch (default: torch's choice).")] = None,
    device: DeviceOption = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Train a PoseDenoiser (AdamW, EMA weights, validation MPJPE every --eval-every steps, resumable)."""
    if anchor is not None and anchor > 0 and init is None:
        raise usage_error("--anchor pulls toward the --init weights: give --init (or drop --anchor)")
    try:
        train_config = TrainConfig(
            steps=steps, batch_size=batch_size, lr=lr, objective=objective, forward_errors=forward_errors,
            velocity_weight=velocity_weight, eval_every=eval_every, seed=seed, final_step_share=final_step_share,
            intermediate_states=intermediate_states, warmup=warmup, ema_decay=ema_decay, keep=keep,
            mirror=mirror, anchor=anchor or 0.0,  # with --init and no --anchor: set by the number of training sequences, below
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    from d3prefine.architectures import network_class  # imported here: it loads torch

    try:
        network_class(architecture)
    except ValueError as err:
        raise usage_error(f"--architecture: {err}") from None
    checkpoint = checkpoint or output.with_name(output.stem + ".ckpt.safetensors")
    check_weights_suffix(output, "-o/--output")
    check_weights_suffix(checkpoint, "--checkpoint")
    if checkpoint.resolve() == output.resolve():
        raise usage_error("--checkpoint must differ from -o/--output")
    if resume and not checkpoint.is_file():
        raise usage_error(f"--resume: no checkpoint at {checkpoint}")
    data_files, val_files = expand_inputs(data), expand_inputs(val)
    inputs = [*data_files, *val_files, noise]
    check_output_path(output, overwrite=overwrite or resume, inputs=inputs)
    check_output_path(checkpoint, overwrite=overwrite or resume, inputs=inputs)
    if int(os.environ.get("RANK", "0")) == 0:  # held until the command ends; under torchrun rank 0 writes
        for target in (output, checkpoint):
            ctx.with_resource(claim_output(target))
    import torch  # imported once the options are valid: help and usage errors start fast

    from d3prefine.checkpoint import load_denoiser
    from d3prefine.noise import NoiseModel
    from d3prefine.refine import denoiser_path
    from d3prefine.train import Trainer, WindowSampler, init_distributed

    if threads is not None:
        torch.set_num_threads(threads)
    torch_device, distributed = init_distributed(device_option(device))
    noise_model = NoiseModel.load(noise)
    layout = get_layout(noise_model.layout)
    model_config = DenoiserConfig(
        num_joints=layout.num_joints, window=window, dim=dim, depth=depth, heads=heads, layout=layout.name, architecture=architecture
    )
    init_state = init_guard = None
    if init is not None:
        init_path = denoiser_path(init)
        start = load_denoiser(init_path)
        model_config = _init_config(start.config, model_config, layout.name)
        init_state = start.state_dict()
        init_guard = _guard_of(init_path)
    started = time.perf_counter()
    train_sequences, val_sequences = _load(data_files), _load(val_files)
    train_data = WindowSampler(train_sequences, model_config.window, layout.root)
    val_data = WindowSampler(val_sequences, model_config.window, layout.root)
    guard_sets = guard_sequences(train_sequences, val_sequences, seed) if guard else None
    if init is not None and anchor is None:
        train_config = replace(train_config, anchor=fine_tune_anchor(len(train_sequences)))
        log(f"anchor {train_config.anchor:g} for {len(train_sequences)} training sequences (--anchor sets it)")
    del train_sequences, val_sequences  # the samplers hold the arrays; only the guard's subsamples stay
    log(f"data: {len(train_data.starts)} training windows, {len(val_data.starts)} validation windows "
        f"({time.perf_counter() - started:.0f} s to load)")
    trainer = Trainer(model_config, train_config, noise_model, train_data, val_data, torch_device, init=init_state)
    if resume:
        trainer.load_checkpoint(checkpoint)
        log(f"resumed from {checkpoint} at step {trainer.state.step}")
    info = {
        "tool": f"d3prefine {__version__}",
        "command": shlex.join(["d3prefine", *sys.argv[1:]]),
        "data": [str(p) for p in data],
        "val": [str(p) for p in val],
        "noise": str(noise),
        "device": str(torch_device),
        **({"init": str(init)} if init is not None else {}),
    }
    with Progress(
        TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.1f} mm"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=trainer.rank != 0,
    ) as progress:
        task = progress.add_task("train", total=steps, completed=trainer.state.step, loss=float("nan"))
        history = trainer.fit(
            output,
            checkpoint=checkpoint,
            max_minutes=max_minutes,
            on_step=lambda step, loss: progress.update(task, completed=step, loss=1000.0 * loss),
            on_eval=lambda r: progress.console.print(
                f"step {r['step']}: " + (f"train loss {r['train_loss_mm']:.2f} mm" if "train_loss_mm" in r else "the --init weights")
                + f" | val MPJPE input {r['val_input_mpjpe']:.2f}, gaussian mean {r['val_gaussian_mean_mpjpe']:.2f}, "
                f"refined (K=1) {r['val_mpjpe']:.2f} mm",
                highlight=False,
            ),
            info=info,
        )
    rank, steps_done, kept_step = trainer.rank, trainer.state.step, trainer.kept_step
    del trainer  # its DistributedDataParallel wrapper goes before the process group does (a gloo rank can abort at exit otherwise)
    if distributed:
        gc.collect()
        torch.distributed.destroy_process_group()
    if rank == 0:
        stored = None if guard_sets is None else _store_guard(output, noise, torch_device, *guard_sets, init_guard)
        log(f"wrote {output} after {steps_done} steps, the EMA weights of step {kept_step} "
            f"(--keep {keep.value}; {time.perf_counter() - started:.0f} s)")
        if json_output:
            emit_json({"output": output, "steps": steps_done, "kept_step": kept_step, "history": history, "guard": stored})


def _guard_of(path: Path):
    """The guard reference stored in the denoiser file ``path``, or ``None``."""
    from d3prefine.checkpoint import denoiser_metadata
    from d3prefine.guard import stored_reference

    try:
        return stored_reference(denoiser_metadata(path))
    except ValueError as err:
        raise WeightsError(f"{path}: {err}") from None


def _store_guard(output: Path, noise: Path, device, train: list, val: list, init) -> dict:
    """Fit the refine guard of the weights at ``output`` on ``train`` and ``val`` sequences (pooled
    with ``init``, the guard of the --init weights, if any) and add it to the file's metadata
    (tensors unchanged, written atomically); returns its summary."""
    from d3prefine.checkpoint import set_denoiser_metadata
    from d3prefine.guard import GUARD_METADATA_KEY
    from d3prefine.guard_fit import fit_guard
    from d3prefine.refine import Refiner

    log(f"fitting the refine guard on {len(train)} training and {len(val)} validation sequences"
        + ("" if init is None else ", pooled with the --init weights' guard"))
    reference = fit_guard(Refiner.from_pretrained(output, noise, device=device), train, val, init=init)
    set_denoiser_metadata(output, output, {GUARD_METADATA_KEY: reference.to_json()})
    log(f"stored the refine guard: threshold {reference.threshold:g} (the {GUARD_QUANTILE:g} quantile of the validation scores, at least {MIN_THRESHOLD:g})")
    return {"threshold": reference.threshold, "quantile": GUARD_QUANTILE, "reference_sequences": len(train), "threshold_sequences": len(val),
            "pooled_with_init": init is not None}
