"""Figures of pose sequences: skeleton frames, errors over time and per joint, an animated comparison.

Needs the optional extra ``pip install 'd3prefine[plot]'`` (matplotlib, pillow). Without it,
importing this module raises :class:`~d3prefine.errors.D3PrefineError` with that command, so
import it where plotting starts (never at the top of another module): ``import d3prefine`` and
the other commands stay free of matplotlib.

Drawing conventions: 3D poses are made root-relative (joint ``layout.root``) and shown in the
camera frame (x right, y down, z forward) turned so that up is up: the plot's horizontal axes are
x and z (depth), its vertical axis is -y, all on the same scale (orthographic, equal aspect).
Bones take the colour of their child joint's side (left blue, right red, centre grey); ground
truth is drawn as a dashed black ghost behind the estimates. Figures use the Agg canvas (no
pyplot, no global state) and a fixed size in pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3prefine.errors import D3PrefineError, OutputError
from d3prefine.io import PoseSequence, atomic_file, check_output_path
from d3prefine.metrics import METRICS, accel_error, mpjpe
from d3prefine.skeleton import JointLayout

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from mpl_toolkits.mplot3d.art3d import Line3D
    from mpl_toolkits.mplot3d.axes3d import Axes3D
    from PIL import Image
except ImportError as error:
    raise D3PrefineError(f"plotting needs the optional extra: pip install 'd3prefine[plot]' ({error})") from None

#: Summary figure: width x height in pixels, and its resolution (dots per inch).
FIGURE_SIZE_PX = (1600, 1000)
FIGURE_DPI = 100
#: Skeleton frames drawn in the strip of the summary figure, by default.
STRIP_FRAMES = 6
#: The animation shows at most this many frames (every n-th frame of longer sequences).
MAX_GIF_FRAMES = 150
#: Animation: pixels of one panel (width, height), resolution, colours per frame, and the
#: playback rate of sequences without ``fps``.
GIF_PANEL_PX = (320, 340)
GIF_DPI = 80
GIF_COLOURS = 64
DEFAULT_FPS = 30.0

SIDE_COLOURS = {"left": "tab:blue", "right": "tab:red", "centre": "0.45"}  # layout.side(joint) -> colour
GROUND_TRUTH_STYLE = {"color": "black", "alpha": 0.45, "linestyle": "--", "linewidth": 1.2}
#: Pose arrays drawn, in this order, and their labels.
LABELS = {"poses_3d": "input", "poses_3d_refined": "refined", "gt_3d": "ground truth"}
#: Colour of the error curves and bars of each estimate.
ESTIMATE_COLOURS = {"poses_3d": "tab:orange", "poses_3d_refined": "tab:green"}
#: Camera-frame metres (x, y, z) -> plot axes (x, z, -y): horizontal, depth, up. A proper rotation.
_TO_PLOT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _figure(size_px: tuple[int, int], dpi: int) -> Figure:
    """An empty figure of exactly ``size_px`` (width, height) pixels on an Agg canvas."""
    figure = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _plot_coordinates(poses: np.ndarray, layout: JointLayout) -> np.ndarray:
    """Root-relative poses ``(T, J, 3)`` in plot axes (x, depth z, up -y), metres."""
    return (poses - poses[:, layout.root : layout.root + 1]) @ _TO_PLOT


def _pose_arrays(seq: PoseSequence, keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The present arrays among ``keys`` in plot coordinates ``(T, J, 3)``, by key."""
    return {key: _plot_coordinates(getattr(seq, key), seq.layout) for key in keys if getattr(seq, key) is not None}


