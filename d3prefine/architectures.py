"""Denoiser architectures by name: the config of a weights file names its network class.

A network maps ``x_t (B, W, J, 3)`` metres, ``p (B, W, J, 2)`` normalized 2D and steps
``t (B,)`` to the whitened error ``(B, W, J, 3)``, is built from a
:class:`~d3prefine.model.DenoiserConfig` alone and exposes it as ``.config``. A new architecture
is one module defining such a class plus its line in :data:`ARCHITECTURES`; ``train``
(``--architecture``) records the name in the weights and loading dispatches on it.
"""

from __future__ import annotations

from torch import nn

from d3prefine.model import DenoiserConfig, PoseDenoiser

#: Architecture name (``DenoiserConfig.architecture``) -> network class.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "stcformer": PoseDenoiser,  # spatio-temporal criss-cross attention (d3prefine/model.py)
}


def network_class(name: str) -> type[nn.Module]:
    """The network class registered as ``name``; raises ``ValueError`` for an unknown name."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}, expected one of {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name]


def build_denoiser(config: DenoiserConfig) -> nn.Module:
    """The network ``config.architecture`` names, built from ``config`` (random weights: seed the
    caller's RNG); raises ``ValueError`` for an unknown architecture."""
    return network_class(config.architecture)(config)
