"""Human3.6M benchmark: d3prefine trained on a real estimator's outputs (real detections) against
that estimator, tuned smoothers, the Gaussian conditional mean, baseline denoisers and the shipped
weights as they are, on a held-out subject, with Human3.6M's per-action averages.

    python -m benchmarks.h36m --val data/h36m/val_temporal.h5 --val data/h36m/val_frame.h5 \\
        --train data/h36m/train_temporal.h5 --train data/h36m/train_frame.h5 \\
        --weights runs/h36m/denoiser.safetensors --noise runs/h36m/noise.safetensors \\
        --variant regression=runs/h36m/regression.safetensors --shipped weights/ \\
        --out benchmarks/results/h36m --threads 2

Every option and row of :mod:`benchmarks.accuracy` (whose machinery this runs), plus rows for
every ``--shipped [NAME=]DIR`` (its ``denoiser.safetensors`` with its own ``noise.safetensors``,
refined with K=1, also with each ``--bone-lengths`` mode) and, for every row, the metrics per Human3.6M action (``provenance["action_group"]``
of the sequences, the action without its take number; frame-weighted within an action) and
their mean over actions, the Human3.6M convention, per subject (``provenance["subject"]``,
frame-weighted; the Markdown table only when a file holds several) and per joint (MPJPE pooled
over every frame: where refinement gains and where it loses). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmarks import accuracy
from benchmarks.report import change_pct, fmt, markdown_table, run_and_write
from d3prefine.errors import InputError
from d3prefine.io import load_poses
from d3prefine.metrics import METRICS, pool_reports
from d3prefine.skeleton import JointLayout

#: Metrics averaged over actions (bone-length std is a property of the prediction, not an error).
ACTION_METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "accel_error")
SHIPPED_LABEL = "shipped weights as they are"


def shipped_weights(text: str) -> accuracy.Variant:
    """``[NAME=]DIR`` of ``--shipped``: a SHIPPED row labelled "shipped weights as they are" (or
    "shipped weights NAME as they are") for DIR's denoiser and noise files."""
    name, equals, folder = text.rpartition("=")
    if equals and not name or not folder:
        raise argparse.ArgumentTypeError(f"expected [NAME=]DIR, got {text!r}")
    label = SHIPPED_LABEL if not name else SHIPPED_LABEL.replace("weights", f"weights {name}")
    return accuracy.Variant(label, Path(folder) / "denoiser.safetensors", Path(folder) / "noise.safetensors", accuracy.RowKind.SHIPPED)


#: The provenance keys the rows are grouped by: per action (its averages) and per subject.
GROUP_KEYS = ("action_group", "subject")


def provenance_groups(path: Path) -> tuple[dict[str, dict[str, str]], JointLayout]:
    """``{key: {sequence name: provenance[key]}}`` of every :data:`GROUP_KEYS` key over the
    sequences of ``path``, and their joint layout."""
    groups: dict[str, dict[str, str]] = {key: {} for key in GROUP_KEYS}
    sequences = load_poses(path)
    for seq in sequences:
        for key in GROUP_KEYS:
            group = seq.provenance.get(key)
            if not isinstance(group, str) or not group:
                raise InputError(f"{path}: sequence {seq.name!r}: provenance has no {key!r}, the per-action and per-subject tables need it")
            groups[key][seq.name] = group
    return groups, sequences[0].layout


def pooled_by_group(row: accuracy.Row, groups: list[str]) -> dict[str, dict[str, float]]:
    """``{group: {metric: mm}}`` of one row, each group pooled frame-weighted over its sequences
    (``groups``: one name per sequence of the row)."""
    return {
        g: {m: value for m, value in pool_reports([r for r, own in zip(row.sequence_reports, groups) if own == g]).summary.items() if m in ACTION_METRICS}
        for g in sorted(set(groups))
    }


def per_action(row: accuracy.Row, groups: list[str]) -> dict:
    """``{"per_action": {action: {metric: mm}}, "mean_over_actions": {metric: mm}}`` of one row
    (each action pooled frame-weighted over its sequences, then the plain mean over actions)."""
    pooled = pooled_by_group(row, groups)
    means = {m: float(np.nanmean([metrics[m] for metrics in pooled.values()])) for m in ACTION_METRICS}
    return {"per_action": pooled, "mean_over_actions": means}


