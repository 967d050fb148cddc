"""``d3prefine plot``: a summary PNG per sequence (skeleton frames, errors over time and per joint).

Needs the optional extra ``pip install 'd3prefine[plot]'``: :mod:`d3prefine.plot`, and with it
matplotlib, is imported only when this command runs. Naming: ``<stem>.png`` for a file with
one sequence, ``<stem>_<sequence>.png`` for each sequence of a file with several, in
``--out-dir`` or beside the input; ``-o FILE.png`` replaces ``<stem>.png`` for a single input.
``--gif`` adds a ``.gif`` beside every PNG.
"""

from __future__ import annotations

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
    ShardOption,
    apply_shard,
    emit_json,
    expand_inputs,
    log,
    output_paths,
    run_batch,
)
from d3prefine.io import load_poses

#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine plot /tmp/walk.refined.npz -o walk.png --gif",
    "d3prefine plot 'refined/*.npz' --out-dir figures/",
)


def command(
    inputs: InputsArgument,
    output: OutputOption = None,
    out_dir: OutDirOption = None,
    gif: Annotated[
        bool, typer.Option("--gif", help="Also write an animated GIF: input, refined and ground truth side by side.")
    ] = False,
    frames: Annotated[int, typer.Option("--frames", min=1, max=12, help="Skeleton frames drawn in the strip.")] = 6,
    max_sequences: Annotated[
        Optional[int], typer.Option("--max-sequences", min=1, help="Draw only the first N sequences of each file (default: all).")
    ] = None,
    overwrite: OverwriteOption = False,
    continue_on_error: ContinueOnErrorOption = False,
    shard: ShardOption = None,
    json_output: JsonOption = False,
) -> None:
    """Draw a PNG per sequence: skeleton frames, errors over time and per joint (needs pip install 'd3prefine\\[plot]')."""
    from d3prefine.plot import write_file_figures  # the optional extra: without it, one error line and exit 1

    files = expand_inputs(inputs)
    bases = output_paths(files, output=output, out_dir=out_dir, tag="", suffix=".png")
    drawn: set[Path] = set()  # no input may replace a figure another input drew

    def plot_file(path: Path) -> list[dict]:
        written = write_file_figures(
            load_poses(path), bases[path], limit=max_sequences, gif=gif, frames=frames, overwrite=overwrite, inputs=files, drawn=drawn
        )
        for outputs in written.values():
            log(f"{path}: wrote {', '.join(map(str, outputs))}")
        return [{"input": path, "sequence": name, "outputs": outputs} for name, outputs in written.items()]

    batch = run_batch(apply_shard(files, shard), plot_file, continue_on_error=continue_on_error, description="plotting")
    if json_output:
        figures = [figure for file_figures in batch.values for figure in file_figures]
        emit_json({"figures": figures, "failed": [{"file": o.path, "error": o.error} for o in batch.failures]})
    raise typer.Exit(batch.exit_code)
