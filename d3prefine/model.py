"""PoseDenoiser: a spatio-temporal transformer that predicts the whitened estimator error.

Tokens are (frame, joint) pairs of a window ``(B, W, J)``. Each token embeds the current
diffusion sample ``x_t`` and the 2D pose ``p`` of its joint, plus a
learned joint embedding, a learned frame-position embedding and the diffusion-step embedding.
An STC block (as in STCFormer) splits the channels in two halves: one half attends across the
joints of a frame, the other across the frames of a joint; an MLP follows. The head predicts
the whitened error ``z`` ``(B, W, J, 3)`` and is zero-initialized, so an untrained network
predicts ``z = 0``: the pose is corrected by the Gaussian conditional mean alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from d3prefine.config import DenoiserConfig


class _Attention(nn.Module):
    """Multi-head self-attention over the second-to-last axis of ``(N, L, C)``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, c = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, c)


class STCBlock(nn.Module):
    """Half the channels attend across joints, half across frames; then an MLP.

    Input and output ``(B, W, J, C)``.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        half = dim // 2
        self.norm1 = nn.LayerNorm(dim)
        self.spatial = _Attention(half, heads)
        self.temporal = _Attention(half, heads)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, w, j, c = x.shape
        h = self.norm1(x)
        hs, ht = h.split(c // 2, dim=-1)
        hs = self.spatial(hs.reshape(b * w, j, c // 2)).reshape(b, w, j, c // 2)
        ht = self.temporal(ht.transpose(1, 2).reshape(b * j, w, c // 2)).reshape(b, j, w, c // 2).transpose(1, 2)
        x = x + self.proj(torch.cat([hs, ht], dim=-1))
        return x + self.mlp(self.norm2(x))


def step_embedding(t: torch.Tensor, dim: int, num_train_timesteps: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of diffusion steps ``t (B,)`` scaled to ``[0, 1000]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * (1000.0 / num_train_timesteps))[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class PoseDenoiser(nn.Module):
    """Predicts the whitened error of ``x_t`` given the 2D pose and the step.

    Inputs (root-relative): ``x_t (B, W, J, 3)`` metres, camera frame;
    ``p (B, W, J, 2)`` normalized screen units; ``t (B,)`` integer steps in ``0..T``.
    Output: ``z (B, W, J, 3)``, the whitened error (dimensionless).
    """

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        c = config.dim
        self.embed = nn.Linear(3 + 2, c)
        self.joint_embed = nn.Parameter(torch.zeros(config.num_joints, c))
        self.frame_embed = nn.Parameter(torch.zeros(config.window, c))
        self.step_mlp = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, c))
        self.blocks = nn.ModuleList(STCBlock(c, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, 3)
        nn.init.normal_(self.joint_embed, std=0.02)
        nn.init.normal_(self.frame_embed, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x_t: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b, w, j, _ = x_t.shape
        if w != self.config.window or j != self.config.num_joints:
            raise ValueError(f"expected windows of {self.config.window} frames x {self.config.num_joints} joints, got {w} x {j}")
        h = self.embed(torch.cat([x_t, p], dim=-1)) + self.joint_embed + self.frame_embed[:, None]
        h = h + self.step_mlp(step_embedding(t, self.config.dim, self.config.num_train_timesteps))[:, None, None]
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h))
