"""Settings without torch: the denoiser architecture, the training and noise-model modes, and
``refine``'s defaults.

The command line builds its options from these before it knows which command runs, so this
module (like every module the CLI imports at start-up) imports neither torch nor scipy:
``d3prefine --help``, ``info`` and usage errors start in a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum

DENOISER_FILE = "denoiser.safetensors"  # the denoiser in a weights folder
NOISE_FILE = "noise.safetensors"  # its noise statistics, next to it
# What `refine` does without options (the CLI and the benchmarks take their defaults from here).
DEFAULT_STEPS = 1  # K = 2..10 were within 0.3 mm of K = 1 in the benchmark at K times the cost (README, Results)
DEFAULT_BATCH_SIZE = 64  # windows per network call: as fast as 256 on 2 CPU cores, half the peak memory
DEFAULT_ETA = 0.3  # stochasticity of --samples; eta = 1 was worse than the input on the examples
# Post-filter of the refined poses: Savitzky-Golay, polynomial order 3, window in frames. 9 had the
# lowest MPJPE of windows 5..13, summed over 150 training sequences of each base estimator, and cut
# the acceleration error of the network output by 44-61 % (`python -m benchmarks.smoothing`).
SMOOTH_POLYORDER = 3
DEFAULT_SMOOTH = 9
# Lean the output on the input where the guard flags the sequence (refine --fallback; README,
# "Leaning on the input where the guard flags").
DEFAULT_FALLBACK = True


def check_smooth(smooth: int) -> None:
    """Raise ``ValueError`` unless ``smooth`` is 0 (no filter) or an odd window > the polynomial order."""
    if smooth != 0 and (smooth % 2 == 0 or smooth <= SMOOTH_POLYORDER):
        raise ValueError(f"smooth must be 0 (off) or an odd window > {SMOOTH_POLYORDER} frames, got {smooth}")



@dataclass(frozen=True)
class DenoiserConfig:
    """Architecture of a denoiser network (stored as JSON with the weights).

    ``architecture`` names the network class (:data:`d3prefine.architectures.ARCHITECTURES`;
    files written before it existed hold none and are ``"stcformer"``, this module's
    :class:`PoseDenoiser`); the sizes below are that class's to interpret.
    """

    num_joints: int = 17
    window: int = 27  # frames per window
    dim: int = 64  # channels per token
    depth: int = 4  # STC blocks
    heads: int = 2  # attention heads in each half (spatial and temporal)
    mlp_ratio: float = 2.0
    num_train_timesteps: int = 100  # T of the schedule the network was trained with
    layout: str = "h36m17"
    architecture: str = "stcformer"

    def __post_init__(self) -> None:
        if self.dim % 2 or (self.dim // 2) % self.heads:
            raise ValueError(f"dim/2 must be divisible by heads, got dim={self.dim}, heads={self.heads}")
        if self.window < 1 or self.depth < 1:
            raise ValueError("window and depth must be >= 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DenoiserConfig:
        return cls(**json.loads(text))


MAX_STEPS = DenoiserConfig.num_train_timesteps  # T of the schedule `train` uses: the most steps a denoiser takes


class NoiseMode(str, Enum):
    """How error dimensions are grouped into independent Gaussian blocks."""

    PER_JOINT = "per_joint"
    FULL_BODY = "full_body"
    ISOTROPIC = "isotropic"


#: Frames per fitted parameter below which ``fit-noise`` refuses to fit (without ``--force``):
#: 104 frames for the 29 parameters of a joint's Gaussian gave statistics that made the shipped
#: denoiser 3 times worse than its input.
MIN_FRAMES_PER_PARAMETER = 10


def block_dims(mode: NoiseMode, num_joints: int) -> tuple[int, int, int]:
    """Blocks B, error dims de and condition dims dc per block of a model of ``num_joints``."""
    j = num_joints
    return {NoiseMode.PER_JOINT: (j, 3, 5), NoiseMode.FULL_BODY: (1, 3 * j, 5 * j), NoiseMode.ISOTROPIC: (j, 3, 0)}[mode]


def block_parameters(mode: NoiseMode | str, num_joints: int) -> int:
    """Parameters fitted per Gaussian block: error and condition means, the gain and the
    conditional covariance (29 per joint for ``per_joint``; 1, the shared std, for ``isotropic``)."""
    mode = NoiseMode(mode)
    if mode is NoiseMode.ISOTROPIC:
        return 1
    _, de, dc = block_dims(mode, num_joints)
    return de + dc + de * dc + de * (de + 1) // 2


def required_frames(mode: NoiseMode | str, num_joints: int) -> int:
    """Frames a fit needs: :data:`MIN_FRAMES_PER_PARAMETER` per parameter of a block (every frame
    is one observation of every block): 290 for ``per_joint``, 57,970 for ``full_body`` of 17 joints."""
    return MIN_FRAMES_PER_PARAMETER * block_parameters(mode, num_joints)


class Objective(str, Enum):
    """What the network is trained for (see :mod:`d3prefine.train`)."""

    DIFFUSION = "diffusion"
    REGRESSION = "regression"


class ForwardErrors(str, Enum):
    """Which errors corrupt the clean poses in the forward process (see :mod:`d3prefine.train`)."""

    SAMPLED = "sampled"
    REAL = "real"
    MIXED = "mixed"


class IntermediateStates(str, Enum):
    """What the diffusion windows with t < T start from (see :mod:`d3prefine.train`)."""

    FORWARD = "forward"
    SAMPLER = "sampler"


class KeptWeights(str, Enum):
    """Which EMA weights ``train`` writes: ``best``, those of the validation with the lowest MPJPE
    (a fine-tuning run is also validated at step 0, so it never writes weights its validation
    scores worse than the ones it started from), or ``last``, those of the final step."""

    BEST = "best"
    LAST = "last"


#: Warm-up and EMA span: an eighth of the run, at most 500 steps. At the shipped recipe's 4,000
#: steps (and beyond) that is the warm-up of 500 steps and the EMA decay 0.998 (a 500-step
#: average) used before; a short run warms up and averages over its own first and last eighth.
MAX_SPAN_STEPS = 500
SPAN_SHARE = 1 / 8


def default_span(steps: int) -> float:
    """Steps of warm-up and of EMA averaging for a run of ``steps``: ``min(500, steps / 8)``, >= 1."""
    return max(1.0, min(float(MAX_SPAN_STEPS), SPAN_SHARE * steps))


#: ``train --init``'s default anchor (TrainConfig.anchor): FINE_TUNE_ANCHOR for at most
#: FEW_SEQUENCES training sequences, a tenth of it for more (:func:`fine_tune_anchor`; measured
#: with 16-320 training sequences, benchmarks/README.md, "Scarce training pairs").
FINE_TUNE_ANCHOR = 25.0
FEW_SEQUENCES = 40


def fine_tune_anchor(sequences: int) -> float:
    """``train --init``'s default anchor for ``sequences`` training sequences: the strong pull
    :data:`FINE_TUNE_ANCHOR` for a few (at most :data:`FEW_SEQUENCES`), a tenth of it for more,
    whose own motions teach the network more than the init weights' prior does."""
    return FINE_TUNE_ANCHOR if sequences <= FEW_SEQUENCES else FINE_TUNE_ANCHOR / 10


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (stored with the weights)."""

    steps: int = 4000  # optimizer steps (about an hour on 2 CPU cores)
    batch_size: int = 64  # windows per step (per process)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int | None = None  # linear warm-up steps, then cosine decay to lr / 20; None: round(default_span(steps))
    ema_decay: float | None = None  # None: 1 - 1 / default_span(steps) (0.998 from 4,000 steps on)
    velocity_weight: float = 1.0  # weight of the velocity error in the loss
    objective: Objective = Objective.DIFFUSION
    forward_errors: ForwardErrors = ForwardErrors.REAL
    final_step_share: float = 0.5  # diffusion: share of windows trained at t = T (the rest: t uniform in 1..T)
    intermediate_states: IntermediateStates = IntermediateStates.SAMPLER
    eval_every: int = 1000  # steps between validations (an "epoch")
    val_windows: int = 1024  # fixed validation windows
    seed: int = 0
    keep: KeptWeights = KeptWeights.BEST  # the weights written at the end (KeptWeights)
    anchor: float = 0.0  # fine-tuning only: pull toward the initial weights after every step (d3prefine.train, "Anchor")
    mirror: float = 0.0  # share of training windows replaced by their mirror image (d3prefine.train, "Mirror")

    def __post_init__(self) -> None:
        if self.warmup is None:
            object.__setattr__(self, "warmup", round(default_span(self.steps)))
        if self.ema_decay is None:
            object.__setattr__(self, "ema_decay", 1.0 - 1.0 / default_span(self.steps))
        if self.warmup < 1 or not 0.0 <= self.ema_decay <= 1.0:
            raise ValueError(f"warmup must be >= 1 and ema_decay in [0, 1], got {self.warmup} and {self.ema_decay}")
        object.__setattr__(self, "objective", Objective(self.objective))  # unknown names raise ValueError
        object.__setattr__(self, "forward_errors", ForwardErrors(self.forward_errors))
        object.__setattr__(self, "intermediate_states", IntermediateStates(self.intermediate_states))
        object.__setattr__(self, "keep", KeptWeights(self.keep))
        if self.anchor < 0.0:
            raise ValueError(f"anchor must be >= 0, got {self.anchor}")
        if not 0.0 <= self.final_step_share <= 1.0:
            raise ValueError(f"final_step_share must be in [0, 1], got {self.final_step_share}")
        if not 0.0 <= self.mirror <= 1.0:
            raise ValueError(f"mirror must be in [0, 1], got {self.mirror}")
        if min(self.steps, self.batch_size, self.eval_every, self.val_windows) < 1:
            raise ValueError("steps, batch_size, eval_every and val_windows must be >= 1")
