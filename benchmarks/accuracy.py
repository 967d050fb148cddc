"""Accuracy benchmark: d3prefine against the base estimators, tuned smoothers, the Gaussian
conditional mean, baseline denoisers (variants) and ablations of d3prefine, on the validation
files of each base estimator.

    python -m benchmarks.accuracy --val data/val_temporal.h5 --val data/val_frame.h5 \\
        --train data/train_temporal.h5 --train data/train_frame.h5 --weights weights/ \\
        --variant regression=runs/variants/regression.safetensors \\
        --variant isotropic=runs/variants/isotropic.safetensors:runs/variants/noise_isotropic.safetensors \\
        --ablation forward-states=runs/variants/forward.safetensors \\
        --ablation share-0.75=runs/variants/share75.safetensors \\
        --out benchmarks/results/accuracy

Every validation file holds the outputs of one base estimator (named by the sequences'
``provenance["estimator"]``, else the file stem); its smoothers are tuned on the training file
of the same estimator. Each row refines all sequences of a file in one ``refine_many`` call and
is scored with :func:`~d3prefine.metrics.evaluate_poses`, pooled frame-weighted over the
sequences. Writes ``<out>.json`` and ``<out>.md`` (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.report import (
    WORSE_MM,
    Check,
    Compare,
    add_weights_arguments,
    change_pct,
    fmt,
    made_worse,
    markdown_table,
    parse_device,
    run_and_write,
    run_info,
    run_summary,
    weights_digest,
)
from d3prefine.baselines import Smoother, smooth, tune_smoother
from d3prefine.blend import BlendedRefiner, load_refiner
from d3prefine.bones import DEFAULT_BONE_LENGTHS, BoneLengthMode, constrain_bones
from d3prefine.errors import InputError
from d3prefine.io import PoseSequence, SequenceMetadata, load_poses
from d3prefine.metrics import METRIC_NAMES, METRIC_UNITS, METRICS, MetricReport, evaluate_poses, pool_reports
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import model_inputs
from d3prefine.refine import DEFAULT_BATCH_SIZE, DEFAULT_ETA, DEFAULT_SMOOTH, DEFAULT_STEPS, Refiner
from d3prefine.runtime import err_console, log, subsample

#: Candidate parameters of the smoothers, tuned (lowest MPJPE) on the estimator's training file.
SMOOTHER_GRIDS: dict[Smoother, list[dict[str, float]]] = {
    Smoother.SAVGOL: [{"window": w, "polyorder": p} for w in (3, 5, 9, 15, 21, 31, 45, 61, 91) for p in range(12) if p < w],
    Smoother.ONE_EURO: [
        {"min_cutoff": f, "beta": b, "d_cutoff": 1.0}
        for f in (0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0) for b in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    ],
}
#: Grid ends that are not natural bounds of the parameter: a tuned value there means the grid
#: should be widened (reported as ``at_grid_edge``). Polyorder 0 and beta 0 are natural bounds.
OPEN_GRID_ENDS = {
    Smoother.SAVGOL: {"window": ("low", "high"), "polyorder": ("high",)},
    Smoother.ONE_EURO: {"min_cutoff": ("low", "high"), "beta": ("high",)},
}
# Targets of issue 5 for the d3prefine rows (see benchmarks/README.md).
TARGET_CHANGE_PCT = {"mpjpe": -15.0, "p_mpjpe": -15.0, "accel_error": -60.0}
TARGET_GAIN_MM = 2.0  # MPJPE and P-MPJPE at least this much lower than the best baseline row


class RowKind(str, Enum):
    """What produced a row's poses."""

    BASE = "base"  # the estimator output, unrefined
    SMOOTHER = "smoother"
    BONES = "bones"  # the estimator output re-chained to constant bone lengths (its own medians)
    GAUSSIAN_MEAN = "gaussian_mean"  # y - E[e | p, y] of the shipped noise statistics
    VARIANT = "variant"  # a baseline denoiser (another training of the same network), one-shot
    ABLATION = "ablation"  # d3prefine with one training choice changed, one-shot; not a baseline
    SHIPPED = "shipped"  # another d3prefine model used as it is (e.g. the shipped weights on other data), one-shot; not a baseline
    D3PREFINE = "d3prefine"  # the shipped weights


