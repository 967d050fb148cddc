"""The refinement API: load weights, refine pose sequences of any length in batched windows.

    refiner = Refiner.from_pretrained()                  # weights/ shipped with the package
    refined = refiner.refine(poses_2d, poses_3d, image_size=(1000, 1000)).poses_3d

Each sequence is made root-relative (the root trajectory of the input is kept and added back),
cut into overlapping windows, each window is refined by K reverse diffusion steps starting from
the estimator output, the windows are blended back (see :mod:`d3prefine.windows`) and a short
Savitzky-Golay filter removes the frame-to-frame jitter the network leaves (``smooth``). With
``fallback`` (the default) the result leans on the input as far as the guard finds the sequence
unlike the training data (:func:`~d3prefine.guard.familiar_mean`): the input, filtered the same
way, weighs as much as the refinement at the guard's threshold and takes over above it.
Windows of many sequences share batches, and only one batch of windows exists at a time;
:meth:`Refiner.refine_stream` streams the sequences of many groups (e.g. files) through the same
batches and hands back each group as soon as its last window is refined.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from d3prefine.baselines import savgol
from d3prefine.bones import DEFAULT_BONE_LENGTHS, BoneLengthMode, constrain_bones
from d3prefine.calibration import CALIBRATION_METADATA_KEY, UncertaintyCalibration
from d3prefine.checkpoint import NOISE_DIGEST_KEY, denoiser_metadata, load_denoiser, training_fps
from d3prefine.config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_ETA,
    DEFAULT_FALLBACK,
    DEFAULT_SMOOTH,
    DEFAULT_STEPS,
    DENOISER_FILE,
    MAX_STEPS,
    NOISE_FILE,
    SMOOTH_POLYORDER,
    check_smooth,
)
from d3prefine.error_model import ErrorModel
from d3prefine.errors import InputError, UsageError, WeightsError
from d3prefine.guard import SHARPNESS, GuardReference, GuardScore, familiar_mean, guard_score, stored_reference
from d3prefine.io import PoseSequence
from d3prefine.model import PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import ModelInputs, model_inputs
from d3prefine.resample import FpsPolicy, at_rate, back_from_rate, refine_rate
from d3prefine.runtime import derived_seed, resolve_device
from d3prefine.schedule import ErrorSchedule
from d3prefine.skeleton import JointLayout, get_layout
from d3prefine.windows import OverlapAdd, frame_indices, window_starts

# The shipped weights: package data in an installed wheel (setup.py copies them there), else the
# repository's weights/ folder (a checkout or an editable install).
_PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS_DIR = (
    _PACKAGED_WEIGHTS if (_PACKAGED_WEIGHTS / DENOISER_FILE).is_file() else Path(__file__).resolve().parent.parent / "weights"
)
#: Weight sets shipped beside the default, by name (``--weights NAME``): folders of the shipped weights.
SHIPPED_SETS = ("varied",)
#: Names of earlier shipped sets and where their weights went (a one-line usage error says so).
RENAMED_SETS = {"pool": "is the default weights/ since stop 20: leave --weights out (the former default is --weights varied)"}
__all__ = ["DENOISER_FILE", "SHIPPED_SETS", "NOISE_FILE", "DEFAULT_BATCH_SIZE", "DEFAULT_ETA", "DEFAULT_SMOOTH", "DEFAULT_STEPS", "MAX_STEPS", "SMOOTH_POLYORDER",
           "RefineResult", "Refiner", "StreamRefiner", "check_smooth"]  # the defaults live in d3prefine.config (no torch)

K = TypeVar("K")
#: ``(poses_2d (T, J, 2), poses_3d (T, J, 3) metres, image_size or None)`` of one sequence.
SequenceInput = tuple[np.ndarray, np.ndarray, "tuple[int, int] | None"]


@dataclass(frozen=True)
class RefineResult:
    """Refined poses of one sequence.

    Attributes:
        poses_3d: ``(T, J, 3)`` metres, same frame and root trajectory as the input.
        uncertainty: ``(T, J)`` metres (only with ``samples >= 2``, else ``None``): with a
            calibrated refiner (``Refiner.calibration``), the radius of the ball around each
            refined joint that holds the true joint with the calibration's ``level`` (90 %),
            widened on sequences unlike the training data if the calibration says so
            (:class:`~d3prefine.calibration.Widening`); without one, the root-mean-square spread of the samples around their mean.
        guard: the out-of-distribution score of the inputs (:mod:`d3prefine.guard`), ``None``
            when the weights carry no guard reference.
        blend_weights: the weight of each set when several were blended
            (:class:`~d3prefine.blend.BlendedRefiner`), else ``None``.
        input_weight: the input's share in ``poses_3d`` (``fallback``, module docstring), ``None``
            without the fallback or a guard reference; the weights sum to 1 with ``blend_weights``.
    """

    poses_3d: np.ndarray
    uncertainty: np.ndarray | None
    guard: GuardScore | None = None
    blend_weights: tuple[float, ...] | None = None
    input_weight: float | None = None


def _device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device; a name goes through :func:`~d3prefine.runtime.resolve_device`
    (``auto``, ``cpu``, ``cuda``, ``cuda:N``; unavailable CUDA is a one-line :class:`UsageError`)."""
    return device if isinstance(device, torch.device) else torch.device(resolve_device(device))


