"""PoseDenoiser architecture and its weights file."""

import os

import pytest
import torch

from d3prefine.checkpoint import load_denoiser, save_denoiser
from d3prefine.errors import WeightsError
from d3prefine.model import DenoiserConfig, PoseDenoiser

SMALL = DenoiserConfig(window=9, dim=16, depth=2, heads=2)


def _inputs(b=2, cfg=SMALL):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, cfg.window, cfg.num_joints, 3, generator=g), torch.randn(b, cfg.window, cfg.num_joints, 2, generator=g), torch.tensor([3, 100])


def test_untrained_network_predicts_zero_whitened_error():
    z = PoseDenoiser(SMALL)(*_inputs())
    assert z.shape == (2, 9, 17, 3) and torch.count_nonzero(z) == 0


def test_information_flows_across_joints_and_frames():
    torch.manual_seed(0)
    model = PoseDenoiser(SMALL)
    torch.nn.init.normal_(model.head.weight)
    x, p, t = _inputs()
    x2 = x.clone()
    x2[:, 4, 5] += 1.0  # one joint of one frame
    diff = (model(x2, p, t) - model(x, p, t)).abs().sum(-1)
    assert diff[:, 0, 0].min() > 0  # another frame, another joint
    assert torch.allclose(model(x, p, t)[1], model(x[1:], p[1:], t[1:])[0], atol=1e-5)  # windows independent


def test_config_validation():
    with pytest.raises(ValueError):
        DenoiserConfig(dim=30, heads=4)
    with pytest.raises(ValueError):
        PoseDenoiser(SMALL)(torch.zeros(1, 8, 17, 3), torch.zeros(1, 8, 17, 2), torch.zeros(1))


def test_weights_round_trip_rebuilds_the_model_from_the_file(tmp_path):
    torch.manual_seed(1)
    model = PoseDenoiser(SMALL)
    torch.nn.init.normal_(model.head.weight)
    save_denoiser(tmp_path / "m.safetensors", model, {"note": "unit"})
    loaded = load_denoiser(tmp_path / "m.safetensors")
    assert loaded.config == SMALL
    inputs = _inputs()
    torch.testing.assert_close(loaded(*inputs), model(*inputs))
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file


def test_loading_wrong_files_raises(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_denoiser(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsError, match="not a readable"):
        load_denoiser(tmp_path / "junk.safetensors")