#: Rows the d3prefine targets must beat by TARGET_GAIN_MM.
BASELINE_KINDS = (RowKind.SMOOTHER, RowKind.BONES, RowKind.GAUSSIAN_MEAN, RowKind.VARIANT)


@dataclass(frozen=True)
class Variant:
    """``NAME=DENOISER[:NOISE]`` from ``--variant`` (``kind`` VARIANT) or ``--ablation`` (ABLATION);
    no NOISE: the shipped noise file."""

    name: str
    denoiser: Path
    noise: Path | None
    kind: RowKind

    @classmethod
    def parse(cls, text: str, kind: RowKind) -> Variant:
        name, equals, files = text.partition("=")
        denoiser, _, noise = files.partition(":")
        if not equals or not name or not denoiser:
            raise argparse.ArgumentTypeError(f"expected NAME=DENOISER[:NOISE], got {text!r}")
        return cls(name, Path(denoiser), Path(noise) if noise else None, kind)


#: Refine options a ``--setting`` row may set, with the type of their value (flags: bool).
SETTING_OPTIONS: dict[str, type] = {"flip": bool, "overlap": int, "bone_lengths": BoneLengthMode, "weights": str, "no_fallback": bool}


def parse_setting(text: str) -> dict:
    """``--setting`` text (``flip``, ``overlap=18,flip``, ``weights=blend``, ``no_fallback``, ...)
    as refine options (``weights``: a shipped set by name, or ``blend``, instead of ``--weights``;
    ``no_fallback``: ``fallback=False``, see :func:`refine_options`); an unknown name raises."""
    setting: dict = {}
    for item in text.split(","):
        key, equals, value = item.strip().partition("=")
        if key not in SETTING_OPTIONS or (SETTING_OPTIONS[key] is bool) == bool(equals):
            raise argparse.ArgumentTypeError(f"expected comma-separated {', '.join(SETTING_OPTIONS)} (flip takes no value), got {item!r}")
        try:
            setting[key] = True if SETTING_OPTIONS[key] is bool else SETTING_OPTIONS[key](value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}: invalid value {value!r}") from None
    return {key: value.value if isinstance(value, BoneLengthMode) else value for key, value in setting.items()}


def setting_flags(option: dict) -> str:
    """The refine flags of a ``--setting`` row, e.g. ``--overlap 18 --flip``."""
    flag = lambda key: "--" + key.replace("_", "-")
    return " ".join(flag(key) if value is True else f"{flag(key)} {value}" for key, value in option.items() if key in SETTING_OPTIONS)


def refine_options(option: dict) -> dict:
    """The ``refine_sequences`` options of a row's ``option`` (its ``weights`` chooses the refiner;
    ``no_fallback`` turns ``fallback`` off)."""
    refine = {key: value for key, value in option.items() if key not in ("weights", "no_fallback")}
    return refine | ({"fallback": False} if option.get("no_fallback") else {})