class StreamRefiner(ABC):
    """What every refiner builds on its ``refine_stream`` (:class:`Refiner`, and
    :class:`~d3prefine.blend.BlendedRefiner`): several sequences at once, and pose sequences at
    the weights' frame rate ``fps`` (``None``: any)."""

    fps: float | None

    @abstractmethod
    def refine_stream(self, groups: Iterable[tuple[K, Sequence[SequenceInput]]], **options) -> Iterator[tuple[K, list[RefineResult]]]:
        """Refine groups of ``(poses_2d, poses_3d, image_size)`` sequences; yields ``(key, results)`` per group, in order."""

    def refine_many(self, sequences: Sequence[SequenceInput], **options) -> list[RefineResult]:
        """Refine several ``(poses_2d, poses_3d, image_size)`` sequences, sharing batches.
        Options as in :meth:`refine_stream`; the sampling noise of a window depends on the
        sequence's index in ``sequences``."""
        return next(self.refine_stream([(None, sequences)], **options))[1]

    def refine_sequences(
        self, sequences: Sequence[PoseSequence], *, fps_policy: FpsPolicy | str = FpsPolicy.RESAMPLE, **options
    ) -> list[RefineResult]:
        """Refine pose sequences as ``d3prefine refine`` does: a sequence whose ``fps`` differs from
        the weights' (:attr:`fps`) is resampled to their rate, refined there and resampled back to
        its own frames (``fps_policy``, :class:`~d3prefine.resample.FpsPolicy`; the guard score is
        the resampled input's). Options as in :meth:`refine_stream`.

        Raises:
            InputError: ``fps_policy`` is ``refuse`` and a sequence's rate differs from the weights'.
        """
        rates = [refine_rate(seq.fps, self.fps, fps_policy, f"sequence {seq.name!r}") for seq in sequences]
        inputs = [(*at_rate(seq.poses_2d, seq.poses_3d, seq.fps, rate), seq.image_size) for seq, rate in zip(sequences, rates)]
        results = self.refine_many(inputs, **options)
        return [at_input_rate(result, rate, seq) for result, rate, seq in zip(results, rates, sequences)]


