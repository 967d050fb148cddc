"""Base lifters: shapes, exact zero root, padding, tiny fits, safetensors round trip."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from d3prefine.errors import WeightsError
from d3prefine.skeleton import H36M_17
from recipes.estimators import (
    FitConfig,
    LifterConfig,
    LifterKind,
    _flip,
    fit,
    load_lifter,
    predict,
    save_lifter,
)

TEMPORAL = LifterConfig(LifterKind.TEMPORAL, width=32)
FRAME = LifterConfig(LifterKind.FRAME, width=32)


def toy_data(windows=4, frames=40, seed=0):
    """Normalized 2D that is a fixed linear function of root-relative 3D (learnable)."""
    rng = np.random.default_rng(seed)
    targets = [rng.normal(0, 0.3, size=(frames, 17, 3)).astype(np.float32) for _ in range(windows)]
    for t in targets:
        t -= t[:, :1]
    inputs = [(t[..., :2] / (5 + t[..., 2:])).astype(np.float32) for t in targets]
    return inputs, targets


def test_temporal_lifter_receptive_field_and_shapes():
    model = TEMPORAL.build().eval()
    assert model.receptive_field == 27 and model.pad == 13
    out = model(torch.zeros(2, 60, 17, 2))
    assert out.shape == (2, 60 - 26, 17, 3)
    assert (out[..., 0, :] == 0).all()


@pytest.mark.parametrize("config", [TEMPORAL, FRAME], ids=["temporal", "frame"])
def test_tiny_fit_runs_and_predicts_root_zero(config):
    torch.set_num_threads(1)
    inputs, targets = toy_data()
    losses = []
    model = fit(config, FitConfig(steps=30, batch_frames=64, chunk=16, lr=3e-3), inputs, targets, lambda s, l: losses.append(l))
    assert losses[-1] < losses[0]
    outputs = predict(model, inputs + [inputs[0][:5]])  # a window shorter than the receptive field too
    assert [o.shape for o in outputs] == [(40, 17, 3)] * 4 + [(5, 17, 3)]
    for out in outputs:
        assert out.dtype == np.float32 and (out[:, H36M_17.root] == 0).all()


def test_predict_batches_equal_single_windows():
    model = TEMPORAL.build().eval()
    inputs, _ = toy_data(windows=3, frames=30)
    together = predict(model, inputs)
    alone = [predict(model, [w])[0] for w in inputs]
    tiny_batches = predict(model, inputs, max_frames=10)
    for a, b, c in zip(together, alone, tiny_batches):
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(c, b, atol=1e-5)


def test_replicate_padding_at_sequence_ends():
    model = TEMPORAL.build().eval()
    window = toy_data(windows=1, frames=30)[0][0]
    padded = np.concatenate([np.repeat(window[:1], 13, 0), window, np.repeat(window[-1:], 13, 0)])
    expected = model(torch.from_numpy(padded)[None])[0].detach().numpy()
    np.testing.assert_allclose(predict(model, [window])[0], expected, atol=1e-5)


def test_flip_mirrors_x_and_swaps_sides():
    x = torch.randn(2, 5, 17, 2)
    y = torch.randn(2, 5, 17, 3)
    xf, yf = _flip(x, y, torch.tensor([True, False]))
    assert torch.equal(xf[1], x[1]) and torch.equal(yf[1], y[1])
    assert torch.equal(xf[0, :, 4, 0], -x[0, :, 1, 0]) and torch.equal(xf[0, :, 4, 1], x[0, :, 1, 1])
    assert torch.equal(yf[0, :, 13], y[0, :, 16] * torch.tensor([-1.0, 1.0, 1.0]))


def test_save_load_round_trip(tmp_path):
    model = FRAME.build().eval()
    path = tmp_path / "w" / "frame.safetensors"
    save_lifter(model, FRAME, path, {"note": "test"})
    loaded, config = load_lifter(path)
    assert config == FRAME
    x = torch.randn(1, 7, 17, 2)
    torch.testing.assert_close(loaded(x), model(x))
    bogus = tmp_path / "bogus.safetensors"
    save_file({"a": torch.zeros(1)}, str(bogus), metadata={"config": json.dumps({"kind": "frame", "width": 32})})
    with pytest.raises(WeightsError, match="bogus.safetensors"):
        load_lifter(bogus)
    with pytest.raises(WeightsError, match="missing.safetensors"):
        load_lifter(tmp_path / "missing.safetensors")
