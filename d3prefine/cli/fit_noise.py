"""``d3prefine fit-noise``: fit the conditional Gaussian of an estimator's errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from d3prefine.cli._common import (
    InputsArgument,
    JsonOption,
    check_weights_suffix,
    emit_json,
    expand_inputs,
    log,
    out_console,
    output_file_option,
)
from d3prefine.config import MIN_FRAMES_PER_PARAMETER, NoiseMode, block_parameters, required_frames
from d3prefine.errors import InputError
from d3prefine.io import check_output_path, load_poses
from d3prefine.outputfile import claim_output
from d3prefine.pairing import Reference, ground_truth
from d3prefine.preprocess import error_triple
from d3prefine.skeleton import JointLayout

if TYPE_CHECKING:
    from d3prefine.noise import NoiseModel


def _fit(
    files: list[Path], reference: Reference | None, mode: NoiseMode, ridge: float, estimator: str, force: bool
) -> tuple[NoiseModel, JointLayout, int]:
    """The fitted model, the joint layout and the number of sequences of ``files``; too few frames
    for the mode (:func:`required_frames`) are an error unless ``force``."""
    from d3prefine.noise import NoiseModel  # torch: imported once there is work to do

    triples, sequences = [], 0
    for path in files:
        seqs = load_poses(path)
        for seq in seqs:
            truth = ground_truth(seq, path, reference, len(seqs))
            triples.append(error_triple(seq.poses_2d, seq.poses_3d, truth, seq.image_size, seq.layout.root))
        sequences += len(seqs)
    layout = seqs[0].layout
    frames, needed = sum(len(triple[0]) for triple in triples), required_frames(mode, layout.num_joints)
    if frames < needed:
        problem = (
            f"{frames} frames are too few for a {mode.value} fit: it needs at least {needed:,} "
            f"({MIN_FRAMES_PER_PARAMETER} per parameter, {block_parameters(mode, layout.num_joints):,} per Gaussian block)"
        )
        if not force:
            raise InputError(f"{', '.join(map(str, files))}: {problem}; give more data, or --force to fit anyway")
        log(f"warning: {problem}; fitting anyway (--force): check the standard error below")
    try:
        model = NoiseModel.fit(
            triples, mode=mode, layout=layout.name, ridge=ridge,
            info={"estimator": estimator, "sources": [str(p) for p in files], "sequences": sequences},
        )
    except ValueError as error:  # too little data to fit
        raise InputError(f"{', '.join(map(str, files))}: {error}") from None
    return model, layout, sequences

#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine fit-noise my_estimator_train.h5 -o my_noise.safetensors --estimator my-lifter",
    "d3prefine fit-noise preds.npz --gt truth.npz -o noise_full.safetensors --mode full_body",
)


def command(
    preds: InputsArgument,
    output: Annotated[Path, output_file_option("Noise statistics file to write (.safetensors).")],
    gt: Annotated[
        Optional[Path], typer.Option("--gt", help="Ground-truth pose file matched by sequence name (default: gt_3d in each file).")
    ] = None,
    mode: Annotated[NoiseMode, typer.Option("--mode", help="Gaussian blocks: per joint, whole body, or unconditional isotropic.")] = NoiseMode.PER_JOINT,
    estimator: Annotated[str, typer.Option("--estimator", help="Name of the estimator, stored in the metadata.")] = "unknown",
    ridge: Annotated[float, typer.Option("--ridge", min=0.0, help="Relative ridge added to the condition covariance.")] = 1e-3,
    force: Annotated[
        bool,
        typer.Option("--force", help=(
            f"Fit even with fewer than {MIN_FRAMES_PER_PARAMETER} frames per fitted parameter ({required_frames(NoiseMode.PER_JOINT, 17):,} "
            f"for per_joint, {required_frames(NoiseMode.FULL_BODY, 17):,} for full_body of 17 joints, {required_frames(NoiseMode.ISOTROPIC, 17)} for isotropic)."
        )),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Fit the error model e | (2D pose, 3D pose) from estimator outputs paired with ground truth."""
    files = expand_inputs(preds)
    check_weights_suffix(output, "-o/--output")
    check_output_path(output, overwrite=overwrite, inputs=[*files, *([gt] if gt else [])])
    with claim_output(output):  # a second fit-noise writing the same file fails at once
        model, layout, sequences = _fit(files, Reference.load(gt) if gt else None, mode, ridge, estimator, force)
        model.save(output)
    log(f"wrote {output}: {mode.value} model from {model.info['frames']} frames of {sequences} sequences")
    if json_output:
        emit_json({"output": output, "mode": mode.value, "layout": layout.name, "info": model.info})
    elif mode is not NoiseMode.ISOTROPIC:
        table = Table(title=escape(f"estimator error per joint ({estimator})"), title_justify="left")
        for column in ("joint", "error rms (mm)", "after conditional mean (mm)"):
            table.add_column(column, justify="left" if column == "joint" else "right")
        for name, before, after in zip(layout.joint_names, model.info["error_rms_per_joint_mm"], model.info["residual_rms_per_joint_mm"]):
            table.add_row(name, f"{before:.1f}", f"{after:.1f}")
        out_console.print(table)
        out_console.print(
            f"error variance explained by the conditional mean: {100 * model.info['explained_variance']:.1f}%"
            + _standard_error(model.info, "explained_variance_se", 100.0, "%")
            + (
                f"; on held-out frames (each group predicted by the fit without it): {100 * model.info['explained_variance_held_out']:.1f}%"
                if model.info.get("explained_variance_held_out") is not None else ""
            )
        )
    else:
        out_console.print(f"isotropic std: {1000 * model.info['std_m']:.1f}" + _standard_error(model.info, "std_m_se", 1000.0, "") + " mm per coordinate")


def _standard_error(info: dict, key: str, scale: float, unit: str) -> str:
    """`` ± <se><unit> (jackknife standard error over N groups of frames)``, or a note that there is none."""
    if info.get(key) is None:
        return " (no standard error: fewer than 2 blocks of frames)"
    return f" ± {scale * info[key]:.1f}{unit} (jackknife standard error over {info['jackknife_groups']} groups of frames)"
