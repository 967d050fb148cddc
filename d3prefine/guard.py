"""Out-of-distribution guard: how far a sequence's inputs lie from what the weights were trained on.

A refiner can only correct errors like the ones it learnt. Without ground truth, two signals say
whether a sequence resembles the training data (all root-relative; 2D in normalized screen
units, 3D in metres):

1. **Conditions**: the per-joint conditions ``c_j = (p_j, y_j)`` (2D and estimator 3D, the
   noise model's conditions) under a Gaussian ``N(m_j, S_j)`` fitted on the training inputs.
   ``condition`` is the median over frames of the squared Mahalanobis distance divided by its
   dimension 5 and averaged over the non-root joints: about 1 in distribution, large for other
   body proportions, camera set-ups or 2D that does not match the 3D. ``S_j`` gets 10 % of its
   mean variance added to its diagonal (the 2D is nearly a function of the 3D, so without it a
   detector's brief outlier would dominate), and the median ignores bursts of a few frames.
2. **Correction**: the mean length of the correction the refiner applied (refined minus input,
   per non-root joint and frame) divided by its median over the training sequences:
   about 1 in distribution, large when the network pulls the poses far.

The guard **score** is the larger of their base-2 logarithms, ``max(log2 condition,
log2 correction)``: 0 is typical of the training data, each unit a doubling. A sequence whose
score exceeds the reference's ``threshold`` is flagged.

**Weighing by familiarity** (:func:`familiar_mean`): candidate poses of one sequence (the
refinements of several weight sets, and the input itself as the fallback) are averaged with
weights ``2**(-SHARPNESS * excess)`` normalized to sum 1, ``excess`` being a candidate's score
minus its threshold; the input's excess is 0 (it counts as a refinement scored at the
threshold). A refinement scored typical (0, one unit below the threshold 1) outweighs the input
16 to 1; at the threshold they weigh the same, and the input takes over above it.

The reference (:class:`GuardReference`) is stored as JSON in the denoiser file's metadata under
``"guard"`` and made by ``python -m benchmarks.guard`` (see ``weights/README.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

GUARD_METADATA_KEY = "guard"
#: k of ``2**(-k * excess)`` in :func:`score_weights`; chosen on the Bandai validation of both
#: builds (README, "Blending the shipped sets"), nothing fitted on Human3.6M.
SHARPNESS = 4.0
RELATIVE_RIDGE = 0.1  # share of a joint's mean condition variance added to its covariance's diagonal
_RIDGE = 1e-6  # added to the condition covariance's diagonal (units^2) so that it stays invertible


@dataclass(frozen=True)
class GuardScore:
    """The guard's verdict on one sequence (see the module docstring)."""

    score: float
    condition: float
    correction: float
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.score > self.threshold

    @property
    def excess(self) -> float:
        """``score - threshold``: above 0 for a flagged sequence."""
        return self.score - self.threshold

    def to_dict(self) -> dict[str, float | bool]:
        """JSON-ready, rounded to 4 decimals (for provenance)."""
        return {
            "score": round(self.score, 4),
            "condition": round(self.condition, 4),
            "correction": round(self.correction, 4),
            "threshold": self.threshold,
            "flagged": self.flagged,
        }


@dataclass(frozen=True)
class GuardReference:
    """What the training inputs looked like.

    Attributes:
        mean: ``(J, 5)`` mean of the per-joint conditions ``(p, y)`` (normalized 2D, metres).
        cov: ``(J, 5, 5)`` their covariance (the root joint's is all zeros).
        correction_m: median over training sequences of the mean correction length, metres.
        threshold: score above which a sequence is flagged.
    """

    mean: np.ndarray
    cov: np.ndarray
    correction_m: float
    threshold: float

    def __post_init__(self) -> None:
        j = self.mean.shape[0]
        if self.mean.shape != (j, 5) or self.cov.shape != (j, 5, 5):
            raise ValueError(f"guard reference: expected mean (J, 5) and cov (J, 5, 5), got {self.mean.shape} and {self.cov.shape}")
        if not (self.correction_m > 0 and math.isfinite(self.threshold)):
            raise ValueError(f"guard reference: correction_m must be > 0 and threshold finite, got {self.correction_m}, {self.threshold}")

    @property
    def moving(self) -> np.ndarray:
        """``(J,)`` bool, the joints whose conditions vary (all but the root)."""
        return np.trace(self.cov, axis1=1, axis2=2) > 0

    def to_json(self) -> str:
        return json.dumps(
            {"mean": self.mean.tolist(), "cov": self.cov.tolist(), "correction_m": self.correction_m, "threshold": self.threshold}
        )

    @classmethod
    def from_json(cls, text: str) -> GuardReference:
        """Parse :meth:`to_json`'s output; raises ``ValueError`` on anything else."""
        try:
            data = json.loads(text)
            return cls(
                np.asarray(data["mean"], np.float64), np.asarray(data["cov"], np.float64), float(data["correction_m"]), float(data["threshold"])
            )
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(f"invalid guard reference ({type(err).__name__}: {err})") from None

    def with_threshold(self, threshold: float) -> GuardReference:
        return GuardReference(self.mean, self.cov, self.correction_m, threshold)

    def pooled(self, other: GuardReference, share: float) -> GuardReference:
        """The reference of two training sets together, ``other``'s frames a ``share`` of them:
        the mean and covariance of the two Gaussians' mixture (moment matched), ``other``'s
        correction reference, threshold 0 until one is chosen; joints still in both stay still."""
        if not 0.0 <= share <= 1.0 or self.mean.shape != other.mean.shape:
            raise ValueError(f"pooled: share must be in [0, 1] and the joints the same, got {share} and {self.mean.shape}, {other.mean.shape}")
        mean = (1.0 - share) * self.mean + share * other.mean
        second = [r.cov + r.mean[:, :, None] * r.mean[:, None, :] for r in (self, other)]
        cov = (1.0 - share) * second[0] + share * second[1] - mean[:, :, None] * mean[:, None, :]
        cov[~(self.moving | other.moving)] = 0.0
        return GuardReference(mean, cov, other.correction_m, 0.0)


