"""Scoring pose files: predicted 3D poses against ground truth (or GT-free), with a baseline.

Which arrays are compared follows ``d3prefine evaluate`` (README "Commands", module docstring of
:mod:`d3prefine.cli.evaluate`); all metrics are root-relative, in mm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.io import PoseSequence, interpolated, load_poses
from d3prefine.metrics import METRICS, Metric, MetricReport, evaluate_poses
from d3prefine.pairing import Reference, ground_truth
from d3prefine.quality import GT_FREE_METRICS, Evidence, gt_free_report
from d3prefine.skeleton import JointLayout


class PoseKey(str, Enum):
    """3D pose arrays that can be scored."""

    REFINED = "poses_3d_refined"
    ESTIMATE = "poses_3d"


@dataclass(frozen=True)
class BaselineRule:
    """Where the baseline of a sequence comes from (see the module docstring)."""

    reference: Reference | None
    key: PoseKey | None

    def array(self, seq: PoseSequence, pred_key: PoseKey, pred_file: Path, pred_count: int) -> tuple[str, np.ndarray] | None:
        """``(label, (T, J, 3) metres)`` of the baseline for ``seq``, or ``None`` if it has none."""
        if self.reference is not None:
            other = self.reference.match(seq, pred_file, pred_count)
            key = self.key or _default_key(other)
            return f"{self.reference.path}:{key.value}", _pose_array(other, key, self.reference.path)
        key = self.key or (PoseKey.ESTIMATE if pred_key is PoseKey.REFINED else None)
        if key is None:
            return None
        if key is pred_key:
            raise InputError(f"{pred_file}: sequence {seq.name!r}: baseline key {key.value!r} is the prediction key itself")
        return key.value, _pose_array(seq, key, pred_file)


@dataclass
class SequenceScore:
    """Scores of one sequence: the prediction and, if any, its baseline."""

    file: Path
    name: str
    layout: JointLayout
    key: PoseKey
    report: MetricReport
    baseline: str | None
    baseline_report: MetricReport | None
    metrics: dict[str, Metric] = field(default_factory=lambda: METRICS)  # GT_FREE_METRICS without ground truth


def _default_key(seq: PoseSequence) -> PoseKey:
    return PoseKey.REFINED if seq.poses_3d_refined is not None else PoseKey.ESTIMATE


def _pose_array(seq: PoseSequence, key: PoseKey, path: Path) -> np.ndarray:
    array = getattr(seq, key.value)
    if array is None:
        raise InputError(f"{path}: sequence {seq.name!r}: missing key {key.value!r}")
    return array


def _check_shape(array: np.ndarray, reference: np.ndarray, seq: PoseSequence, what: str, against: str, path: Path) -> None:
    if array.shape != reference.shape:
        raise InputError(f"{path}: sequence {seq.name!r}: {what} has shape {array.shape}, {against} {reference.shape}")


def _score(pred: np.ndarray, gt: np.ndarray, seq: PoseSequence, what: str, path: Path) -> MetricReport:
    _check_shape(pred, gt, seq, what, "ground truth", path)
    return evaluate_poses(pred, gt, layout=seq.layout)


def score_file(path: Path, key: PoseKey | None, gt: Reference | None, baseline: BaselineRule) -> tuple[list[SequenceScore], list[PoseSequence]]:
    """Score every sequence of the pose file ``path``.

    Returns the scores and the file's sequences as scored: frames ``refine --fill`` filled are
    interpolated and ``gt_3d`` holds the ground truth used (``--gt``'s where given), for figures.
    """
    sequences = [interpolated(seq) for seq in load_poses(path)]  # frames refine --fill filled: scored as refined
    scores = []
    for k, seq in enumerate(sequences):
        pred_key = key or _default_key(seq)
        pred = _pose_array(seq, pred_key, path)
        base = baseline.array(seq, pred_key, path, len(sequences))
        if gt is None and seq.gt_3d is None:
            evidence = Evidence(seq.poses_3d, seq.poses_2d)
            if base:
                _check_shape(base[1], pred, seq, f"baseline {base[0]}", f"prediction {pred_key.value}", path)
            base_report = gt_free_report(base[1], evidence, seq.layout) if base else None
            report = gt_free_report(pred, evidence, seq.layout)
            scores.append(SequenceScore(path, seq.name, seq.layout, pred_key, report, base[0] if base else None, base_report, GT_FREE_METRICS))
            continue
        truth = ground_truth(seq, path, gt, len(sequences))
        sequences[k] = dataclasses.replace(seq, gt_3d=truth)
        report = _score(pred, truth, seq, pred_key.value, path)
        base_report = _score(base[1], truth, seq, f"baseline {base[0]}", path) if base else None
        scores.append(SequenceScore(path, seq.name, seq.layout, pred_key, report, base[0] if base else None, base_report))
    return scores, sequences