@dataclass(eq=False)  # rows compare (and hash) by identity
class Row:
    """One method on one estimator's validation sequences."""

    label: str
    kind: RowKind
    params: dict
    seconds: float  # wall time to produce the poses (not the scoring)
    report: MetricReport  # pooled over the sequences, millimetres
    sequence_reports: list[MetricReport] = field(default_factory=list)  # one per scored sequence, same order

    def metric(self, name: str) -> float:
        return self.report.summary[name]

    def sequence_harm(self, base: Row) -> tuple[float, dict[str, float]]:
        """Share of the scored sequences whose MPJPE this row raised above ``base``'s (by more than
        :data:`~benchmarks.report.WORSE_MM`), and the
        per-sequence MPJPE change (mm, positive: made worse) at its median, 90th percentile and max."""
        own = np.array([r.summary["mpjpe"] for r in self.sequence_reports])
        other = np.array([r.summary["mpjpe"] for r in base.sequence_reports])
        change = own - other
        return float(np.mean(made_worse(own, other))), {"p50": float(np.percentile(change, 50)), "p90": float(np.percentile(change, 90)), "max": float(change.max())}

    def to_json(self, base: Row) -> dict:
        worse_share, change = self.sequence_harm(base)
        return {
            "label": self.label, "kind": self.kind.value, "params": self.params, "frames": self.report.frames,
            "seconds": self.seconds, "frames_per_s": self.report.frames / max(self.seconds, 1e-9),
            "metrics": self.report.summary,
            "change_pct": {name: change_pct(self.metric(name), base.metric(name)) for name in METRIC_NAMES},
            "sequences_worse_share": worse_share, "sequence_change_mm": change,
        }


def estimator_label(sequences: Sequence[PoseSequence | SequenceMetadata], path: Path) -> str:
    """The one ``provenance["estimator"]`` of all sequences, else the file stem."""
    names = {seq.provenance.get("estimator") for seq in sequences}
    return str(names.pop()) if len(names) == 1 and None not in names else path.stem


def load_scored(
    path: Path, count: int | None, seed: int, keep: Callable[[PoseSequence], bool] | None = None
) -> list[PoseSequence]:
    """Sequences of ``path`` (those ``keep`` accepts, then a seeded subsample of ``count``), each
    with ``gt_3d`` and ``fps``."""
    sequences = subsample([seq for seq in load_poses(path) if keep is None or keep(seq)], count, seed)
    for seq in sequences:
        for key in ("gt_3d", "fps"):
            if getattr(seq, key) is None:
                raise InputError(f"{path}: sequence {seq.name!r}: missing key {key!r}, the benchmark needs it")
    return sequences


def sequence_reports(poses: Sequence[np.ndarray], sequences: Sequence[PoseSequence]) -> list[MetricReport]:
    """Metrics of predicted poses ``(T, J, 3)`` metres against each sequence's ``gt_3d``, one report per sequence."""
    return [evaluate_poses(pred, seq.gt_3d, seq.layout) for pred, seq in zip(poses, sequences)]


def pooled_report(poses: Sequence[np.ndarray], sequences: Sequence[PoseSequence]) -> MetricReport:
    """:func:`sequence_reports` pooled frame-weighted."""
    return pool_reports(sequence_reports(poses, sequences))


def _score(
    label: str, kind: RowKind, params: dict, sequences: list[PoseSequence], predict: Callable[[], list[np.ndarray]]
) -> Row:
    """Time ``predict`` (poses ``(T, J, 3)`` metres per sequence) and score it against ``gt_3d``."""
    start = time.perf_counter()
    poses = predict()
    seconds = time.perf_counter() - start
    reports = sequence_reports(poses, sequences)
    report = pool_reports(reports)
    row = Row(label, kind, params, seconds, report, reports)
    scores = ", ".join(f"{METRICS[m].title} {fmt(row.metric(m), 2)} {METRICS[m].unit}" for m in ("mpjpe", "p_mpjpe", "accel_error"))
    log(f"  {label}: {scores} ({report.frames} frames, {seconds:.1f} s)")
    return row


def _estimates(sequences: list[PoseSequence]) -> list[np.ndarray]:
    return [seq.poses_3d for seq in sequences]


def _constant_bones(sequences: list[PoseSequence]) -> list[np.ndarray]:
    """The estimator output with every bone at its median length over the sequence (no model)."""
    return [constrain_bones(seq.poses_3d, seq.poses_3d, BoneLengthMode.CONSTANT, seq.layout) for seq in sequences]


