"""The estimator-error model: a Gaussian of the error fitted jointly with its conditions.

Notation (all root-relative; 3D in metres, camera frame; 2D in normalized screen units):
    x  ground-truth 3D pose      (T, J, 3)
    y  estimator 3D pose          (T, J, 3)
    p  2D pose                    (T, J, 2)
    e  = y - x, the error          (T, J, 3)
    c  = (p, y), the conditions

The joint law of (e, c) is Gaussian, so the error given the conditions is Gaussian too:

    e | c ~ N(mu_e + S_ec S_cc^-1 (c - mu_c),  S_ee - S_ec S_cc^-1 S_ce)

The conditional covariance does not depend on c, so its Cholesky factor ``L`` is a constant
and ``e = mean(c) + L z`` maps whitened errors ``z ~ N(0, I)`` to errors.

The error dimensions are grouped in independent blocks: one block per joint (``per_joint``,
block: e_j in R^3 with c_j = (p_j, y_j) in R^5) or one block for the body (``full_body``,
e in R^3J with c in R^5J). An ``isotropic`` model (mean 0, covariance s^2 I, no conditions) is
the unconditional reference the benchmark compares against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from d3prefine.config import NoiseMode, block_dims, required_frames
from d3prefine.errors import WeightsError
from d3prefine.tensorfile import MAX_PARAMETER, read_tensors, write_tensors

FORMAT = "d3prefine-noise"
FORMAT_VERSION = 1
_TENSORS = ("mu_e", "mu_c", "gain", "chol")  # the tensors of a noise file
#: The fit's standard error is a delete-one-group jackknife over this many groups of blocks of
#: consecutive frames (block ``k`` of the data goes to group ``k mod JACKKNIFE_GROUPS``): blocks,
#: not frames, because the errors of neighbouring frames are correlated.
JACKKNIFE_GROUPS = 20
JACKKNIFE_BLOCK_FRAMES = 32


def _block_conditions(p: torch.Tensor, y: torch.Tensor, mode: NoiseMode) -> torch.Tensor:
    """Conditions per block, ``(..., B, dc)``, from ``p (..., J, 2)`` and ``y (..., J, 3)``."""
    c = torch.cat([p, y], dim=-1)  # (..., J, 5)
    if mode is NoiseMode.PER_JOINT:
        return c
    if mode is NoiseMode.FULL_BODY:
        return c.flatten(-2).unsqueeze(-2)  # (..., 1, 5J)
    return c[..., :0]  # ISOTROPIC: no conditions, (..., J, 0)


def _to_blocks(e: torch.Tensor, mode: NoiseMode) -> torch.Tensor:
    """Errors ``(..., J, 3)`` as blocks ``(..., B, de)``."""
    return e if mode is not NoiseMode.FULL_BODY else e.flatten(-2).unsqueeze(-2)


def _from_blocks(e: torch.Tensor, num_joints: int) -> torch.Tensor:
    """Blocks ``(..., B, de)`` back to errors ``(..., J, 3)``."""
    return e.reshape(*e.shape[:-2], num_joints, 3)


@dataclass
class NoiseModel:
    """A fitted conditional Gaussian of estimator errors (torch tensors, any device).

    Attributes (B blocks, de error dims and dc condition dims per block):
        mode: block structure.
        num_joints: J.
        layout: joint layout name of the data it was fitted on.
        mu_e: ``(B, de)`` error mean, metres.
        mu_c: ``(B, dc)`` condition mean (2D normalized units, 3D metres).
        gain: ``(B, de, dc)`` regression matrix ``S_ec S_cc^-1``.
        chol: ``(B, de, de)`` lower Cholesky factor of the conditional covariance, metres.
        info: metadata (counts, estimator, summary statistics), JSON-serializable.
    """

    mode: NoiseMode
    num_joints: int
    layout: str
    mu_e: torch.Tensor
    mu_c: torch.Tensor
    gain: torch.Tensor
    chol: torch.Tensor
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check the mode (a name is accepted) and the tensor shapes it implies; raises ``ValueError``."""
        self.mode = NoiseMode(self.mode)
        j = self.num_joints
        blocks, de, dc = block_dims(self.mode, j)
        expected = {"mu_e": (blocks, de), "mu_c": (blocks, dc), "gain": (blocks, de, dc), "chol": (blocks, de, de)}
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{self.mode.value} model of {j} joints: tensor {name!r} has shape {tuple(getattr(self, name).shape)}, expected {shape}")

    # ------------------------------------------------------------------ algebra
    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> NoiseModel:
        """A copy on ``device`` with floating tensors cast to ``dtype``."""
        move = {k: getattr(self, k).to(device=device, dtype=dtype) for k in _TENSORS}
        return NoiseModel(self.mode, self.num_joints, self.layout, info=self.info, **move)

    def mean(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Conditional mean ``E[e | p, y]``, ``(..., J, 3)`` metres, for ``p (..., J, 2)``, ``y (..., J, 3)``."""
        c = _block_conditions(p, y, self.mode) - self.mu_c
        return _from_blocks(self.mu_e + torch.einsum("bij,...bj->...bi", self.gain, c), self.num_joints)

    def denormalize(self, z: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Error ``mean + L z`` (metres) from whitened ``z (..., J, 3)`` and the conditional mean."""
        lz = torch.einsum("bij,...bj->...bi", self.chol, _to_blocks(z, self.mode))
        return mean + _from_blocks(lz, self.num_joints)

    def sample(self, mean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One error drawn from ``N(mean, L L^T)``, ``(..., J, 3)`` metres.

        ``z`` is drawn on the generator's device and moved to ``mean``'s.
        """
        z = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype).to(mean.device)
        return self.denormalize(z, mean)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
        *,
        mode: NoiseMode | str = NoiseMode.PER_JOINT,
        layout: str,
        ridge: float = 1e-3,
        min_std: float = 1e-3,
        info: dict | None = None,
    ) -> NoiseModel:
        """Fit from ``(p, y, x)`` triples, each ``(T, J, 2)``, ``(T, J, 3)``, ``(T, J, 3)``, root-relative.

        ``isotropic`` fits the single std of ``N(0, s^2 I)``: the root-mean-square error
        coordinate over the joints that have an error (the root has none).

        Moments are accumulated in float64 one sequence at a time, so memory does not grow
        with the data. Regularisation keeps every covariance positive definite:
        ``S_cc += ridge * mean(diag S_cc) * I`` (ridge regression of e on c) and the conditional
        covariance gets ``min_std^2 * I`` (metres^2) added. Error dimensions that are identically
        zero (the root joint) get a zero row in ``L``: the model never moves them.
        """
        mode = NoiseMode(mode)
        groups: list[_Moments | None] = [None] * JACKKNIFE_GROUPS
        num_joints, block = 0, 0
        blocks = NoiseMode.PER_JOINT if mode is NoiseMode.ISOTROPIC else mode
        for p, y, x in samples:
            p64, y64 = torch.from_numpy(np.asarray(p, np.float64)), torch.from_numpy(np.asarray(y, np.float64))
            e = y64 - torch.from_numpy(np.asarray(x, np.float64))
            v = torch.cat([_to_blocks(e, blocks), _block_conditions(p64, y64, blocks)], dim=-1)  # (T, B, de + dc)
            for part in v.split(JACKKNIFE_BLOCK_FRAMES):
                g = block % JACKKNIFE_GROUPS
                groups[g] = _Moments.of(part) if groups[g] is None else groups[g].add(part)
                block += 1
            num_joints = y64.shape[-2]
        present = [moments for moments in groups if moments is not None]
        acc = _Moments.total_of(present)
        if acc is None or acc.count < 2:
            raise ValueError("fitting a noise model needs at least 2 frames")
        fit = _fit_moments(acc, mode, num_joints, ridge, min_std)
        estimate = "std_m" if mode is NoiseMode.ISOTROPIC else "explained_variance"
        held_out = [(g, _fit_moments(acc.minus(g), mode, num_joints, ridge, min_std)) for g in present if acc.count - g.count >= 2]
        stats = {
            "frames": int(acc.count),
            "frames_required": required_frames(mode, num_joints),
            f"{estimate}_se": _jackknife_se([without[estimate] for _, without in held_out]),
            "jackknife_groups": len(held_out),
        }
        if mode is not NoiseMode.ISOTROPIC and len(held_out) >= 2:
            sums = np.array([_held_out_squares(without, g) for g, without in held_out]).sum(0)
            stats["explained_variance_held_out"] = float(1.0 - sums[0] / sums[1]) if sums[1] > 0 else None
        if mode is NoiseMode.ISOTROPIC:
            return cls.isotropic(fit["std_m"], num_joints=num_joints, layout=layout, still=fit["still"], info={**(info or {}), **stats})
        tensors = {key: fit.pop(key) for key in _TENSORS}
        model = cls(mode, num_joints, layout, **tensors, info={**(info or {}), **fit, **stats})
        return model.to("cpu")

    @classmethod
    def isotropic(
        cls, std: float, *, num_joints: int, layout: str, still: tuple[int, ...] = (), info: dict | None = None
    ) -> NoiseModel:
        """The unconditional model ``e ~ N(0, std^2 I)`` (std in metres); joints in ``still`` have no error."""
        scale = torch.full((num_joints, 1, 1), float(std))
        scale[list(still)] = 0.0
        return cls(
            NoiseMode.ISOTROPIC,
            num_joints,
            layout,
            mu_e=torch.zeros(num_joints, 3),
            mu_c=torch.zeros(num_joints, 0),
            gain=torch.zeros(num_joints, 3, 0),
            chol=scale * torch.eye(3),
            info={**(info or {}), "std_m": std},
        )

    def digest(self) -> str:
        """SHA-256 (hex) of the statistics: mode, joint count, layout and the float32 tensors.

        A denoiser records the digest of the statistics it was trained with (``train`` writes it)
        and :meth:`d3prefine.refine.Refiner.from_pretrained` compares it: the network predicts
        errors whitened by these statistics. The file's ``info`` metadata is not part of it.
        """
        digest = hashlib.sha256(json.dumps([self.mode.value, self.num_joints, self.layout]).encode())
        for name in _TENSORS:
            tensor = getattr(self, name).detach().to("cpu", torch.float32).contiguous()
            digest.update(f"{name}{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write atomically as safetensors; mode, layout and info go to the JSON metadata."""
        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "mode": self.mode.value,
            "num_joints": str(self.num_joints),
            "layout": self.layout,
            "units": "m",
            "info": json.dumps(self.info),
        }
        write_tensors(path, {k: getattr(self, k).float() for k in _TENSORS}, meta)

    @classmethod
    def load(cls, path: str | Path) -> NoiseModel:
        """Read a file written by :meth:`save`; raises :class:`WeightsError` on anything else."""
        tensors, meta = read_tensors(path, FORMAT, max_abs=MAX_PARAMETER)
        missing = set(_TENSORS) - set(tensors)
        if missing:
            raise WeightsError(f"{path}: missing tensors {sorted(missing)}")
        try:
            return cls(NoiseMode(meta["mode"]), int(meta["num_joints"]), meta["layout"], info=json.loads(meta.get("info", "{}")), **{k: tensors[k] for k in _TENSORS})
        except (KeyError, ValueError, RecursionError) as err:
            raise WeightsError(f"{path}: invalid noise file ({type(err).__name__}: {err})") from None


def _fit_moments(acc: _Moments, mode: NoiseMode, num_joints: int, ridge: float, min_std: float) -> dict:
    """The fit from moments (see :meth:`NoiseModel.fit`): ``std_m`` and ``still`` for
    ``isotropic``, else the tensors, per-joint RMS errors and ``explained_variance``.

    Raises:
        ValueError: an isotropic fit without any error.
    """
    if mode is NoiseMode.ISOTROPIC:  # one std for every coordinate of the joints that have an error
        second = torch.diagonal(acc.outer[:, :3, :3], dim1=-2, dim2=-1).sum(-1) / acc.count  # E|e_j|^2
        moving = second > 0
        if not bool(moving.any()):
            raise ValueError("fitting an isotropic noise model needs errors, but every prediction equals its ground truth")
        still = tuple(int(j) for j in torch.nonzero(~moving).flatten())
        return {"std_m": float((second[moving].sum() / (3 * moving.sum())).sqrt()), "still": still}
    de = block_dims(mode, num_joints)[1]
    mean, cov = acc.mean_cov()
    mu_e, mu_c = mean[:, :de], mean[:, de:]
    s_ee, s_ec, s_cc = cov[:, :de, :de], cov[:, :de, de:], cov[:, de:, de:]
    scale = torch.diagonal(s_cc, dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12)[:, None, None]
    s_cc_ridge = s_cc + ridge * scale * torch.eye(s_cc.shape[-1], dtype=s_cc.dtype)
    gain = torch.linalg.solve(s_cc_ridge, s_ec.transpose(-1, -2)).transpose(-1, -2)  # S_ec S_cc^-1 (symmetric S_cc)
    # Covariance of the residual e - mean(c) of this (ridge) regression; with ridge = 0 it is
    # the textbook S_ee - S_ec S_cc^-1 S_ce.
    cross = gain @ s_ec.transpose(-1, -2)
    cond = s_ee - cross - cross.transpose(-1, -2) + gain @ s_cc @ gain.transpose(-1, -2)
    cond = 0.5 * (cond + cond.transpose(-1, -2)) + min_std**2 * torch.eye(de, dtype=cond.dtype)
    # Dimensions that never had an error (the root of root-relative poses) stay exactly still:
    # their rows of L are zeroed, so neither samples nor the network can move them.
    still = torch.diagonal(s_ee, dim1=-2, dim2=-1) <= 0.0  # (B, de)
    chol = (torch.linalg.cholesky(cond) * ~still[..., :, None]).contiguous()
    residual = torch.diagonal(chol @ chol.transpose(-1, -2), dim1=-2, dim2=-1)  # variance left after the mean
    return {
        "mu_e": mu_e, "mu_c": mu_c, "gain": gain, "chol": chol,
        "error_rms_per_joint_mm": _rms_per_joint(torch.diagonal(s_ee, dim1=-2, dim2=-1) + mu_e**2, num_joints),
        "residual_rms_per_joint_mm": _rms_per_joint(residual, num_joints),
        "explained_variance": float(1 - residual.sum() / torch.diagonal(s_ee, dim1=-2, dim2=-1).sum()),
    }


def _held_out_squares(fit: dict, group: _Moments) -> tuple[float, float]:
    """Summed squared errors of ``group``'s frames left after ``fit``'s conditional mean, and after
    its error mean alone (computed from the group's moments: ``sum |A v - b|^2``)."""
    gain = fit["gain"]
    blocks, de, _ = gain.shape
    eye = torch.eye(de, dtype=gain.dtype).expand(blocks, de, de)
    conditional = (torch.cat([eye, -gain], dim=-1), fit["mu_e"] - torch.einsum("bij,bj->bi", gain, fit["mu_c"]))
    mean_only = (torch.cat([eye, torch.zeros_like(gain)], dim=-1), fit["mu_e"])
    return tuple(_sum_squares(a, b, group) for a, b in (conditional, mean_only))


def _sum_squares(a: torch.Tensor, b: torch.Tensor, moments: _Moments) -> float:
    """``sum_t |A v_t - b|^2`` over the vectors ``v_t`` behind ``moments``; ``a (B, de, d)``, ``b (B, de)``."""
    quadratic = torch.einsum("bij,bjk,bik->", a, moments.outer, a)
    linear = torch.einsum("bi,bij,bj->", b, a, moments.total)
    return float(quadratic - 2.0 * linear + moments.count * (b**2).sum())


def _jackknife_se(leave_out: list[float]) -> float | None:
    """Delete-one-group jackknife standard error from the estimates without each group (``None``
    with fewer than 2 groups)."""
    if len(leave_out) < 2:
        return None
    values = np.asarray(leave_out)
    return float(np.sqrt((len(values) - 1) / len(values) * ((values - values.mean()) ** 2).sum()))


def _rms_per_joint(var_blocks: torch.Tensor, num_joints: int) -> list[float]:
    """Root of the summed per-coordinate variance for each joint, in millimetres."""
    var = var_blocks.reshape(num_joints, 3).sum(-1)
    return [round(float(v) * 1000.0, 3) for v in var.sqrt()]  # metres -> millimetres


@dataclass
class _Moments:
    """Running first and second moments of block vectors ``(B, d)`` (float64)."""

    count: int
    total: torch.Tensor  # (B, d)
    outer: torch.Tensor  # (B, d, d)

    @classmethod
    def of(cls, v: torch.Tensor) -> _Moments:
        return cls(v.shape[0], v.sum(0), torch.einsum("tbi,tbj->bij", v, v))

    def add(self, v: torch.Tensor) -> _Moments:
        other = _Moments.of(v)
        return _Moments(self.count + other.count, self.total + other.total, self.outer + other.outer)

    def minus(self, other: _Moments) -> _Moments:
        """The moments without ``other``'s vectors (a part of these)."""
        return _Moments(self.count - other.count, self.total - other.total, self.outer - other.outer)

    @classmethod
    def total_of(cls, parts: list[_Moments]) -> _Moments | None:
        """The moments of all ``parts`` together (``None`` for none)."""
        if not parts:
            return None
        return cls(sum(m.count for m in parts), sum(m.total for m in parts), sum(m.outer for m in parts))

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        cov = (self.outer - self.count * mean[:, :, None] * mean[:, None, :]) / (self.count - 1)
        return mean, cov