class Refiner(StreamRefiner):
    """A trained PoseDenoiser with its noise model and schedule, on one device."""

    def __init__(
        self,
        model: PoseDenoiser,
        noise: NoiseModel,
        device: str | torch.device = "auto",
        *,
        weights_path: Path | None = None,
        noise_path: Path | None = None,
        guard: GuardReference | None = None,
        calibration: UncertaintyCalibration | None = None,
        fps: float | None = None,
        noise_trained_with: str | None = None,
    ) -> None:
        """``fps``: the frame rate of the training data, when known; ``noise_trained_with``: the
        digest of the noise statistics the denoiser was trained with, when known (see :attr:`noise_mismatch`)."""
        if noise.num_joints != model.config.num_joints or noise.layout != model.config.layout:
            raise WeightsError(
                f"noise statistics ({noise.layout}, {noise.num_joints} joints) do not match the denoiser "
                f"({model.config.layout}, {model.config.num_joints} joints)"
            )
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.noise = noise.to(self.device)
        self.error_model = ErrorModel(self.model, self.noise, ErrorSchedule(model.config.num_train_timesteps))
        self.schedule = self.error_model.schedule
        self.layout = get_layout(model.config.layout)
        self.weights_path, self.noise_path = weights_path, noise_path  # where they were loaded from, if files
        self.guard, self.calibration = guard, calibration
        self.fps = fps
        self.noise_digest, self.noise_trained_with = noise.digest(), noise_trained_with

    @property
    def noise_mismatch(self) -> bool:
        """Whether the noise statistics are not those the denoiser records it was trained with
        (``False`` when the denoiser records none)."""
        return self.noise_trained_with is not None and self.noise_trained_with != self.noise_digest

    @classmethod
    def from_pretrained(
        cls,
        weights: str | Path | None = None,
        noise: str | Path | None = None,
        device: str | torch.device = "auto",
        *,
        noise_mismatch_ok: bool = False,
    ) -> Refiner:
        """Load a denoiser file (or a directory holding ``denoiser.safetensors``) and noise statistics.

        ``weights=None`` uses the weights shipped in ``weights/``, the name of a set in
        :data:`SHIPPED_SETS` (e.g. ``"varied"``) the shipped ``weights/<name>/``; ``noise=None`` uses
        ``noise.safetensors`` next to the denoiser file. The guard reference and the uncertainty
        calibration come from the denoiser file's metadata when it holds them, and so does the
        frame rate of the training data (``Refiner.fps``, ``None`` if the file does not say).

        Raises:
            UsageError: the denoiser records the digest of other noise statistics than ``noise``
                (the network's whitened errors would be rescaled silently), unless
                ``noise_mismatch_ok``; then :attr:`noise_mismatch` is true.
        """
        path = denoiser_path(weights)
        noise_path = Path(noise) if noise is not None else path.parent / NOISE_FILE
        model = load_denoiser(path)
        meta = denoiser_metadata(path)
        try:
            guard = stored_reference(meta)
            calibration = UncertaintyCalibration.from_json(meta[CALIBRATION_METADATA_KEY]) if CALIBRATION_METADATA_KEY in meta else None
            fps = training_fps(meta)
        except ValueError as err:
            raise WeightsError(f"{path}: {err}") from None
        if calibration is not None and calibration.widening.uses_guard and guard is None:
            raise WeightsError(f"{path}: the uncertainty calibration widens by the guard's verdict, but the file holds no guard reference")
        refiner = cls(
            model, NoiseModel.load(noise_path), device, weights_path=path, noise_path=noise_path, guard=guard,
            calibration=calibration, fps=fps, noise_trained_with=meta.get(NOISE_DIGEST_KEY),
        )
        if refiner.noise_mismatch and not noise_mismatch_ok:
            raise UsageError(
                f"{noise_path}: not the noise statistics {path} was trained with (digest {refiner.noise_digest[:16]}, the weights "
                f"record {refiner.noise_trained_with[:16]}); use those, retrain with these, or accept the mismatch with --noise-mismatch-ok"
            )
        return refiner

    @property
    def window(self) -> int:
        return self.model.config.window

    def resolve_overlap(self, overlap: int | None) -> int:
        """The frames consecutive windows share: ``overlap``, or a third of the window for ``None``.

        Raises:
            ValueError: ``overlap`` is not in ``0 .. window - 1``.
        """
        w = self.window
        overlap = w // 3 if overlap is None else overlap
        if not 0 <= overlap < w:
            raise ValueError(f"overlap must be in 0..{w - 1} (below the weights' window of {w} frames), got {overlap}")
        return overlap

    def refine(
        self,
        poses_2d: np.ndarray,
        poses_3d: np.ndarray,
        *,
        image_size: tuple[int, int] | None = None,
        **options,
    ) -> RefineResult:
        """Refine one sequence: ``poses_2d (T, J, 2)`` (pixels with ``image_size``, else
        normalized), ``poses_3d (T, J, 3)`` metres camera frame. Options as in :meth:`refine_many`."""
        return self.refine_many([(poses_2d, poses_3d, image_size)], **options)[0]

    def refine_stream(
        self,
        groups: Iterable[tuple[K, Sequence[SequenceInput]]],
        *,
        steps: int = DEFAULT_STEPS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        overlap: int | None = None,
        samples: int = 1,
        eta: float = DEFAULT_ETA,
        seed: int = 0,
        smooth: int = DEFAULT_SMOOTH,
        bone_lengths: BoneLengthMode | str = DEFAULT_BONE_LENGTHS,
        flip: bool = False,
        fallback: bool = DEFAULT_FALLBACK,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[K, list[RefineResult]]]:
        """Refine the sequences of many ``(key, sequences)`` groups (e.g. the files of a batch job)
        in shared batches; yields ``(key, results)`` per group, in the order of ``groups``, as
        soon as the group's last window is refined.

        The windows of all groups fill batches of ``batch_size`` in order, so many small groups
        cost no more than one long sequence. ``groups`` is read lazily, only as far as the next
        batch needs: memory holds one batch of windows and the groups they come from, whatever
        the number of groups. A group without sequences is yielded (with no results) in its
        place. Each group's results are those :meth:`refine_many` gives it alone, up to float
        rounding in batched matrix products.

        Args:
            steps: K reverse diffusion steps (1 = one-shot residual correction).
            batch_size: windows per network call.
            overlap: frames shared by consecutive windows (:meth:`resolve_overlap`); each
                frame's refinement is the weighted mean of the windows holding it, so more overlap
                averages more windows (``window / (window - overlap)`` times the network work).
            samples: 1 for the deterministic refinement; S >= 2 draws S stochastic refinements
                (DDIM with ``eta``, needs ``steps >= 2``), returns their mean and their spread.
            eta: stochasticity of the sampled refinements, in ``(0, 1]``.
            seed: seed (>= 0) of the sampling noise. Each window draws its noise from its own
                generator, seeded by ``seed``, the sequence's index in its group and the
                window's start, so the samples do not depend on ``batch_size``, the device or
                the other groups.
            smooth: odd Savitzky-Golay window (frames, polynomial order 3) applied along time to
                each refined sample; 0 turns the filter off.
            bone_lengths: what becomes of the refined sequence's bone lengths, after the filter
                (:class:`~d3prefine.bones.BoneLengthMode`): ``free`` keeps the network's,
                ``constant`` sets every bone to its median over the sequence, ``input`` to its
                median in the input ``poses_3d`` (the estimator's skeleton). The guard score
                is that of the final poses; the uncertainty is the spread of the samples.
            flip: test-time mirror augmentation (twice the network work): each window's mirror
                image (:meth:`~d3prefine.skeleton.JointLayout.mirror`) is refined too and mirrored
                back; the deterministic refinement is the mean of the two, sampled refinements
                (S >= 2) gain the S mirrored samples (their noise mirrored too).
            fallback: lean on the input as far as the guard flags the sequence (module
                docstring): the result is the familiarity-weighted mean of the refinement and the
                input filtered with ``smooth``, its bone lengths set again by ``bone_lengths``, and
                the spread shrinks with the refinement's weight. Needs a guard reference (without
                one, nothing changes).
            progress: called with the number of frames finished after each batch.
        """
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if samples > 1 and (steps < 2 or not 0.0 < eta <= 1.0):
            raise ValueError("stochastic samples need steps >= 2 and 0 < eta <= 1")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        check_smooth(smooth)
        bones = BoneLengthMode(bone_lengths)
        w = self.window
        overlap = self.resolve_overlap(overlap)
        self.schedule.set_timesteps(steps)
        noise_shape = (samples, len(self.schedule.timesteps), w, self.layout.num_joints, 3)
        drawn = 2 * samples if flip and samples > 1 else samples  # S' samples per window
        pending: deque[_Group] = deque()  # groups not yet yielded, in order
        batch = _Batch()

        def run_batch() -> Iterator[tuple[K, list[RefineResult]]]:
            z = _window_noise([(seq, start) for _, seq, start in batch.origin], seed, noise_shape) if samples > 1 else None
            refined = self._refine_windows(np.stack(batch.p), np.stack(batch.y), steps, eta, z, flip)  # (S', B, W, J, 3)
            for k, (group, seq, start) in enumerate(batch.origin):
                group.blends[seq].add(start, refined[:, k].transpose(1, 0, 2, 3))
                group.todo -= 1
            if progress is not None:
                progress(batch.frames)
            batch.clear()
            yield from self._finished(pending, smooth, bones, fallback)

        for key, sequences in groups:
            group = _Group(key, [self._inputs(p2d, p3d, size) for p2d, p3d, size in sequences])
            group.blends = [OverlapAdd(len(x.y), (drawn, *x.y.shape[1:]), w) for x in group.inputs]
            pending.append(group)
            for seq, x in enumerate(group.inputs):
                n = len(x.y)
                starts = window_starts(n, w, w - overlap)
                for k, start in enumerate(starts.tolist()):
                    idx = frame_indices(start, n, w)
                    batch.add(x.p[idx], x.y[idx], (group, seq, start), n if k == len(starts) - 1 else 0)
                    group.todo += 1
                    if len(batch.origin) == batch_size:
                        yield from run_batch()
            group.queued = True
            yield from self._finished(pending, smooth, bones, fallback)
        if batch.origin:
            yield from run_batch()

    def _finished(
        self, pending: deque[_Group], smooth: int, bones: BoneLengthMode, fallback: bool
    ) -> Iterator[tuple[object, list[RefineResult]]]:
        """Pop and yield the groups at the front of ``pending`` whose windows are all refined."""
        while pending and pending[0].queued and pending[0].todo == 0:
            group = pending.popleft()
            yield group.key, [self._result(x, b.result(), smooth, bones, fallback) for x, b in zip(group.inputs, group.blends)]

    def _inputs(self, poses_2d: np.ndarray, poses_3d: np.ndarray, image_size: tuple[int, int] | None) -> ModelInputs:
        j = self.layout.num_joints
        if poses_3d.ndim != 3 or poses_3d.shape[1:] != (j, 3) or poses_2d.shape != (*poses_3d.shape[:2], 2):
            raise InputError(
                f"expected poses_2d (T, {j}, 2) and poses_3d (T, {j}, 3) for layout {self.layout.name}, "
                f"got {tuple(poses_2d.shape)} and {tuple(poses_3d.shape)}"
            )
        return model_inputs(poses_2d, poses_3d, image_size, self.layout.root)

    @torch.inference_mode()
    def _refine_windows(self, p: np.ndarray, y: np.ndarray, steps: int, eta: float, z: torch.Tensor | None, flip: bool) -> np.ndarray:
        """Run the reverse process on windows ``(B, W, J, .)``; returns ``(S', B, W, J, 3)`` metres.

        ``z`` is the whitened noise ``(S, K, B, W, J, 3)`` of stochastic sampling, ``None`` for the
        deterministic refinement (S = 1). ``flip`` refines the mirror images too: S' = 2 S samples
        when sampling, else the mean of the two refinements (S' = 1).
        """
        p_t = torch.from_numpy(p).to(self.device)
        y_t = torch.from_numpy(y).to(self.device)
        refined = self.error_model.sample(p_t, y_t, steps=steps, eta=eta, noise=z)
        if flip:
            mirror = self.layout.mirror
            twin = mirror(self.error_model.sample(mirror(p_t), mirror(y_t), steps=steps, eta=eta, noise=None if z is None else mirror(z)))
            refined = (refined + twin) / 2 if z is None else torch.cat([refined, twin])
        refined = refined.cpu().numpy()
        if not np.isfinite(refined).all():
            raise WeightsError(f"{self.weights_path or 'the denoiser'}: produced NaN or inf poses (damaged weights or noise statistics)")
        return refined

    def _result(self, inputs: ModelInputs, blended: np.ndarray, smooth: int, bones: BoneLengthMode, fallback: bool) -> RefineResult:
        """Mean and spread of the ``(T, S, J, 3)`` root-relative samples, each filtered along time
        with a ``smooth``-frame window; the mean's bone lengths set by ``bones``, the guard
        score of that mean; with ``fallback``, that mean leant on the filtered input by the
        score (:meth:`refine_stream`); the spread turned into the calibration's radius (widened
        by the guard's verdict or by the final correction, :mod:`d3prefine.calibration`), if any; the
        input root trajectory is added back."""
        blended = smoothed(blended, smooth)
        mean = blended.mean(axis=1)
        spread = np.sqrt(((blended - mean[:, None]) ** 2).sum(-1).mean(1)) if blended.shape[1] > 1 else None
        mean = constrain_bones(mean, inputs.y, bones, self.layout)
        guard = None if self.guard is None else guard_score(inputs.p, inputs.y, mean, self.guard)
        input_weight = None
        if fallback and guard is not None:
            mean, weights = lean_on_input([mean], [guard.excess], inputs.y, smooth, bones, self.layout)
            input_weight = float(weights[-1])
            spread = None if spread is None else spread * weights[0]
        if spread is not None and self.calibration is not None:
            correction = np.linalg.norm(mean - inputs.y, axis=-1)  # (T, J) metres, root-relative
            spread = self.calibration.radius(spread, correction, guard)
        return RefineResult(poses_3d=(mean + inputs.root[:, None]).astype(np.float32), uncertainty=spread, guard=guard,
                            input_weight=input_weight)