def _extent(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Half-size ``(3,)`` metres of a box around the origin holding every pose ``(..., 3)`` (plot axes), plus 5%."""
    return 1.05 * np.max([np.abs(poses).reshape(-1, 3).max(axis=0) for poses in arrays], axis=0)


def _setup_3d(ax: Axes3D, extent: np.ndarray, *, axes: bool = True) -> None:
    """Box ``[-extent, extent]`` metres on equal scales, orthographic, seen from slightly right of
    and above the camera; ``axes=False`` hides panes and grid (faster to draw)."""
    ax.set(xlim=(-extent[0], extent[0]), ylim=(-extent[1], extent[1]), zlim=(-extent[2], extent[2]))
    ax.set(xticklabels=[], yticklabels=[], zticklabels=[])
    ax.set_box_aspect(tuple(extent))  # a copy: matplotlib rescales an array argument in place
    ax.set_proj_type("ortho")
    ax.view_init(elev=12.0, azim=-70.0)
    if not axes:
        ax.set_axis_off()


def _draw_skeleton(ax: Axes3D, pose: np.ndarray, layout: JointLayout, **style) -> list[Line3D]:
    """One line per bone of ``pose`` ``(J, 3)`` (plot coordinates), in ``layout.bones`` order.

    Without a ``color`` in ``style``, each bone takes the colour of its child joint's side.
    """
    return [
        ax.plot(*pose[[parent, child]].T, **{"color": SIDE_COLOURS[layout.side(child)], "linewidth": 2.0, **style})[0]
        for parent, child in layout.bones
    ]


def frame_corrections(seq: PoseSequence) -> np.ndarray:
    """How far refinement moved each frame: ``(T,)`` metres, the root-relative mean per-joint
    distance between ``poses_3d_refined`` and ``poses_3d``. Raises ValueError without refinement."""
    if seq.poses_3d_refined is None:
        raise ValueError(f"sequence {seq.name!r} has no poses_3d_refined")
    return mpjpe(seq.poses_3d_refined, seq.poses_3d, root=seq.layout.root, reduce="frame")


def select_frames(seq: PoseSequence, count: int) -> np.ndarray:
    """Ascending indices ``(min(count, T),)`` of the frames to draw.

    With ``poses_3d_refined``: the frames of largest :func:`frame_corrections`, picked greedily
    and kept more than ``T // (4 * count)`` frames apart so that the strip shows no near-duplicates
    (that spacing always leaves room for ``count`` frames). Otherwise: evenly spaced frames.
    """
    frames = seq.num_frames
    count = min(count, frames)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if seq.poses_3d_refined is None:
        return np.linspace(0, frames - 1, count).round().astype(int)
    gap = frames // (4 * count)
    chosen: list[int] = []
    for frame in np.argsort(-frame_corrections(seq), kind="stable").tolist():
        if all(abs(frame - other) > gap for other in chosen):
            chosen.append(frame)
            if len(chosen) == count:
                break
    return np.sort(np.array(chosen))


def _draw_strip(figure: Figure, seq: PoseSequence, frames: np.ndarray, bottom: float) -> None:
    """Skeletons of ``frames``: one row per estimate (input, refined), ground truth as a ghost.

    Column titles give the frame index and its correction; each panel its MPJPE (mm) if ground truth exists.
    """
    layout = seq.layout
    estimates = _pose_arrays(seq, LABELS)
    extent = _extent(poses[frames] for poses in estimates.values())
    gt = estimates.pop("gt_3d", None)  # drawn behind each estimate, not in a row of its own
    corrections = frame_corrections(seq) if seq.poses_3d_refined is not None else None
    grid = figure.add_gridspec(len(estimates), len(frames), left=0.02, right=0.98, bottom=bottom, top=0.9, wspace=0.0, hspace=0.04)
    for row, (key, poses) in enumerate(estimates.items()):
        errors = mpjpe(getattr(seq, key), seq.gt_3d, root=layout.root, reduce="frame") if gt is not None else None
        for column, frame in enumerate(frames):
            ax = figure.add_subplot(grid[row, column], projection="3d")
            _setup_3d(ax, extent)
            if gt is not None:
                _draw_skeleton(ax, gt[frame], layout, **GROUND_TRUTH_STYLE)
                ax.text2D(0.03, 0.06, f"MPJPE\n{1000 * errors[frame]:.0f} mm", transform=ax.transAxes, fontsize=9)
            _draw_skeleton(ax, poses[frame], layout)
            if column == 0:
                ax.text2D(0.02, 0.5, LABELS[key], transform=ax.transAxes, rotation=90, va="center", fontsize=12)
            if row == 0:
                moved = f"\ncorrection {1000 * corrections[frame]:.0f} mm" if corrections is not None else ""
                ax.set_title(f"frame {frame}{moved}", fontsize=10)


@dataclass(frozen=True)
class _Comparison:
    """What the bottom panels show: each series ``(T, J, 3)`` metres against ``reference``.

    Attributes:
        metric: name of the per-frame distance, e.g. ``"MPJPE"``.
        accel_metric: name of the distance between accelerations.
        reference: ``(T, J, 3)`` metres.
        series: label -> (poses ``(T, J, 3)`` metres, colour).
    """

    metric: str
    accel_metric: str
    reference: np.ndarray
    series: dict[str, tuple[np.ndarray, str]]


def _comparison(seq: PoseSequence) -> _Comparison | None:
    """Errors of each estimate against ``gt_3d``; without it, the correction ``poses_3d_refined``
    minus ``poses_3d``; ``None`` when the sequence has neither."""
    if seq.gt_3d is not None:
        series = {LABELS[key]: (array, ESTIMATE_COLOURS[key]) for key, array in seq.arrays().items() if key in ESTIMATE_COLOURS}
        return _Comparison(METRICS["mpjpe"].title, METRICS["accel_error"].title, seq.gt_3d, series)
    if seq.poses_3d_refined is not None:
        series = {"refined - input": (seq.poses_3d_refined, ESTIMATE_COLOURS["poses_3d_refined"])}
        return _Comparison("correction", "accel. change", seq.poses_3d, series)
    return None


def _draw_comparison(figure: Figure, comparison: _Comparison, layout: JointLayout, frames: np.ndarray) -> None:
    """Per-frame distance and acceleration distance of each series over time (the strip's frames
    marked by grey lines), and per-joint distance bars; all in millimetres."""
    grid = figure.add_gridspec(2, 2, left=0.05, right=0.985, bottom=0.08, top=0.38, width_ratios=(1.5, 1.0), hspace=0.08, wspace=0.12)
    over_time = figure.add_subplot(grid[0, 0])
    acceleration = figure.add_subplot(grid[1, 0], sharex=over_time)
    per_joint = figure.add_subplot(grid[:, 1])
    reference, root = comparison.reference, layout.root
    width = 0.8 / len(comparison.series)
    for k, (label, (poses, colour)) in enumerate(comparison.series.items()):
        distance = 1000 * mpjpe(poses, reference, root=root, reduce="frame")
        over_time.plot(distance, color=colour, linewidth=1.2, label=f"{label}: {distance.mean():.1f} mm")
        accel = 1000 * accel_error(poses, reference, root=root, reduce="frame")  # sample i is centred on frame i + 1
        mean = f": {accel.mean():.2f}" if accel.size else ""  # accelerations need T >= 3
        acceleration.plot(np.arange(1, len(accel) + 1), accel, color=colour, linewidth=1.0, label=label + mean)
        joints = np.arange(layout.num_joints) + (k - (len(comparison.series) - 1) / 2) * width
        per_joint.bar(joints, 1000 * mpjpe(poses, reference, root=root, reduce="joint"), width, color=colour, label=label)
    for ax in (over_time, acceleration):
        for frame in frames:
            ax.axvline(frame, color="0.85", linewidth=0.8, zorder=0)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    over_time.set_ylabel(f"{comparison.metric} (mm)")
    over_time.tick_params(labelbottom=False)
    acceleration.set(xlabel="frame", ylabel=f"{comparison.accel_metric} ({METRICS['accel_error'].figure_unit})", xlim=(0, max(len(reference) - 1, 1)))
    per_joint.set_xticks(np.arange(layout.num_joints), layout.joint_names, rotation=90, fontsize=8)
    per_joint.set(ylabel=f"{comparison.metric} per joint (mm)", xlim=(-0.6, layout.num_joints - 0.4))
    per_joint.margins(y=0.15)  # room for the legend above the bars
    per_joint.legend(loc="upper right", ncol=2, fontsize=8)
    per_joint.grid(axis="y", alpha=0.3)


def _title(seq: PoseSequence, comparison: _Comparison | None) -> str:
    """Sequence name, length and the mean distance (mm) of each compared series."""
    rate = f" at {seq.fps:g} fps" if seq.fps else ""
    title = f"{seq.name}: {seq.num_frames} frames{rate}"
    if comparison is None:
        return title
    means = [
        f"{label} {1000 * mpjpe(poses, comparison.reference, root=seq.layout.root):.1f} mm"
        for label, (poses, _) in comparison.series.items()
    ]
    return f"{title}; {comparison.metric}: {', '.join(means)}"


def summary_figure(seq: PoseSequence, frames: int = STRIP_FRAMES) -> Figure:
    """The summary figure of a sequence, ``FIGURE_SIZE_PX`` pixels at ``FIGURE_DPI``.

    Top: a strip of ``frames`` skeleton frames (:func:`select_frames`), a row for ``poses_3d``
    and one for ``poses_3d_refined`` when present, ``gt_3d`` as a ghost. Bottom, with ground
    truth: per-frame MPJPE (mm) and acceleration error (mm/frame²) over time and per-joint MPJPE
    of each estimate; without ground truth but with refinement: the same distances between the
    refined and the input poses (the correction); with neither, the strip fills the figure.
    """
    shown = select_frames(seq, frames)
    comparison = _comparison(seq)
    figure = _figure(FIGURE_SIZE_PX, FIGURE_DPI)
    _draw_strip(figure, seq, shown, bottom=0.45 if comparison else 0.02)
    if comparison:
        _draw_comparison(figure, comparison, seq.layout, shown)
    figure.suptitle(_title(seq, comparison), x=0.01, y=0.985, ha="left", fontsize=13)
    legend = [Line2D([], [], color=colour, linewidth=2.0, label=side) for side, colour in SIDE_COLOURS.items()]
    if seq.gt_3d is not None:
        legend.append(Line2D([], [], **GROUND_TRUTH_STYLE, label="ground truth"))
    figure.legend(handles=legend, loc="upper right", ncol=len(legend), frameon=False, fontsize=10)
    return figure


def animation_frames(seq: PoseSequence) -> tuple[list[Image.Image], int]:
    """The side-by-side animation of ``poses_3d``, ``poses_3d_refined`` and ``gt_3d`` (those present)
    as palette images ready for GIF.

    Every ``ceil(T / MAX_GIF_FRAMES)``-th frame is drawn, so at most ``MAX_GIF_FRAMES`` images
    of ``GIF_PANEL_PX`` pixels per panel side by side.

    Returns:
        The images and how long each shows, in milliseconds (real time at ``seq.fps``, else
        at ``DEFAULT_FPS``).
    """
    layout = seq.layout
    panels = _pose_arrays(seq, LABELS)
    step = -(-seq.num_frames // MAX_GIF_FRAMES)
    figure = _figure((GIF_PANEL_PX[0] * len(panels), GIF_PANEL_PX[1]), GIF_DPI)
    extent = _extent(poses[::step] for poses in panels.values())
    skeletons = []
    for column, (key, poses) in enumerate(panels.items(), start=1):
        ax = figure.add_subplot(1, len(panels), column, projection="3d")
        _setup_3d(ax, extent, axes=False)
        ax.set_title(LABELS[key])
        skeletons.append((poses, _draw_skeleton(ax, poses[0], layout)))
    figure.subplots_adjust(left=0.0, right=1.0, bottom=0.06, top=0.92, wspace=0.0)
    caption = figure.text(0.5, 0.02, "", ha="center")
    images = []
    for frame in range(0, seq.num_frames, step):
        for poses, lines in skeletons:
            for line, (parent, child) in zip(lines, layout.bones):
                line.set_data_3d(*poses[frame, [parent, child]].T)
        caption.set_text(f"{seq.name}: frame {frame}")
        figure.canvas.draw()
        rgba = Image.frombuffer("RGBA", figure.canvas.get_width_height(), figure.canvas.buffer_rgba())
        # A copy (the canvas is redrawn next frame) with its own palette of at most GIF_COLOURS.
        images.append(rgba.convert("RGB").quantize(GIF_COLOURS, method=Image.Quantize.FASTOCTREE))
    return images, round(1000 * step / (seq.fps or DEFAULT_FPS))


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(temporary_path)`` beside ``path``, then rename it to ``path`` (never a partial file)."""
    with atomic_file(path) as temp:
        try:
            write(temp)
        except OSError as error:
            raise OutputError(f"{path}: writing failed ({error})") from None


def _outputs(out: Path, *, gif: bool) -> list[Path]:
    """The files :func:`write_figures` writes for ``out``: ``out`` and, with ``gif``, ``out`` with
    suffix ``.gif``. Raises OutputError if ``out`` does not end in ``.png``."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise OutputError(f"{out}: expected a .png file name, got suffix {out.suffix!r}")
    return [out, out.with_suffix(".gif")] if gif else [out]


def write_figures(
    seq: PoseSequence,
    out: str | os.PathLike,
    *,
    gif: bool = False,
    frames: int = STRIP_FRAMES,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
) -> list[Path]:
    """Write the :func:`summary_figure` of ``seq`` to ``out`` and, with ``gif``, its animation.

    Every output is checked before anything is drawn; each is written atomically.

    Args:
        seq: the sequence to draw.
        out: PNG file (``.png``); the animation goes to the same path with suffix ``.gif``.
        gif: also write :func:`animation_frames` as a looping GIF.
        frames: skeleton frames in the strip.
        overwrite: replace existing files.
        inputs: files never to write over (the pose files being drawn).

    Returns:
        The files written: ``[out]``, or ``[out, <out stem>.gif]`` with ``gif``.

    Raises:
        OutputError: ``out`` is not a ``.png`` path, an output exists without ``overwrite`` or is
            an input, its folder is missing, or writing failed.
    """
    paths = _outputs(Path(out), gif=gif)
    for path in paths:
        check_output_path(path, overwrite=overwrite, inputs=inputs)
    figure = summary_figure(seq, frames)
    _write_atomic(paths[0], lambda temp: figure.savefig(temp, format="png", dpi=FIGURE_DPI))
    if gif:
        images, duration_ms = animation_frames(seq)
        _write_atomic(
            paths[1],
            lambda temp: images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0),
        )
    return paths


def write_file_figures(
    sequences: Sequence[PoseSequence],
    base: str | os.PathLike,
    *,
    limit: int | None = None,
    gif: bool = False,
    frames: int = STRIP_FRAMES,
    overwrite: bool = False,
    inputs: Sequence[str | os.PathLike] = (),
    drawn: set[Path] | None = None,
) -> dict[str, list[Path]]:
    """Figures of the sequences of one pose file (:func:`write_figures` for each).

    Naming: ``base`` (a ``.png`` path, e.g. ``<folder>/<file stem>.png``) when the file holds a
    single sequence, else ``<base stem>_<sequence name>.png`` beside it, whatever ``limit``.
    Every output of every sequence is checked before anything is drawn, so a refusal writes nothing.

    Args:
        sequences: all sequences of the file, in file order.
        base: PNG path of the file.
        limit: draw only the first ``limit`` sequences (``None``: all).
        gif, frames, overwrite, inputs: as :func:`write_figures`.
        drawn: files written earlier in the same run (resolved paths), updated here. A figure of
            this file that another file of the run already drew (``m_b.png`` of ``m.npz`` with
            sequence ``b`` and of ``m_b.npz``) is refused instead of replaced.

    Returns:
        Sequence name -> files written, in file order.
    """
    base = Path(base)
    pngs = [base] if len(sequences) == 1 else [base.with_name(f"{base.stem}_{seq.name}{base.suffix}") for seq in sequences]
    targets = list(zip(sequences, pngs))[:limit]
    for _, png in targets:
        for path in _outputs(png, gif=gif):
            if drawn is not None and path.resolve() in drawn:
                raise OutputError(f"{path}: already drawn for another input of this run (a file stem plus a sequence name); rename one input")
            check_output_path(path, overwrite=overwrite, inputs=inputs)
    written = {
        seq.name: write_figures(seq, png, gif=gif, frames=frames, overwrite=overwrite, inputs=inputs) for seq, png in targets
    }
    if drawn is not None:
        drawn.update(path.resolve() for paths in written.values() for path in paths)
    return written