def actions_markdown(section: dict) -> str:
    rows, actions = section["rows"], section["actions"]
    base = actions[rows[0].label]["mean_over_actions"]
    cells = [
        [row.label, *(f"{fmt(actions[row.label]['mean_over_actions'][m], 2)} "
                      f"({fmt(change_pct(actions[row.label]['mean_over_actions'][m], base[m]), 1, '%', signed=True)})"
                      for m in ACTION_METRICS)]
        for row in rows
    ]
    header = ["method", *(f"{METRICS[m].title} ({METRICS[m].unit})" for m in ACTION_METRICS)]
    names = sorted(next(iter(actions.values()))["per_action"])
    per_action_cells = [[row.label, *(fmt(actions[row.label]["per_action"][a]["mpjpe"], 1) for a in names)] for row in rows]
    return "\n".join([
        f"### {section['estimator']}: mean over actions (Human3.6M convention)", "",
        (f"Each of the {len(names)} actions pooled frame-weighted over its sequences, then averaged over actions; "
         "in parentheses the change versus the base estimator."), "",
        markdown_table(header, cells), "",
        f"### {section['estimator']}: MPJPE (mm) per action", "",
        markdown_table(["method", *names], per_action_cells), "",
        *subjects_markdown(section),
        *joints_markdown(section),
    ])


def subjects_markdown(section: dict) -> list[str]:
    """The per-subject MPJPE table's lines (none for a file of one subject)."""
    rows, subjects = section["rows"], section["subjects"]
    names = sorted(subjects[rows[0].label])
    if len(names) < 2:
        return []
    base = subjects[rows[0].label]
    cells = [[row.label, *(f"{fmt(subjects[row.label][s]['mpjpe'], 1)} "
                           f"({fmt(change_pct(subjects[row.label][s]['mpjpe'], base[s]['mpjpe']), 1, '%', signed=True)})" for s in names)]
             for row in rows]
    counts = ", ".join(f"{s} {section['subject_sequences'][s]}" for s in names)
    return [
        f"### {section['estimator']}: MPJPE (mm) per subject", "",
        f"Each subject pooled frame-weighted over its sequences ({counts}); in parentheses the change versus the base estimator.", "",
        markdown_table(["method", *names], cells), "",
    ]


def joints_markdown(section: dict) -> list[str]:
    """The per-joint MPJPE table's lines (the root joint, at 0 by the root-relative protocol, left out)."""
    names, joints = section["joint_names"], section["joints"]
    shown = [j for j in range(len(names)) if j != section["root_joint"]]
    cells = [[label, *(fmt(values[j], 1) for j in shown)] for label, values in joints.items()]
    return [
        f"### {section['estimator']}: MPJPE (mm) per joint", "",
        "Root-relative, pooled over every frame of every sequence.", "",
        markdown_table(["method", *(names[j] for j in shown)], cells), "",
    ]


def markdown(document: dict) -> str:
    sections = "\n".join(actions_markdown(section) for section in document["estimators"])
    return accuracy.markdown(document) + "\n\n## Per-action averages\n\n" + sections


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = accuracy.make_parser("benchmarks.h36m", __doc__)
    parser.add_argument("--shipped", type=shipped_weights, action="append", default=[], metavar="[NAME=]DIR",
                        help="also refine with DIR/denoiser.safetensors and DIR/noise.safetensors as they are (K=1), "
                             "e.g. weights/; NAME tells several apart (repeat)")
    args = accuracy.parse_args(argv, parser)
    shipped = args.shipped

    def build() -> tuple[dict, str]:
        groups_by_file = {path: provenance_groups(path) for path in args.val}  # checked before the long work
        document = accuracy.run(args, argv, "benchmarks.h36m", shipped)
        document["benchmark"], document["title"] = "h36m", "d3prefine Human3.6M benchmark (real detections)"
        for section in document["estimators"]:
            groups, layout = groups_by_file[section["val_file"]]
            actions, subjects = ([groups[key][name] for name in section["sequence_names"]] for key in GROUP_KEYS)
            section["actions"] = {row.label: per_action(row, actions) for row in section["rows"]}
            section["subjects"] = {row.label: pooled_by_group(row, subjects) for row in section["rows"]}
            section["subject_sequences"] = {s: subjects.count(s) for s in sorted(set(subjects))}
            section["joint_names"], section["root_joint"] = list(layout.joint_names), layout.root
            section["joints"] = {row.label: row.report.per_joint["mpjpe"].tolist() for row in section["rows"]}
        document["metrics"]["action_metrics"] = list(ACTION_METRICS)
        return accuracy.to_json(document), markdown(document)

    return run_and_write(args.out, build)


if __name__ == "__main__":
    sys.exit(main())
