"""``d3prefine convert``: another estimator's files to a d3prefine pose file (``h36m17``, metres).

A thin shell over :func:`d3prefine.convert.convert`; the formats, their files and options are
described in :mod:`d3prefine.formats` and README "Your estimator -> command".
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from d3prefine.checks import screen, sequence_problems
from d3prefine.cli._common import JsonOption, OverwriteOption, emit_json, log, out_console, output_file_option
from d3prefine.convert import convert
from d3prefine.formats import SourceFormat
from d3prefine.formats.options import ConvertOptions, Units
from d3prefine.io import check_output_path, check_output_suffix, save_poses
from d3prefine.keypoints import MAPPINGS

EXAMPLES = (
    "d3prefine convert motionbert --3d X3D.npy --2d alphapose-results.json --image-size 1920 1080 --fps 30 --scale-to-height 1.6 -o clip.npz",
    "d3prefine convert arrays --2d kp2d.npy --layout-2d coco17 --3d kp3d.csv --units mm --image-size 1280 720 -o clip.npz",
)

#: Keypoint layouts a file may come in (``--layout-2d``, ``--layout-3d``).
Layout = Enum("Layout", {name: name for name in MAPPINGS}, type=str)



def command(
    source_format: Annotated[SourceFormat, typer.Argument(metavar="FORMAT", help="Source format: " + ", ".join(f.value for f in SourceFormat) + ".")],
    output: Annotated[Path, output_file_option("The d3prefine pose file to write (.npz, .h5).")],
    poses_2d: Annotated[Optional[Path], typer.Option("--2d", help="The 2D keypoints file.")] = None,
    poses_3d: Annotated[Optional[Path], typer.Option("--3d", help="The 3D estimate file (MediaPipe: its landmarks JSON).")] = None,
    gt: Annotated[Optional[Path], typer.Option("--gt", help="Ground-truth 3D (VideoPose3D data_3d_*.npz).")] = None,
    cameras: Annotated[Optional[Path], typer.Option("--cameras", help="Camera extrinsics JSON for world-frame ground truth.")] = None,
    layout_2d: Annotated[Layout, typer.Option("--layout-2d", help="Keypoint layout of the 2D (arrays, mmpose).")] = "h36m17",
    layout_3d: Annotated[Layout, typer.Option("--layout-3d", help="Keypoint layout of the 3D (arrays).")] = "h36m17",
    units: Annotated[Units, typer.Option("--units", help="Units of the 3D (arrays).")] = Units.M,
    scale_to_height: Annotated[
        Optional[float],
        typer.Option("--scale-to-height", min=0.1, max=3.0, help="Scale the 3D so the body measures this many metres from head top to ankle (about 0.93 x standing height)."),
    ] = None,
    image_size: Annotated[Optional[tuple[int, int]], typer.Option("--image-size", help="WIDTH HEIGHT of the video, in pixels.")] = None,
    fps: Annotated[Optional[float], typer.Option("--fps", min=0.001, help="Frames per second of the video.")] = None,
    person: Annotated[Optional[int], typer.Option("--person", min=0, help="Which person: instance index (MMPose) or track idx (AlphaPose).")] = None,
    sequence: Annotated[Optional[str], typer.Option("--sequence", help="VideoPose3D: the 2D sequence the 3D estimate belongs to.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Name of the converted sequence.")] = None,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Let convert unpickle VideoPose3D's dictionaries (pickle can run code: trusted files only).")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Warn instead of failing when the 2D and 3D joint orders disagree or the body is not human-sized in metres.")
    ] = False,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Convert another estimator's output (VideoPose3D, MotionBERT, MMPose, MediaPipe, plain arrays) to a pose file."""
    inputs = [p for p in (poses_2d, poses_3d, gt, cameras) if p is not None]
    check_output_suffix(output)
    check_output_path(output, overwrite=overwrite, inputs=inputs)
    if allow_pickle:
        log("warning: --allow-pickle: unpickling can run code hidden in a file; use it only on files you trust")
    options = ConvertOptions(
        poses_2d=poses_2d, poses_3d=poses_3d, gt=gt, cameras=cameras, layout_2d=Layout(layout_2d).value, layout_3d=Layout(layout_3d).value,
        units=units, image_size=image_size, fps=fps, allow_pickle=allow_pickle, person=person, sequence=sequence, name=name,
    )
    sequences = convert(source_format, options, scale_to_height=scale_to_height)
    for seq in sequences:
        for warning in screen(sequence_problems(seq), force=force, where=str(output)):
            log(warning)
    save_poses(output, sequences, overwrite=overwrite, inputs=inputs)
    summary = [
        {
            "sequence": seq.name,
            "frames": seq.num_frames,
            "metres_per_unit": seq.provenance["convert"]["metres_per_unit"],
            "layout_2d": seq.provenance["convert"]["layout_2d"]["source_layout"],
            "layout_3d": seq.provenance["convert"]["layout_3d"]["source_layout"],
            "synthesised_2d": seq.provenance["convert"]["layout_2d"]["synthesised"],
            "synthesised_3d": seq.provenance["convert"]["layout_3d"]["synthesised"],
        }
        for seq in sequences
    ]
    if json_output:
        emit_json({"output": output, "sequences": summary})
    else:
        for row in summary:
            out_console.print(
                f"{output} [{row['sequence']}]: {row['frames']} frames, 2D {row['layout_2d']}, 3D {row['layout_3d']} -> h36m17, "
                f"{row['metres_per_unit']:.6g} m per unit", highlight=False, markup=False,
            )
