"""``d3prefine export``: refined poses back to the source format, to CSV or to BVH."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from d3prefine.cli._common import (
    ContinueOnErrorOption,
    InputsArgument,
    JsonOption,
    OutDirOption,
    OutputOption,
    OverwriteOption,
    emit_json,
    expand_inputs,
    log,
    run_batch,
    usage_error,
)
from d3prefine.errors import InputError, OutputError
from d3prefine.export import ExportTarget, export_sequence
from d3prefine.io import POSE_3D_ARRAYS, load_poses

EXAMPLES = (
    "d3prefine export clip.refined.npz --to source        # e.g. X3D.npy back in MotionBERT's units",
    "d3prefine export 'refined/*.npz' --to bvh --out-dir bvh/",
)

#: The 3D arrays that can be exported.
PoseKey = Enum("PoseKey", {key: key for key in POSE_3D_ARRAYS}, type=str)


def _suffix(target: ExportTarget, provenance: dict, path: Path) -> str:
    if target is not ExportTarget.SOURCE:
        return f".{target.value}"
    source = (provenance.get("convert") or {}).get("options", {}).get("poses_3d")
    if source is None:
        raise InputError(f"{path}: not made by 'd3prefine convert' (no 'convert' provenance): export --to csv or bvh instead")
    return Path(source).suffix


def _export_file(path: Path, target: ExportTarget, output: Path | None, out_dir: Path | None, key: str, source: Path | None,
                 overwrite: bool, inputs: list[Path]) -> dict:
    sequences = load_poses(path, allow_nan=True)
    if output is not None and len(sequences) > 1:
        raise InputError(f"{path}: holds {len(sequences)} sequences; use --out-dir (one output per sequence)")
    written = []
    for seq in sequences:
        tag = "" if len(sequences) == 1 else f".{seq.name}"
        target_path = output or (out_dir or path.parent) / f"{path.stem}{tag}{_suffix(target, seq.provenance, path)}"
        written.append(export_sequence(seq, target, target_path, key=key, source=source, overwrite=overwrite, inputs=inputs))
        log(f"{path} [{seq.name}]: wrote {written[-1]}")
    return {"file": path, "outputs": written}


def command(
    inputs: InputsArgument,
    to: Annotated[ExportTarget, typer.Option("--to", help="source: the format, layout and units the file was converted from; csv; bvh.")],
    output: OutputOption = None,
    out_dir: OutDirOption = None,
    key: Annotated[PoseKey, typer.Option("--key", help="The 3D array to export.")] = "poses_3d_refined",
    source: Annotated[Optional[Path], typer.Option("--source", help="The converted source 3D file, if it moved since 'convert'.")] = None,
    overwrite: OverwriteOption = False,
    continue_on_error: ContinueOnErrorOption = False,
    json_output: JsonOption = False,
) -> None:
    """Export 3D poses to the format they were converted from, CSV or BVH (default name: <input stem>.<ext>)."""
    files = expand_inputs(inputs)
    if output is not None and (out_dir is not None or len(files) != 1):
        raise usage_error("-o/--output takes a single input and no --out-dir")
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"{out_dir}: cannot create output folder ({error.strerror})") from None
    batch = run_batch(
        files,
        lambda path: _export_file(path, ExportTarget(to), output, out_dir, PoseKey(key).value, source, overwrite, files),
        continue_on_error=continue_on_error,
        description="exporting",
    )
    if json_output:
        emit_json({"files": batch.values, "failed": [{"file": o.path, "error": o.error} for o in batch.failures]})
    raise typer.Exit(batch.exit_code)