def gaussian_mean(noise: NoiseModel, sequences: list[PoseSequence], root: int) -> list[np.ndarray]:
    """``y - E[e | p, y]`` per sequence, ``(T, J, 3)`` metres (what an untrained denoiser returns)."""
    poses = []
    for seq in sequences:
        x = model_inputs(seq.poses_2d, seq.poses_3d, seq.image_size, root)
        with torch.inference_mode():
            error = noise.mean(torch.from_numpy(x.p), torch.from_numpy(x.y)).numpy()
        poses.append(seq.poses_3d - error)
    return poses


class Bench:
    """The models and options shared by every estimator's rows, and the progress display."""

    def __init__(self, args: argparse.Namespace, refiner: Refiner, variants: list[tuple[Variant, Refiner]], progress: Progress):
        self.args, self.refiner, self.variants, self.progress = args, refiner, variants, progress
        self.named: dict[str, Refiner | BlendedRefiner] = {}  # the weights=NAME of --setting rows

    def refiner_for(self, name: str | None) -> Refiner | BlendedRefiner:
        """The refiner of a row: ``--weights``, or a ``--setting`` row's shipped set (or ``blend``) by name."""
        if name is None:
            return self.refiner
        if name not in self.named:
            self.named[name] = load_refiner(name, device=self.args.device)
        return self.named[name]

    def _refined(self, refiner: Refiner | BlendedRefiner, sequences: list[PoseSequence], label: str, **options) -> list[np.ndarray]:
        task = self.progress.add_task(label, total=sum(seq.num_frames for seq in sequences))
        results = refiner.refine_sequences(  # as refine does: at the weights' frame rate and back
            sequences, batch_size=self.args.batch_size, seed=self.args.seed, progress=lambda n: self.progress.advance(task, n), **options,
        )
        return [result.poses_3d for result in results]

    def _smoother_row(self, kind: Smoother, train: list[PoseSequence], sequences: list[PoseSequence]) -> Row:
        """Tune ``kind`` on the training sequences (lowest MPJPE over its grid), then apply it."""
        fps = {seq.fps for seq in train}
        if len(fps) != 1:
            raise InputError(f"training sequences of one estimator must share one fps to tune {kind.value}, got {sorted(fps)}")
        grid = SMOOTHER_GRIDS[kind]
        task = self.progress.add_task(f"tuning {kind.value} ({len(grid)} candidates)", total=1)
        start = time.perf_counter()
        params, score = tune_smoother(kind, [s.poses_3d for s in train], [s.gt_3d for s in train], fps.pop(), grid)
        self.progress.advance(task)
        edges = grid_edges(kind, params, grid)
        if edges:
            log(f"  note: the tuned {kind.value} {', '.join(edges)} lies at the edge of its grid (SMOOTHER_GRIDS)")
        tuning = {"tuned_on_sequences": len(train), "tuning_mpjpe_mm": score, "tuning_seconds": time.perf_counter() - start,
                  "at_grid_edge": edges}
        shown = ", ".join(f"{name} {value:g}" for name, value in params.items() if name != "d_cutoff")
        return _score(f"{kind.value} ({shown})", RowKind.SMOOTHER, {"smoother": kind.value, **params, **tuning}, sequences,
                      lambda: [smooth(kind, seq.poses_3d, seq.fps, **params) for seq in sequences])

    def estimator(self, val_path: Path, train: dict[str, tuple[Path, list[PoseSequence]]]) -> dict:
        """All rows for one validation file; returns its section of the report (rows as :class:`Row`)."""
        args = self.args
        sequences = load_scored(val_path, args.max_sequences, args.seed)
        label = estimator_label(sequences, val_path)
        if label not in train:
            raise InputError(f"{val_path}: no --train file holds estimator {label!r} (training files hold {sorted(train)})")
        train_path, train_sequences = train[label]
        frames = sum(seq.num_frames for seq in sequences)
        log(f"{label}: {len(sequences)} sequences, {frames} frames from {val_path}; smoothers tuned on {train_path}")
        rows = [_score("base estimator", RowKind.BASE, {}, sequences, partial(_estimates, sequences))]
        rows += [self._smoother_row(kind, train_sequences, sequences) for kind in Smoother]
        rows.append(_score("constant bone lengths (sequence medians)", RowKind.BONES, {}, sequences, partial(_constant_bones, sequences)))
        mean = partial(gaussian_mean, self.refiner.noise.to("cpu"), sequences, self.refiner.layout.root)
        rows.append(_score("Gaussian conditional mean", RowKind.GAUSSIAN_MEAN, {}, sequences, mean))
        for variant, refiner in self.variants:
            name = variant.name if variant.kind is RowKind.SHIPPED else f"{variant.kind.value} {variant.name}"
            modes = [{}] + [{"bone_lengths": mode.value} for mode in args.bone_lengths if variant.kind is RowKind.SHIPPED]
            for mode in modes:
                row_name = f"{name} (K=1{''.join(f', bone lengths {value}' for value in mode.values())})"
                refined = partial(self._refined, refiner, sequences, row_name, steps=1, **mode)
                rows.append(_score(row_name, variant.kind, {"variant": variant.name, "steps": 1, **mode}, sequences, refined))
        options = [{"steps": k} for k in args.steps]
        settings = [{"steps": args.steps[0], **setting} for setting in args.setting]
        options[1:1] = [{"steps": args.steps[0], "smooth": 0}, *({"steps": args.steps[0], "bone_lengths": m.value} for m in args.bone_lengths),
                        *settings]
        if args.samples > 1:
            options.append({"steps": args.sample_steps, "samples": args.samples, "eta": args.eta})
        for option in options:
            name = f"d3prefine K={option['steps']}"
            if "samples" in option:
                name += f", S={option['samples']} samples, eta={option['eta']:g}"
            if "smooth" in option:
                name += ", no smoothing"
            if any(option is setting for setting in settings):
                name += ", " + setting_flags(option)
            elif "bone_lengths" in option:
                name += f", bone lengths {option['bone_lengths']}"
            refined = partial(self._refined, self.refiner_for(option.get("weights")), sequences, name, **refine_options(option))
            rows.append(_score(name, RowKind.D3PREFINE, {"samples": 1, **option}, sequences, refined))
        return {
            "estimator": label, "val_file": val_path, "train_file": train_path, "sequences": len(sequences), "frames": frames,
            "sequence_names": [seq.name for seq in sequences], "rows": rows,
        }


