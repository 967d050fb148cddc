"""Architecture dispatch: the config names the network, loading builds that class."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from d3prefine.architectures import ARCHITECTURES, build_denoiser
from d3prefine.checkpoint import load_denoiser, save_denoiser
from d3prefine.errors import WeightsError
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.tensorfile import read_tensors, write_tensors


class ZeroNet(nn.Module):
    """A second architecture: one bias, the whitened error is that bias everywhere."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        self.config = config
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x_t: torch.Tensor, p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.bias.expand_as(x_t)


def test_config_records_the_architecture_and_loading_dispatches_on_it(tmp_path, monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "zero", ZeroNet)
    network = build_denoiser(DenoiserConfig(architecture="zero"))
    with torch.no_grad():
        network.bias.fill_(0.5)
    save_denoiser(tmp_path / "zero.safetensors", network, {})
    loaded = load_denoiser(tmp_path / "zero.safetensors")
    assert type(loaded) is ZeroNet and loaded.config.architecture == "zero" and loaded.bias.tolist() == [0.5] * 3
    assert type(build_denoiser(DenoiserConfig())) is PoseDenoiser  # the default, "stcformer"


def test_weights_without_an_architecture_are_stcformer_and_unknown_names_are_refused(tmp_path):
    path = tmp_path / "old.safetensors"
    save_denoiser(path, PoseDenoiser(DenoiserConfig(dim=16, depth=1)), {})
    tensors, meta = read_tensors(path, "d3prefine-denoiser")
    config = json.loads(meta["config"])
    del config["architecture"]  # as written before the name was recorded
    write_tensors(path, tensors, {**meta, "config": json.dumps(config)})
    assert type(load_denoiser(path)) is PoseDenoiser
    write_tensors(path, tensors, {**meta, "config": json.dumps({**config, "architecture": "mystery"})})
    with pytest.raises(WeightsError, match="unknown architecture 'mystery', expected one of stcformer"):
        load_denoiser(path)