def smoothed(poses: np.ndarray, smooth: int) -> np.ndarray:
    """``poses (T, ...)`` filtered along time as refinements are (``smooth``-frame Savitzky-Golay
    window of order :data:`SMOOTH_POLYORDER`; 0: unchanged)."""
    return savgol(poses, smooth, SMOOTH_POLYORDER) if smooth else poses


def lean_on_input(
    refined: Sequence[np.ndarray], excess: Sequence[float], given: np.ndarray, smooth: int, bones: BoneLengthMode | str,
    layout: JointLayout, *, fallback: bool = True, sharpness: float = SHARPNESS,
) -> tuple[np.ndarray, np.ndarray]:
    """The familiarity-weighted mean (:func:`~d3prefine.guard.familiar_mean`) of root-relative
    refinements ``(T, J, 3)`` metres whose guard scores exceed their thresholds by ``excess`` and,
    with ``fallback``, of the root-relative input ``given`` filtered with ``smooth``; its bone
    lengths set by ``bones`` against ``given``. Returns the pose and the weights (the input's last)."""
    mean, weights = familiar_mean(refined, excess, smoothed(given, smooth) if fallback else None, sharpness)
    return constrain_bones(mean, given, bones, layout), weights


def denoiser_path(weights: str | Path | None) -> Path:
    """The denoiser file of ``weights``: ``None`` the default shipped set, the name of a set in
    :data:`SHIPPED_SETS` (unless a path of that name exists), a folder holding
    ``denoiser.safetensors``, or the file itself.

    Raises:
        UsageError: the name of an earlier shipped set (:data:`RENAMED_SETS`) that is no path here.
    """
    if str(weights) in RENAMED_SETS and not Path(weights).exists():
        raise UsageError(f"--weights {weights}: the shipped set '{weights}' {RENAMED_SETS[str(weights)]}")
    if weights is None:
        path = DEFAULT_WEIGHTS_DIR
    elif str(weights) in SHIPPED_SETS and not Path(weights).exists():
        path = DEFAULT_WEIGHTS_DIR / str(weights)
    else:
        path = Path(weights)
    return path / DENOISER_FILE if path.is_dir() else path