# ------------------------------------------------------------------------------------------ verdicts


def grid_edges(kind: Smoother, params: dict[str, float], grid: list[dict[str, float]]) -> list[str]:
    """The tuned parameters of ``kind`` that lie on an open end of its grid (see ``OPEN_GRID_ENDS``)."""
    edges = []
    for name, ends in OPEN_GRID_ENDS[kind].items():
        values = sorted({candidate[name] for candidate in grid})
        if ("low" in ends and params[name] == values[0]) or ("high" in ends and params[name] == values[-1]):
            edges.append(f"{name} {params[name]:g}")
    return edges


def _best(rows: list[Row], metric: str = "mpjpe") -> Row | None:
    return min(rows, key=lambda row: row.metric(metric), default=None)


def target_checks(rows: list[Row]) -> list[Check]:
    """Targets for the default d3prefine row (K=1) and the best d3prefine row (lowest MPJPE)."""
    base = rows[0]
    ours = [row for row in rows if row.kind is RowKind.D3PREFINE]
    default = next((row for row in ours if row.params == {"steps": DEFAULT_STEPS, "samples": 1}), None)
    subjects = list(dict.fromkeys(row for row in (default, _best(ours)) if row is not None))
    baselines = [row for row in rows if row.kind in BASELINE_KINDS]
    checks = []
    for row in subjects:
        for metric in ("mpjpe", "p_mpjpe", "accel_error"):
            value = change_pct(row.metric(metric), base.metric(metric))
            name = f"{METRICS[metric].title} vs base estimator"
            checks.append(Check(name, row.label, value, Compare.AT_MOST, TARGET_CHANGE_PCT[metric], "%"))
        for metric in ("mpjpe", "p_mpjpe"):
            best = _best(baselines, metric)
            gain = best.metric(metric) - row.metric(metric) if best else None
            name = f"{METRICS[metric].title} below best baseline ({best.label if best else 'none'})"
            checks.append(Check(name, row.label, gain, Compare.AT_LEAST, TARGET_GAIN_MM, "mm"))
    return checks


