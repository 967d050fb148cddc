"""Calibrated uncertainty: turn the spread of sampled refinements into an error radius.

``refine --samples S`` draws S stochastic refinements; their per-joint root-mean-square spread
around their mean (metres) ranks errors but is far smaller than them (the samples differ only by
the small noise ``eta`` mixes in). A split-conformal scale fixes that: on sequences the weights
did not train on, with ground truth, the ratio ``r = |refined - gt| / spread`` of every non-root
joint and frame is collected and ``scale`` is its ``ceil((n + 1) level) / n`` empirical quantile.
``scale * spread`` is then the radius (metres) of a ball around the refined joint that holds the
true joint with probability ``level`` (90 %) on data like the calibration data: an interval, not
a standard deviation.

On data unlike the calibration data the errors grow and the spread does not follow them. Three
rules (:class:`Widening`) widen the radius there:

- :attr:`Widening.GUARD`: ``scale * spread * 2**max(0, score)``, ``score`` the guard score of
  the sequence (:mod:`d3prefine.guard`: each unit a doubling of its distance from the training
  data): a sequence twice as far from the training data as typical gets twice the radius.
- :attr:`Widening.CORRECTION`: ``scale * (spread + correction_weight * |refined - input|)``
  per joint and frame: a refinement that moves a joint far is less sure where the joint lands,
  and on unlike data the network moves the joints further. ``correction_weight`` is chosen
  from :data:`CORRECTION_WEIGHTS` on estimators the weights did not train on (the smallest
  whose radius reaches ``level`` on each of them; ``python -m benchmarks.uncertainty
  --select``), ``scale`` then fitted as above.

- :attr:`Widening.CORRECTION_GUARD`: both, ``scale * (spread + correction_weight * |refined -
  input|) * 2**max(0, score)``: the correction rule's radius, doubled per unit of guard score
  above 0 (the calibration data mostly scores low, so the scale changes little: 1.58 to 1.35 for
  the shipped set; a sequence far from the training data gets a wider radius even where the
  network moves little).
- :attr:`Widening.CORRECTION_CONDITION`: ``scale * (spread + correction_weight * |refined -
  input|) * sqrt(condition)``, ``condition`` the guard's condition ratio of the sequence (the
  median squared Mahalanobis distance of its 2D and 3D inputs under the training inputs' Gaussian,
  per dimension: about 1 in distribution), so its square root is a distance, in standard
  deviations, as the error is a length. Unlike :attr:`Widening.CORRECTION_GUARD` it does not count
  the correction twice (the guard score is the larger of the condition's and the correction's
  logarithms, so a sequence the network corrects far was widened once per joint and again per
  sequence), and it narrows the radius on inputs more typical than the calibration data's.

``scale`` is always fitted on the widened ratios.

The calibration is stored as JSON in the denoiser file's metadata under ``"calibration"``
(``python -m benchmarks.uncertainty``), with the sampling settings it was fitted for.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from d3prefine.guard import GuardScore

CALIBRATION_METADATA_KEY = "calibration"


class Widening(str, Enum):
    """How the radius grows on a sequence unlike the training data."""

    NONE = "none"  # scale * spread
    GUARD = "guard"  # scale * spread * 2 ** max(0, guard score)
    CORRECTION = "correction"  # scale * (spread + correction_weight * |refined - input|)
    CORRECTION_GUARD = "correction-guard"  # scale * (spread + correction_weight * |refined - input|) * 2 ** max(0, guard score)
    CORRECTION_CONDITION = "correction-condition"  # scale * (spread + correction_weight * |refined - input|) * sqrt(guard condition)

    @property
    def uses_guard(self) -> bool:
        """Whether the rule needs the guard's verdict on the sequence (the guard reference in the weights)."""
        return self in (Widening.GUARD, Widening.CORRECTION_GUARD, Widening.CORRECTION_CONDITION)

    @property
    def uses_correction(self) -> bool:
        return self in (Widening.CORRECTION, Widening.CORRECTION_GUARD, Widening.CORRECTION_CONDITION)


# The correction weights python -m benchmarks.uncertainty chooses from (dimensionless).
CORRECTION_WEIGHTS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def widening_factor(widening: Widening, score: float | np.ndarray | None, condition: float | np.ndarray | None = None) -> float | np.ndarray:
    """The radius multiplier of a sequence with guard ``score`` and guard ``condition`` ratio
    (``None``: no guard, 1; arrays: one value per element): ``2**max(0, score)`` under the guard
    rules, ``sqrt(condition)`` under :attr:`Widening.CORRECTION_CONDITION`, 1 under the others."""
    widening = Widening(widening)
    if widening is Widening.CORRECTION_CONDITION:
        return 1.0 if condition is None else np.sqrt(condition)
    if not widening.uses_guard or score is None:
        return 1.0
    return np.exp2(np.maximum(0.0, score))