def stored_reference(meta: dict[str, str]) -> GuardReference | None:
    """The reference a denoiser file's metadata ``meta`` holds under :data:`GUARD_METADATA_KEY`,
    or ``None``; ``ValueError`` if it is not one."""
    return GuardReference.from_json(meta[GUARD_METADATA_KEY]) if GUARD_METADATA_KEY in meta else None


def conditions(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-joint conditions ``(T, J, 5)`` from root-relative ``p (T, J, 2)`` and ``y (T, J, 3)``."""
    return np.concatenate([np.asarray(p, np.float64), np.asarray(y, np.float64)], axis=-1)


def correction_length(y: np.ndarray, refined: np.ndarray, moving: np.ndarray) -> float:
    """Mean over frames and ``moving`` joints of ``|refined - y|`` (metres), both ``(T, J, 3)`` root-relative."""
    return float(np.linalg.norm(np.asarray(refined, np.float64) - y, axis=-1)[:, moving].mean())


def fit_reference(
    samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], *, root: int, threshold: float
) -> GuardReference:
    """Fit a reference from root-relative ``(p, y, refined)`` sequences ``(T, J, 2|3|3)`` of the
    training data (``root``: the root joint's index).

    ``threshold`` is usually replaced afterwards (:meth:`GuardReference.with_threshold`) by one
    chosen on data the weights did not train on.
    """
    count, total, outer, corrections = 0, 0.0, 0.0, []
    for p, y, refined in samples:
        c = conditions(p, y)
        count += len(c)
        total = total + c.sum(0)
        outer = outer + np.einsum("tji,tjk->jik", c, c)
        corrections.append(correction_length(y, refined, np.arange(c.shape[1]) != root))
    if count < 2:
        raise ValueError("fitting a guard reference needs at least 2 frames")
    mean = total / count
    cov = (outer - count * mean[:, :, None] * mean[:, None, :]) / (count - 1)
    return GuardReference(mean, cov, float(np.median(corrections)), threshold)


def guard_score(p: np.ndarray, y: np.ndarray, refined: np.ndarray, reference: GuardReference) -> GuardScore:
    """Score one sequence from its root-relative 2D ``p (T, J, 2)``, estimator pose ``y (T, J, 3)``
    and refined pose ``refined (T, J, 3)`` (metres) against ``reference``."""
    moving = reference.moving
    if p.shape[1] != len(moving):
        raise ValueError(f"guard reference has {len(moving)} joints, the sequence {p.shape[1]}")
    d = conditions(p, y)[:, moving] - reference.mean[moving]  # (T, M, 5)
    cov = reference.cov[moving]
    variance = np.trace(cov, axis1=1, axis2=2)[:, None, None] / 5.0
    precision = np.linalg.inv(cov + (RELATIVE_RIDGE * variance + _RIDGE) * np.eye(5))  # (M, 5, 5)
    per_frame = np.einsum("tmi,mij,tmj->t", d, precision, d) / (d.shape[1] * 5.0)
    condition = float(np.median(per_frame))
    correction = correction_length(y, refined, moving) / reference.correction_m
    score = max(math.log2(max(condition, 1e-12)), math.log2(max(correction, 1e-12)))
    return GuardScore(score=score, condition=condition, correction=correction, threshold=reference.threshold)


def score_weights(excess: Sequence[float], sharpness: float = SHARPNESS) -> np.ndarray:
    """Weights ``(S,)`` summing to 1 of candidates whose scores exceed their thresholds by
    ``excess``: proportional to ``2**(-sharpness * excess)`` (only differences count)."""
    excess = np.asarray(excess, np.float64)
    if excess.ndim != 1 or len(excess) == 0 or not np.isfinite(excess).all():
        raise ValueError(f"expected one finite guard score per candidate, got {excess}")
    weights = np.exp2(-sharpness * (excess - excess.min()))
    return weights / weights.sum()


def familiar_mean(
    candidates: Sequence[np.ndarray], excess: Sequence[float], fallback: np.ndarray | None = None, sharpness: float = SHARPNESS
) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean of ``candidates`` (poses of one shape, e.g. ``(T, J, 3)`` metres) whose
    scores exceed their thresholds by ``excess``, and of ``fallback`` (the input, excess 0) if
    given; returns the mean and the weights (:func:`score_weights`), the fallback's last."""
    members = [*candidates, *([] if fallback is None else [fallback])]
    weights = score_weights([*excess, *([] if fallback is None else [0.0])], sharpness)
    return np.tensordot(weights, np.stack(members), axes=1), weights