def multistep_vs_variants(rows: list[Row]) -> list[dict]:
    """For every variant and ablation: does the best d3prefine row with K > 1 have a lower MPJPE?"""
    best = _best([row for row in rows if row.kind is RowKind.D3PREFINE and row.params["steps"] > 1])
    return [
        {
            "variant": row.params["variant"], "variant_mpjpe": row.metric("mpjpe"),
            "best_multistep_row": best.label if best else None, "best_multistep_mpjpe": best.metric("mpjpe") if best else None,
            "multistep_beats_variant": best.metric("mpjpe") < row.metric("mpjpe") if best else None,
        }
        for row in rows if row.kind in (RowKind.VARIANT, RowKind.ABLATION)
    ]


# ------------------------------------------------------------------------------------------ output


def _cell(row: Row, base: Row, metric: str) -> str:
    value = fmt(row.metric(metric), 2)
    return value if row is base else f"{value} ({fmt(change_pct(row.metric(metric), base.metric(metric)), 1, '%', signed=True)})"


def _worse_cell(row: Row, base: Row) -> str:
    """Share of sequences whose MPJPE ``row`` made worse than ``base``, and the 90th percentile of the change."""
    if row is base:
        return "—"
    worse_share, change = row.sequence_harm(base)
    return f"{fmt(100 * worse_share, 0, ' %')} ({fmt(change['p90'], 1, signed=True)})"


def estimator_markdown(section: dict) -> str:
    rows: list[Row] = section["rows"]
    base, best = rows[0], _best([row for row in rows if row.kind is RowKind.D3PREFINE])
    header = ["method", *(f"{METRICS[m].title} ({METRICS[m].unit})" for m in METRIC_NAMES), "sequences made worse (p90 mm)",
              "frames", "time (s)"]
    table = [
        [f"**{row.label}** (best d3prefine)" if row is best else row.label, *(_cell(row, base, m) for m in METRIC_NAMES),
         _worse_cell(row, base), str(row.report.frames), fmt(row.seconds, 1)]
        for row in rows
    ]
    lines = [
        f"## {section['estimator']}", "",
        (f"{section['sequences']} sequences, {section['frames']:,} frames from `{section['val_file']}`; "
         f"smoothers tuned on `{section['train_file']}`. Values in mm (velocity per frame, acceleration per frame²), "
         "in parentheses the change versus the base estimator (negative: lower error). Sequences made worse: the share "
         f"whose MPJPE rose above the base estimator's by more than {WORSE_MM:g} mm, and the 90th percentile of the per-sequence MPJPE change."), "",
        markdown_table(header, table), "",
    ]
    for row in rows:
        if row.params.get("at_grid_edge"):
            lines += [f"Note: {row.label}: tuned {', '.join(row.params['at_grid_edge'])} at the edge of the search grid.", ""]
    lines += [f"### Targets ({section['estimator']})", ""]
    checks: list[Check] = section["targets"]
    subjects = list(dict.fromkeys(check.subject for check in checks))
    if not subjects:
        lines.append("No d3prefine row: nothing to check.")
    else:
        by_name: dict[str, list[Check]] = {}
        for check in checks:
            by_name.setdefault(check.name, []).append(check)
        cells = [[name, group[0].requirement, *(c.measured(signed=True) for c in group)] for name, group in by_name.items()]
        lines += [
            ("The default setting (K=1) and the best d3prefine row (lowest MPJPE, chosen on this validation set). "
             "A gain below the best baseline is the baseline's error minus d3prefine's."), "",
            markdown_table(["target", "required", *subjects], cells, align_right_from=2),
        ]
    lines.append("")
    for item in section["multistep_vs_variants"]:
        if item["best_multistep_row"] is None:
            lines.append(f"- No d3prefine row with K > 1 was run: no comparison with variant {item['variant']}.")
        elif item["multistep_beats_variant"]:
            lines.append(f"- Diffusion with K > 1 beats variant {item['variant']}: {item['best_multistep_row']} has MPJPE "
                         f"{fmt(item['best_multistep_mpjpe'], 2)} mm vs {fmt(item['variant_mpjpe'], 2)} mm.")
        else:
            lines.append(f"- **Diffusion with K > 1 does NOT beat variant {item['variant']}**: the best K > 1 row "
                         f"({item['best_multistep_row']}) has MPJPE {fmt(item['best_multistep_mpjpe'], 2)} mm vs "
                         f"{fmt(item['variant_mpjpe'], 2)} mm for the variant.")
    return "\n".join(lines)


