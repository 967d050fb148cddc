"""Blending the refinements of several weight sets by how familiar each finds the inputs.

The shipped sets learnt different data: the default ``weights/`` a pool of lifters of both
Bandai builds, ``weights/varied/`` the real-detector build's two lifters (``weights/README.md``).
A user does not know which their data resembles, but each set's guard (:mod:`d3prefine.guard`) scores how far a sequence lies
from that set's training data, in the same units (0 typical, each unit a doubling). A
:class:`BlendedRefiner` refines every sequence with each set and returns the weighted mean of
the refined poses (metres, same frame as the input), set ``i`` weighted by
``2**(-sharpness * (score_i - threshold_i))`` normalized to sum 1
(:func:`~d3prefine.guard.familiar_mean`): the set that knows the inputs best counts most, and
where both know them about as well their mean averages out their errors. With ``fallback`` (the
default) the input, filtered as the refinements are, is one more member at excess 0, so that it
takes over where every set flags the sequence. The bone lengths are set again after the mean
(``bone_lengths``, as every refinement), and the result's guard score is that of the heaviest
set. The sharpness (:data:`~d3prefine.guard.SHARPNESS`) was chosen on the Bandai validation of
both builds (README, "Blending the shipped sets"); nothing is fitted on the data refined.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from d3prefine.bones import DEFAULT_BONE_LENGTHS, BoneLengthMode
from d3prefine.config import DEFAULT_FALLBACK, DEFAULT_SMOOTH
from d3prefine.errors import UsageError, WeightsError
from d3prefine.guard import SHARPNESS
from d3prefine.refine import Refiner, RefineResult, SequenceInput, StreamRefiner, lean_on_input

BLEND_NAME = "blend"  # refine --weights blend: the shipped sets of BLEND_SETS
BLEND_SETS: tuple[str | None, ...] = (None, "varied")  # Refiner.from_pretrained names: the default set and weights/varied


def load_refiner(
    weights: str | Path | None, noise: str | Path | None = None, *, device: str = "auto", noise_mismatch_ok: bool = False
) -> Refiner | BlendedRefiner:
    """The refiner ``--weights`` names: the shipped sets blended for :data:`BLEND_NAME` (unless a
    path of that name exists, as for :data:`~d3prefine.refine.SHIPPED_SETS`), else
    :meth:`Refiner.from_pretrained` of ``weights`` and ``noise``.

    Raises:
        UsageError: ``noise`` given with :data:`BLEND_NAME` (each set uses its own statistics).
    """
    if str(weights) == BLEND_NAME and not Path(BLEND_NAME).exists():
        if noise is not None:
            raise UsageError("--weights blend uses each shipped set's own noise statistics: no --noise")
        return BlendedRefiner.shipped(device)
    return Refiner.from_pretrained(weights, noise, device=device, noise_mismatch_ok=noise_mismatch_ok)


class BlendedRefiner(StreamRefiner):
    """Several :class:`~d3prefine.refine.Refiner` whose refinements are blended by their guard
    scores (module docstring); refines as one refiner does, deterministically (no ``samples``).

    Raises:
        WeightsError: fewer than two refiners, one without a guard reference, or refiners of
            other joint layouts, frame rates or windows than the first.
    """

    def __init__(self, refiners: Sequence[Refiner], sharpness: float = SHARPNESS) -> None:
        if len(refiners) < 2:
            raise WeightsError(f"blending needs at least two weight sets, got {len(refiners)}")
        first = refiners[0]
        for refiner in refiners:
            if refiner.guard is None:
                raise WeightsError(f"{refiner.weights_path}: holds no guard reference, which blending weighs the sets by")
            if (refiner.layout.name, refiner.fps, refiner.window) != (first.layout.name, first.fps, first.window):
                raise WeightsError(
                    f"{refiner.weights_path}: layout {refiner.layout.name}, {refiner.fps} fps, window {refiner.window}; "
                    f"{first.weights_path}: {first.layout.name}, {first.fps} fps, window {first.window}: cannot blend them"
                )
        self.refiners, self.sharpness = list(refiners), sharpness
        self.layout, self.fps, self.window = first.layout, first.fps, first.window

    @classmethod
    def shipped(cls, device: str = "auto") -> BlendedRefiner:
        """The shipped sets of :data:`BLEND_SETS` on ``device``."""
        return cls([Refiner.from_pretrained(name, device=device) for name in BLEND_SETS])

    def resolve_overlap(self, overlap: int | None) -> int:
        """As :meth:`Refiner.resolve_overlap` (the sets share the window)."""
        return self.refiners[0].resolve_overlap(overlap)

    def blend(
        self, results: Sequence[RefineResult], poses_3d: np.ndarray, bone_lengths: BoneLengthMode | str, smooth: int, fallback: bool
    ) -> RefineResult:
        """The blend of one sequence's ``results`` (one per set, same frames, refined without
        fallback) whose input 3D was ``poses_3d (T, J, 3)`` metres; with ``fallback`` the input
        filtered with ``smooth`` is one more member. ``blend_weights`` holds the sets' weights,
        ``input_weight`` the input's."""
        root = self.layout.root
        relative = [pose - pose[:, root : root + 1] for pose in (poses_3d, *(r.poses_3d for r in results))]
        given, refined = relative[0], relative[1:]
        mean, weights = lean_on_input(refined, [r.guard.excess for r in results], given, smooth, bone_lengths, self.layout,
                                      fallback=fallback, sharpness=self.sharpness)
        sets = weights[: len(results)]
        heaviest = results[int(np.argmax(sets))]
        return replace(heaviest, poses_3d=(mean + poses_3d[:, root : root + 1]).astype(np.float32), uncertainty=None,
                       blend_weights=tuple(float(w) for w in sets), input_weight=float(weights[-1]) if fallback else None)

    def refine_stream(self, groups: Iterable[tuple[object, Sequence[SequenceInput]]], **options) -> Iterator[tuple[object, list[RefineResult]]]:
        """As :meth:`Refiner.refine_stream` (``samples`` must be 1): every set refines every group,
        and each sequence's results are blended."""
        if options.get("samples", 1) != 1:
            raise ValueError("blended weight sets refine deterministically: --samples must be 1")
        bones, smooth = options.get("bone_lengths", DEFAULT_BONE_LENGTHS), options.get("smooth", DEFAULT_SMOOTH)
        fallback = options.pop("fallback", DEFAULT_FALLBACK)
        inputs, *copies = itertools.tee(groups, len(self.refiners) + 1)
        streams = [refiner.refine_stream(copy, fallback=False, **options) for refiner, copy in zip(self.refiners, copies)]
        for (key, sequences), outputs in zip(inputs, zip(*streams)):
            per_sequence = zip(*(results for _, results in outputs))
            yield key, [self.blend(results, p3d, bones, smooth, fallback) for (_, p3d, _), results in zip(sequences, per_sequence)]