def unscaled_radius(widening: Widening, spread: np.ndarray, correction: np.ndarray, score: float | np.ndarray | None,
                    correction_weight: float = 0.0, condition: float | np.ndarray | None = None) -> np.ndarray:
    """What the calibration's scale multiplies under rule ``widening`` (metres, the shape of ``spread``):
    ``spread`` and ``correction`` (the length of refined minus input) per joint and frame, ``score``
    and ``condition`` the sequence's guard score and condition ratio (``None``: no guard)."""
    base = spread + correction_weight * correction if Widening(widening).uses_correction else spread
    return base * widening_factor(widening, score, condition)


@dataclass(frozen=True)
class UncertaintyCalibration:
    """Scale from sample spread to a ``level`` error radius, and the settings it was fitted with.

    Attributes:
        scale: multiplier of the spread (dimensionless, > 0).
        level: nominal coverage of ``scale * spread`` (e.g. 0.9).
        steps, samples, eta: the ``refine`` sampling settings of the calibration run.
        widening: how the radius grows on sequences unlike the training data (files written
            before it: :attr:`Widening.NONE`).
        correction_weight: the weight of the correction length under :attr:`Widening.CORRECTION`
            :attr:`Widening.CORRECTION_GUARD` and :attr:`Widening.CORRECTION_CONDITION` (dimensionless,
            >= 0; 0 under the other rules).
        fallback: whether the calibration run leaned on the input where the guard flags
            (``refine --fallback``; files written before it: ``False``).
    """

    scale: float
    level: float
    steps: int
    samples: int
    eta: float
    widening: Widening = Widening.NONE
    correction_weight: float = 0.0
    fallback: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0 and 0 < self.level < 1):
            raise ValueError(f"calibration needs scale > 0 and 0 < level < 1, got {self.scale}, {self.level}")
        if not (math.isfinite(self.correction_weight) and self.correction_weight >= 0):
            raise ValueError(f"calibration needs correction_weight >= 0, got {self.correction_weight}")

    def radius(self, spread: np.ndarray, correction: np.ndarray, guard: GuardScore | None) -> np.ndarray:
        """The calibrated radius (metres) of :func:`unscaled_radius`'s arguments, ``guard`` the
        guard's verdict on the sequence (``None``: no guard reference)."""
        score, condition = (None, None) if guard is None else (guard.score, guard.condition)
        return self.scale * unscaled_radius(self.widening, spread, correction, score, self.correction_weight, condition)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "widening": self.widening.value})

    @classmethod
    def from_json(cls, text: str) -> UncertaintyCalibration:
        """Parse :meth:`to_json`'s output; raises ``ValueError`` on anything else."""
        try:
            data = json.loads(text)
            widening = Widening(data.get("widening", Widening.NONE.value))
            fallback = data.get("fallback", False)
            if not isinstance(fallback, bool):
                raise TypeError(f"fallback must be true or false, got {fallback!r}")
            return cls(float(data["scale"]), float(data["level"]), int(data["steps"]), int(data["samples"]), float(data["eta"]), widening,
                       float(data.get("correction_weight", 0.0)), fallback)
        except (KeyError, TypeError, AttributeError, ValueError) as err:
            raise ValueError(f"invalid uncertainty calibration ({type(err).__name__}: {err})") from None


def conformal_scale(ratios: np.ndarray, level: float) -> float:
    """Split-conformal quantile of ``ratios`` (error / spread, any shape): the
    ``ceil((n + 1) level)``-th smallest, so a new exchangeable ratio falls below it with
    probability at least ``level``."""
    r = np.sort(np.asarray(ratios, np.float64).ravel())
    r = r[np.isfinite(r)]
    if not 0 < level < 1 or len(r) == 0:
        raise ValueError(f"need 0 < level < 1 and at least one finite ratio, got {level} and {len(r)}")
    k = math.ceil((len(r) + 1) * level)
    if k > len(r):
        raise ValueError(f"{len(r)} ratios are too few for a {level:.0%} quantile")
    return float(r[k - 1])


def coverage(errors: np.ndarray, radius: np.ndarray) -> float:
    """Share of ``errors`` (metres, any shape) within ``radius`` (same shape)."""
    return float(np.mean(np.asarray(errors) <= np.asarray(radius)))