def markdown(document: dict) -> str:
    run = document["run"]
    head = [
        f"# {document.get('title', 'd3prefine accuracy benchmark')}", "",
        f"`{run['command']}`", "",
        f"{run_summary(run)}, device {document['settings']['device']}.", "",
        ("Variants are baselines (another training of the same network); ablations are d3prefine with one training "
         "choice changed, and shipped rows another d3prefine model used as it is; neither is a baseline. The time column is the wall time of each row on a possibly busy "
         "machine, not a speed measurement (see the speed benchmark)."), "",
    ]
    verdicts = [c.verdict for section in document["estimators"] for c in section["targets"]]
    head += [f"Targets: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} FAIL, {verdicts.count('n/a')} n/a.", ""]
    return "\n".join(head) + "\n" + "\n\n".join(estimator_markdown(section) for section in document["estimators"])


def to_json(document: dict) -> dict:
    """The document with rows and checks as plain dicts."""
    estimators = []
    for section in document["estimators"]:
        rows = section["rows"]
        rows_json, targets_json = [row.to_json(rows[0]) for row in rows], [c.to_json() for c in section["targets"]]
        estimators.append({**section, "rows": rows_json, "targets": targets_json})
    return {**document, "estimators": estimators}


# ------------------------------------------------------------------------------------------ command line