def at_input_rate(result: RefineResult, rate: float | None, seq: PoseSequence) -> RefineResult:
    """``result``, refined at ``rate`` (``None``: at the frames of ``seq``), at the frames of ``seq``."""
    if rate is None:
        return result
    poses_3d, uncertainty = back_from_rate(result.poses_3d, result.uncertainty, rate, seq.fps, seq.num_frames)
    return dataclasses.replace(result, poses_3d=poses_3d, uncertainty=uncertainty)


def _window_noise(origin: list[tuple[int, int]], seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Whitened noise ``(S, K, B, W, J, 3)`` for the windows ``origin`` (sequence index, start) of
    a batch, ``shape = (S, K, W, J, 3)`` per window. Each window draws on the CPU from its own
    generator, seeded by ``(seed, sequence index, start)``, so its noise is the same whatever
    batch it falls in and whatever the device."""
    draws = []
    for seq, start in origin:
        generator = torch.Generator().manual_seed(derived_seed(seed, seq, start + shape[2]))  # start >= -W/2
        draws.append(torch.randn(shape, generator=generator))
    return torch.stack(draws, dim=2)


@dataclass
class _Group:
    """A group of sequences in flight: its inputs, their blending buffers and its windows not yet refined."""

    key: object
    inputs: list[ModelInputs]
    blends: list[OverlapAdd] = field(default_factory=list)
    todo: int = 0  # windows queued but not refined
    queued: bool = False  # all windows queued


@dataclass
class _Batch:
    """Windows collected for the next network call."""

    p: list[np.ndarray] = field(default_factory=list)  # (W, J, 2) each
    y: list[np.ndarray] = field(default_factory=list)  # (W, J, 3) each
    origin: list[tuple[_Group, int, int]] = field(default_factory=list)  # (group, sequence index, window start)
    frames: int = 0  # frames of the sequences completed by this batch

    def add(self, p: np.ndarray, y: np.ndarray, origin: tuple[_Group, int, int], frames: int) -> None:
        self.p.append(p)
        self.y.append(y)
        self.origin.append(origin)
        self.frames += frames

    def clear(self) -> None:
        self.p, self.y, self.origin, self.frames = [], [], [], 0
