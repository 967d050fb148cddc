"""Pairing sequences of a pose file with those of another file (ground truth, baseline), by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from d3prefine.errors import InputError
from d3prefine.io import PoseSequence, load_poses


@dataclass(frozen=True)
class Reference:
    """Sequences of a file given by ``--gt`` or ``--baseline``, by name."""

    path: Path
    sequences: dict[str, PoseSequence]

    @classmethod
    def load(cls, path: Path) -> Reference:
        return cls(path, {seq.name: seq for seq in load_poses(path)})

    def match(self, seq: PoseSequence, pred_file: Path, pred_count: int) -> PoseSequence:
        """The sequence paired with ``seq`` of ``pred_file`` (which holds ``pred_count`` sequences)."""
        if pred_count == 1 and len(self.sequences) == 1:
            return next(iter(self.sequences.values()))
        if seq.name not in self.sequences:
            names = ", ".join(map(repr, self.sequences))
            raise InputError(f"{pred_file}: sequence {seq.name!r} has no match in {self.path} (it holds {names})")
        return self.sequences[seq.name]


def ground_truth(seq: PoseSequence, pred_file: Path, gt: Reference | None, pred_count: int) -> np.ndarray:
    """Ground truth ``(T, J, 3)`` metres for ``seq`` of ``pred_file``: the sequence's own ``gt_3d``
    or, with a reference file, its matching sequence's ``gt_3d`` (else ``poses_3d``)."""
    if gt is None:
        if seq.gt_3d is None:
            raise InputError(f"{pred_file}: sequence {seq.name!r}: missing key 'gt_3d' (or pass --gt FILE)")
        return seq.gt_3d
    other = gt.match(seq, pred_file, pred_count)
    if other.joint_layout != seq.joint_layout:
        raise InputError(
            f"{gt.path}: sequence {other.name!r}: key 'joint_layout': expected {seq.joint_layout!r} "
            f"like {pred_file}, got {other.joint_layout!r}"
        )
    return other.gt_3d if other.gt_3d is not None else other.poses_3d
