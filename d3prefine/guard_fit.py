"""Fitting the refine guard of a set of weights: its reference and its threshold.

The rule of the shipped weights (``benchmarks.guard``, which also measures how well it works),
and what ``d3prefine train`` stores with every set it writes:

1. **Reference**: :func:`d3prefine.guard.fit_reference` on training sequences (the data the
   weights were trained on) refined with K = 1 and no fallback (:func:`reference_of`).
2. **Threshold**: a quantile of the guard scores of held-out validation sequences (in
   distribution, never trained on), rounded up to 0.1 (:func:`threshold_of`); the shipped
   weights use :data:`GUARD_QUANTILE`, so about 1 % of data like the validation is flagged.
   :func:`fit_guard` (``train``) keeps it at least :data:`MIN_THRESHOLD`, the shipped weights'
   threshold: the fallback weighs the refinement by ``2^(-4 x (score - threshold))`` against 1
   for the input, so a threshold of 1 leaves a typical sequence (score about 0: its conditions
   and correction as on the training data) 94 % of its refinement, while one of 0.2, the
   quantile a handful of validation pairs can give, would leave it 36 %.

A fine-tuned set (``train --init`` from weights that hold a guard) has learned both its init's
training data and the new pairs, so its reference pools the two (:meth:`GuardReference.pooled`,
each half): fitted on a few pairs alone, the Gaussian is as narrow as their motions, and the
fallback would lean on the input for every other motion the init weights refine well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from d3prefine.guard import GuardReference, fit_reference
from d3prefine.io import PoseSequence
from d3prefine.preprocess import model_inputs
from d3prefine.runtime import subsample

if TYPE_CHECKING:  # refine loads torch; this module does not, so that the CLI's help starts fast
    from d3prefine.refine import Refiner

GUARD_QUANTILE = 0.99  # quantile of the validation scores that becomes the threshold
GUARD_SEQUENCES = 300  # ``train``: seeded subsample of sequences for the reference and for the threshold
MIN_THRESHOLD = 1.0  # ``train``: the lowest threshold it stores (module docstring)
INIT_SHARE = 0.5  # fine-tuning: the share of the new pairs in the reference pooled with the init weights' (module docstring)


def guard_sequences(
    train: Sequence[PoseSequence], val: Sequence[PoseSequence], seed: int
) -> tuple[list[PoseSequence], list[PoseSequence]]:
    """Seeded subsamples of at most :data:`GUARD_SEQUENCES` of ``train`` and of ``val``: the
    sequences ``train`` gives :func:`fit_guard`."""
    return subsample(list(train), GUARD_SEQUENCES, seed), subsample(list(val), GUARD_SEQUENCES, seed)


def reference_of(refiner: Refiner, sequences: Sequence[PoseSequence]) -> GuardReference:
    """:func:`fit_reference` on ``sequences`` refined by ``refiner`` with K = 1 and no fallback
    (root-relative, metres); its threshold is 0 until :func:`threshold_of` chooses one."""
    results = refiner.refine_sequences(sequences, fallback=False)
    root = refiner.layout.root
    triples = []
    for seq, result in zip(sequences, results):
        x = model_inputs(seq.poses_2d, seq.poses_3d, seq.image_size, root)
        triples.append((x.p, x.y, result.poses_3d - result.poses_3d[:, root : root + 1]))
    return fit_reference(triples, root=root, threshold=0.0)


def guard_scores(refiner: Refiner, sequences: Sequence[PoseSequence]) -> np.ndarray:
    """The guard score of each of ``sequences`` refined with K = 1 (``refiner`` holds the reference)."""
    if refiner.guard is None:
        raise ValueError("the refiner holds no guard reference")
    return np.array([result.guard.score for result in refiner.refine_sequences(sequences)])


def threshold_of(scores: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of validation ``scores``, rounded up to 0.1 (a score of 0.3 gives 0.3:
    ``10 * 0.3`` is 3.0000000000000004 in floating point)."""
    return math.ceil(round(10 * float(np.quantile(scores, quantile)), 9)) / 10


def fit_guard(
    refiner: Refiner,
    train: Sequence[PoseSequence],
    val: Sequence[PoseSequence],
    quantile: float = GUARD_QUANTILE,
    init: GuardReference | None = None,
) -> GuardReference:
    """The reference of ``train`` (pooled with ``init``, the guard of the weights fine-tuned from,
    when given) with the threshold of ``val``, at least :data:`MIN_THRESHOLD` (module docstring);
    ``refiner`` holds it afterwards."""
    refiner.guard = reference_of(refiner, train)
    if init is not None:
        refiner.guard = init.pooled(refiner.guard, INIT_SHARE)
    refiner.guard = refiner.guard.with_threshold(max(MIN_THRESHOLD, threshold_of(guard_scores(refiner, val), quantile)))
    return refiner.guard
