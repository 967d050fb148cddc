"""``d3prefine evaluate``: score predicted 3D poses against ground truth, with a baseline column.

Which arrays are compared (documented in README "Commands"):

* prediction: ``--key`` of each PRED file; by default ``poses_3d_refined`` when the sequence
  has it, else ``poses_3d``.
* ground truth: with ``--gt FILE``, that file's ``gt_3d`` (or its ``poses_3d`` when it has no
  ``gt_3d``); otherwise the ``gt_3d`` of the PRED file itself.
* baseline (optional): with ``--baseline FILE``, that file's ``--baseline-key`` array (default:
  ``poses_3d_refined`` if present, else ``poses_3d``); with only ``--baseline-key KEY``, the
  PRED file's own KEY; with neither, the PRED file's own ``poses_3d`` when the prediction is
  ``poses_3d_refined`` (refined versus unrefined), else no baseline.
* sequences of another file (``--gt``, ``--baseline``) are matched by name; when both files
  hold a single sequence they are paired whatever their names.

The relative change is ``100 * (prediction - baseline) / baseline`` in percent: negative
means the prediction has the lower (better) error. All metrics are root-relative, in mm.

A sequence without ground truth (no ``--gt`` and no ``gt_3d``) gets the GT-free metrics of
:mod:`d3prefine.quality` instead (acceleration, jerk, bone-length std, correction size, 2D
reprojection), with the same baseline column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from d3prefine.cli._common import (
    ContinueOnErrorOption,
    InputsArgument,
    JsonOption,
    Outcome,
    ShardOption,
    apply_shard,
    emit_json,
    expand_inputs,
    log,
    out_console,
    output_paths,
    run_batch,
    usage_error,
)
from d3prefine.evaluation import BaselineRule, PoseKey, SequenceScore, score_file
from d3prefine.io import PoseSequence
from d3prefine.metrics import METRIC_UNITS, METRICS, Metric, MetricReport, pool_reports
from d3prefine.pairing import Reference
from d3prefine.skeleton import JointLayout

#: Baselines below this (mm, mm/frame, mm/frame^2) are float32 rounding noise: no relative change.
MIN_BASELINE = 0.01


def _refined_over_raw(files: list[Path]) -> list[Path]:
    """``files`` less each input whose ``refine`` output (``<stem>.refined<suffix>`` in the same
    folder) is among them: that output holds the same sequences, with this input's ``poses_3d``
    as its baseline column, so pooling both would count every sequence twice."""
    present = {path.resolve() for path in files}
    raw = [path for path in files if path.with_name(f"{path.stem}.refined{path.suffix}").resolve() in present]
    if raw:
        names = ", ".join(map(str, raw[:3])) + (", ..." if len(raw) > 3 else "")
        log(f"left out {len(raw)} input(s) whose refined output is also evaluated (their poses_3d is its baseline): {names}")
    left_out = set(raw)
    return [path for path in files if path not in left_out]


@dataclass(frozen=True)
class PlotRequest:
    """``--plot DIR``: summary figures of every evaluated file, ``figures[file]`` (``DIR/<stem>.png``)."""

    figures: dict[Path, Path]
    inputs: list[Path]
    overwrite: bool
    drawn: set[Path] = field(default_factory=set)  # figures written by this run

    def draw(self, path: Path, sequences: list[PoseSequence]) -> None:
        from d3prefine.plot import write_file_figures  # matplotlib is an optional extra

        written = write_file_figures(sequences, self.figures[path], overwrite=self.overwrite, inputs=self.inputs, drawn=self.drawn)
        for outputs in written.values():
            log(f"{path}: wrote {', '.join(map(str, outputs))}")


def _evaluate_file(path: Path, key: PoseKey | None, gt: Reference | None, baseline: BaselineRule, plot: PlotRequest | None) -> list[SequenceScore]:
    """Score every sequence of ``path`` and draw its figures on request (``--plot``)."""
    scores, sequences = score_file(path, key, gt, baseline)
    if plot is not None:
        plot.draw(path, sequences)
    return scores


def _change(value: float, base: float) -> float | None:
    """Relative change in percent; ``None`` when the baseline is NaN or below ``MIN_BASELINE``."""
    if not np.isfinite(value) or not np.isfinite(base) or abs(base) < MIN_BASELINE:
        return None
    return 100.0 * (value - base) / base


def _summary(report: MetricReport, baseline: MetricReport | None, per_joint: bool) -> dict[str, Any]:
    """JSON-ready metrics of a report and its baseline (mm; ``change_pct`` in percent)."""
    entry: dict[str, Any] = {
        "frames": report.frames,
        "metrics": report.summary,
        "baseline": baseline.summary if baseline else None,
        "change_pct": (
            {name: _change(report.summary[name], baseline.summary[name]) for name in report.summary} if baseline else None
        ),
    }
    if per_joint:
        entry["per_joint"] = report.per_joint
        entry["baseline_per_joint"] = baseline.per_joint if baseline else None
    return entry


def _pooled(scores: list[SequenceScore]) -> tuple[MetricReport, MetricReport | None] | None:
    """Frame-weighted pooling of all sequences (``None`` if their joint layouts differ, or some
    have ground truth and others not).

    The pooled baseline exists only when every sequence has a baseline.
    """
    if len({score.layout.name for score in scores}) != 1 or len({id(score.metrics) for score in scores}) != 1:
        return None
    metrics = scores[0].metrics
    report = pool_reports([score.report for score in scores], metrics)
    baselines = [score.baseline_report for score in scores]
    return report, pool_reports(baselines, metrics) if all(b is not None for b in baselines) else None


def _json_document(scores: list[SequenceScore], per_joint: bool, failures: list[Outcome[Any]]) -> dict[str, Any]:
    pooled = _pooled(scores) if scores else None
    return {
        "units": {name: metric.unit for score in scores for name, metric in score.metrics.items()} or METRIC_UNITS,
        "joints": list(scores[0].layout.joint_names) if per_joint and pooled else None,
        "sequences": [
            {
                "file": score.file,
                "sequence": score.name,
                "key": score.key,
                "ground_truth": score.metrics is METRICS,
                "baseline_source": score.baseline,
                **_summary(score.report, score.baseline_report, per_joint),
            }
            for score in scores
        ],
        "pooled": {"sequences": len(scores), **_summary(*pooled, per_joint)} if pooled else None,
        "failed": [{"file": outcome.path, "error": outcome.error} for outcome in failures],
    }


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    return f"{value:+.1f}%" if percent else f"{value:.2f}"


def _print_metrics(title: str, metrics: dict[str, Metric], report: MetricReport, baseline: MetricReport | None) -> None:
    table = Table(title=escape(title), title_justify="left")
    table.add_column("metric")
    table.add_column("unit")
    table.add_column("prediction", justify="right")
    if baseline:
        table.add_column("baseline", justify="right")
        table.add_column("change", justify="right")
    for name, metric in metrics.items():
        row = [name, metric.unit, _fmt(report.summary[name])]
        if baseline:
            row += [_fmt(baseline.summary[name]), _fmt(_change(report.summary[name], baseline.summary[name]), True)]
        table.add_row(*row)
    out_console.print(table)


def _print_per_joint(report: MetricReport, layout: JointLayout) -> None:
    table = Table(title="per joint: prediction, all sequences", title_justify="left")
    table.add_column("joint")
    for name in report.per_joint:
        table.add_column(name, justify="right")
    for joint, joint_name in enumerate(layout.joint_names):
        table.add_row(joint_name, *(_fmt(float(values[joint])) for values in report.per_joint.values()))
    out_console.print(table)


def _print_human(scores: list[SequenceScore], per_joint: bool) -> None:
    for score in scores:
        baseline = f", baseline {score.baseline}" if score.baseline else ""
        truth = "" if score.metrics is METRICS else " (no ground truth: GT-free metrics)"
        title = f"{score.file} [{score.name}]: {score.key.value}, {score.report.frames} frames{baseline}{truth}"
        _print_metrics(title, score.metrics, score.report, score.baseline_report)
    pooled = _pooled(scores)
    if pooled is None:
        log("sequences use different joint layouts, or not all have ground truth: no pooled result")
        return
    if len(scores) > 1:
        _print_metrics(f"all {len(scores)} sequences, {pooled[0].frames} frames", scores[0].metrics, *pooled)
    if per_joint:
        _print_per_joint(pooled[0], scores[0].layout)


#: Command lines shown at the end of ``--help``.
EXAMPLES = (
    "d3prefine evaluate /tmp/walk.refined.npz",
    "d3prefine evaluate preds.h5 --gt truth.h5 --baseline raw.h5 --per-joint --json",
)


def command(
    preds: InputsArgument,
    gt: Annotated[
        Path | None, typer.Option("--gt", help="Ground-truth pose file (its gt_3d, else poses_3d), matched by sequence name.")
    ] = None,
    key: Annotated[
        PoseKey | None, typer.Option("--key", help="Prediction array (default: poses_3d_refined if present, else poses_3d).")
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Baseline pose file (e.g. the unrefined input), matched by sequence name.")
    ] = None,
    baseline_key: Annotated[
        PoseKey | None,
        typer.Option("--baseline-key", help="Baseline array, of --baseline FILE or else of each input file."),
    ] = None,
    per_joint: Annotated[bool, typer.Option("--per-joint", help="Also report every metric per joint.")] = False,
    plot: Annotated[
        Path | None, typer.Option("--plot", file_okay=False, help="Also draw each file's summary figures (PNG) into this folder.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing figures in the --plot folder.")] = False,
    json_output: JsonOption = False,
    continue_on_error: ContinueOnErrorOption = False,
    shard: ShardOption = None,
) -> None:
    """Score 3D poses against ground truth (MPJPE, P-MPJPE, N-MPJPE, MPJVE, acceleration error, bone-length std, mm) or, without it, GT-free (acceleration, jerk, bone-length std, correction, 2D reprojection)."""
    if baseline is None and baseline_key is not None and key is not None and baseline_key is key:
        raise usage_error(f"--baseline-key {baseline_key.value} is the prediction key itself")
    files = _refined_over_raw(expand_inputs(preds))
    plotting = PlotRequest(output_paths(files, output=None, out_dir=plot, tag="", suffix=".png"), files, overwrite) if plot else None
    inputs = apply_shard(files, shard)
    reference = Reference.load(gt) if gt else None
    rule = BaselineRule(Reference.load(baseline) if baseline else None, baseline_key)
    batch = run_batch(
        inputs,
        lambda path: _evaluate_file(path, key, reference, rule, plotting),
        continue_on_error=continue_on_error,
        description="evaluating",
    )
    scores = [score for file_scores in batch.values for score in file_scores]
    if json_output:
        emit_json(_json_document(scores, per_joint, batch.failures))
    elif scores:
        _print_human(scores, per_joint)
    raise typer.Exit(batch.exit_code)