def make_parser(module: str = "benchmarks.accuracy", doc: str = __doc__) -> argparse.ArgumentParser:
    """The accuracy benchmark's options, for ``python -m module`` described by the first paragraph of ``doc``."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=" ".join(doc.split("\n\n")[0].split()))
    parser.add_argument("--val", type=Path, action="append", required=True, help="validation pose file of one base estimator (repeat)")
    parser.add_argument("--train", type=Path, action="append", required=True,
                        help="training pose file of one base estimator, to tune the smoothers on (repeat)")
    add_weights_arguments(parser)
    parser.add_argument("--variant", type=partial(Variant.parse, kind=RowKind.VARIANT), action="append", default=[],
                        metavar="NAME=DENOISER[:NOISE]",
                        help="a baseline denoiser refined with K=1, counted among the baselines; NOISE defaults to the "
                             "d3prefine noise file (repeat)")
    parser.add_argument("--ablation", type=partial(Variant.parse, kind=RowKind.ABLATION), action="append", default=[],
                        metavar="NAME=DENOISER[:NOISE]", help="d3prefine with one training choice changed, refined with K=1 "
                        "and reported, but not a baseline (repeat)")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 10], help="K of the deterministic d3prefine rows")
    parser.add_argument("--samples", type=int, default=8, help="S of the sampled d3prefine row (< 2: no such row)")
    parser.add_argument("--sample-steps", type=int, default=5, help="K of the sampled row")
    parser.add_argument("--eta", type=float, default=DEFAULT_ETA, help="stochasticity of the sampled row")
    parser.add_argument("--bone-lengths", type=BoneLengthMode, nargs="*", metavar="MODE",
                        default=[mode for mode in BoneLengthMode if mode is not DEFAULT_BONE_LENGTHS],
                        help="extra K=1 rows of d3prefine and of the shipped rows with refine --bone-lengths MODE "
                             "(default: every mode but refine's default)")
    parser.add_argument("--setting", type=parse_setting, action="append", default=[], metavar="OPTIONS",
                        help="a row of the first --steps K with these refine options, e.g. 'flip' or 'overlap=18,flip,bone_lengths=constant' (repeat)")
    parser.add_argument("--max-sequences", type=int, default=None,
                        help="score a seeded subsample of this many validation sequences per file")
    parser.add_argument("--tune-sequences", type=int, default=300, help="training sequences (seeded subsample) to tune the smoothers on")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="windows per network call")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsamples and of the sampled row")
    return parser


def parse_args(argv: list[str], parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse and check the options of :func:`make_parser` (or of ``parser``, built on it)."""
    parser = parser or make_parser()
    args = parser.parse_args(argv)
    if min(args.steps) < 1 or args.sample_steps < 2 <= args.samples:
        parser.error("--steps must be >= 1, and --sample-steps >= 2 when --samples >= 2")
    args.device = parse_device(parser, args.device)
    return args


def run(args: argparse.Namespace, argv: list[str], module: str = "benchmarks.accuracy", shipped: Sequence[Variant] = ()) -> dict:
    """Load everything, run every row; returns the report document (rows as :class:`Row`).

    ``module`` names the script in the recorded command; ``shipped`` are extra one-shot rows of
    other d3prefine models (kind SHIPPED), run before the variants.
    """
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    provenance = run_info(module, argv, [args.device])
    refiner = Refiner.from_pretrained(args.weights, args.noise, device=args.device)
    variants = [
        (v, Refiner.from_pretrained(v.denoiser, v.noise or refiner.noise_path, device=args.device))
        for v in [*shipped, *args.variant, *args.ablation]
    ]
    train: dict[str, tuple[Path, list[PoseSequence]]] = {}
    for path in args.train:
        sequences = load_scored(path, None, args.seed)
        label = estimator_label(sequences, path)
        if label in train:
            raise InputError(f"{path}: estimator {label!r} already comes from --train {train[label][0]}; give one file per estimator")
        train[label] = (path, subsample(sequences, args.tune_sequences, args.seed))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        bench = Bench(args, refiner, variants, progress)
        estimators = [bench.estimator(path, train) for path in args.val]
    for section in estimators:
        section["targets"] = target_checks(section["rows"])
        section["multistep_vs_variants"] = multistep_vs_variants(section["rows"])
    weights = {"d3prefine": weights_digest(refiner), **{v.name: weights_digest(r) for v, r in variants}}
    names = ("steps", "samples", "sample_steps", "eta", "bone_lengths", "setting", "max_sequences", "tune_sequences", "batch_size", "device", "seed")
    settings = {name: getattr(args, name) for name in names} | {"bone_lengths": [mode.value for mode in args.bone_lengths]}
    return {
        "benchmark": "accuracy",
        "run": provenance,
        "settings": {**settings, "smooth": DEFAULT_SMOOTH, "threads": torch.get_num_threads(), "smoother_grids": {k.value: g for k, g in SMOOTHER_GRIDS.items()}},
        "weights": weights,
        "metrics": {"names": list(METRIC_NAMES), "units": METRIC_UNITS},
        "estimators": estimators,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)

    def build() -> tuple[dict, str]:
        document = run(args, argv)
        return to_json(document), markdown(document)

    return run_and_write(args.out, build)


if __name__ == "__main__":
    sys.exit(main())
