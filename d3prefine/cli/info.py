"""``d3prefine info``: describe pose files and safetensors weights files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from safetensors import SafetensorError, safe_open

from d3prefine.cli._common import (
    POSE_SUFFIXES,
    WEIGHTS_SUFFIX,
    ContinueOnErrorOption,
    InputsArgument,
    JsonOption,
    ShardOption,
    apply_shard,
    emit_json,
    expand_inputs,
    out_console,
    run_batch,
)
from d3prefine.errors import WeightsError
from d3prefine.io import PoseSequence, load_poses


def describe_sequence(seq: PoseSequence) -> dict[str, Any]:
    """JSON-ready summary of one sequence: sizes, arrays (shape, NaN count) and metadata."""
    return {
        "name": seq.name,
        "frames": seq.num_frames,
        "joints": seq.layout.num_joints,
        "joint_layout": seq.joint_layout,
        "arrays": {
            key: {"shape": list(array.shape), "nan": int(np.isnan(array).sum())} for key, array in seq.arrays().items()
        },
        "fps": seq.fps,
        "duration_s": seq.num_frames / seq.fps if seq.fps else None,
        "image_size": list(seq.image_size) if seq.image_size else None,
        "units": seq.units,
        "provenance": seq.provenance,
    }


def _parse_metadata_value(text: str) -> Any:
    """A metadata string as JSON when it is a JSON object or array, else the string itself."""
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def describe_weights(path: Path) -> dict[str, Any]:
    """Metadata and tensor names, shapes and dtypes of a safetensors file (no tensor is loaded)."""
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {
                name: {"shape": list(handle.get_slice(name).get_shape()), "dtype": handle.get_slice(name).get_dtype()}
                for name in handle.keys()
            }
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path}: not a valid safetensors file ({error})") from None
    return {
        "file": str(path),
        "kind": "weights",
        "metadata": {key: _parse_metadata_value(value) for key, value in sorted(metadata.items())},
        "tensors": tensors,
    }


def describe_file(path: Path) -> dict[str, Any]:
    """JSON-ready description of a pose file (validated, NaN gaps allowed) or a weights file."""
    if path.suffix.lower() == WEIGHTS_SUFFIX:
        return describe_weights(path)
    sequences = load_poses(path, allow_nan=True)
    return {"file": str(path), "kind": "poses", "sequences": [describe_sequence(seq) for seq in sequences]}


def _print_poses(info: dict[str, Any]) -> None:
    count = len(info["sequences"])
    table = Table(title=escape(f"{info['file']}: {count} sequence{'s' if count > 1 else ''}"), title_justify="left")
    for column in ("sequence", "frames", "joints", "fps", "image", "arrays"):
        table.add_column(column)
    for seq in info["sequences"]:
        arrays = ", ".join(
            f"{key}{' (' + str(entry['nan']) + ' NaN)' if entry['nan'] else ''}" for key, entry in seq["arrays"].items()
        )
        image = "x".join(map(str, seq["image_size"])) if seq["image_size"] else "normalized"
        fps = f"{seq['fps']:g}" if seq["fps"] else "-"
        table.add_row(escape(seq["name"]), str(seq["frames"]), f"{seq['joints']} ({seq['joint_layout']})", fps, image, arrays)
    out_console.print(table)
    for seq in info["sequences"]:
        if seq["provenance"]:
            text = f"provenance of {seq['name']}: {json.dumps(seq['provenance'])}"
            out_console.print(escape(text), highlight=False, soft_wrap=True)


def _print_weights(info: dict[str, Any]) -> None:
    out_console.print(escape(f"{info['file']}: safetensors, {len(info['tensors'])} tensors"), highlight=False)
    for key, value in info["metadata"].items():
        out_console.print(escape(f"  {key}: {json.dumps(value)}"), highlight=False, soft_wrap=True)
    table = Table("tensor", "shape", "dtype")
    for name, entry in info["tensors"].items():
        table.add_row(escape(name), "x".join(map(str, entry["shape"])) or "scalar", entry["dtype"])
    out_console.print(table)


#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine info examples/walk.npz weights/denoiser.safetensors",
    "d3prefine info data/ --json",
)


def command(
    files: InputsArgument,
    json_output: JsonOption = False,
    continue_on_error: ContinueOnErrorOption = False,
    shard: ShardOption = None,
) -> None:
    """Describe pose files (sequences, frames, joints, arrays, metadata) and .safetensors weights."""
    inputs = apply_shard(expand_inputs(files, (*POSE_SUFFIXES, WEIGHTS_SUFFIX)), shard)
    batch = run_batch(inputs, describe_file, continue_on_error=continue_on_error, description="reading")
    if json_output:
        emit_json({"files": batch.values, "failed": [{"file": o.path, "error": o.error} for o in batch.failures]})
    else:
        for info in batch.values:
            (_print_weights if info["kind"] == "weights" else _print_poses)(info)
    raise typer.Exit(batch.exit_code)
