"""``d3prefine info``: describe pose files and safetensors weights files."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from d3prefine.cli._common import (
    POSE_SUFFIXES,
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
from d3prefine.describe import WEIGHTS_SUFFIX, describe_file


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
