"""The conditional Gaussian error model against brute-force numpy."""

import numpy as np
import pytest
import torch

from d3prefine.errors import WeightsError
from d3prefine.noise import FORMAT, NoiseMode, NoiseModel
from d3prefine.tensorfile import read_tensors, write_tensors


def _correlated(rng, frames=4000, joints=4):
    """p (T,J,2), y (T,J,3), x (T,J,3) where the error depends linearly on p and y plus noise."""
    p = rng.normal(size=(frames, joints, 2))
    x = rng.normal(size=(frames, joints, 3)) * 0.2
    mix = rng.normal(size=(5, 3)) * 0.05
    e = np.concatenate([p, x], -1) @ mix + rng.normal(size=(frames, joints, 3)) * 0.01 + 0.003
    return p, x + e, x


def _brute_force(p, y, x, joint):
    """Conditional mean and covariance of e_j given c_j = (p_j, y_j) from np.cov."""
    e = (y - x)[:, joint]
    c = np.concatenate([p[:, joint], y[:, joint]], -1)
    s = np.cov(np.concatenate([e, c], -1), rowvar=False)
    s_ee, s_ec, s_cc = s[:3, :3], s[:3, 3:], s[3:, 3:]
    gain = s_ec @ np.linalg.inv(s_cc)
    mean = e.mean(0) + (c - c.mean(0)) @ gain.T
    return mean, s_ee - gain @ s_ec.T


@pytest.fixture
def data():
    return _correlated(np.random.default_rng(0))


def test_per_joint_conditional_law_matches_brute_force(data):
    p, y, x = data
    model = NoiseModel.fit([(p[:1500], y[:1500], x[:1500]), (p[1500:], y[1500:], x[1500:])], layout="toy", ridge=0.0, min_std=0.0)
    model64 = model.to("cpu", torch.float64)
    mean = model64.mean(torch.from_numpy(p), torch.from_numpy(y)).numpy()
    for j in range(p.shape[1]):
        want_mean, want_cov = _brute_force(p, y, x, j)
        np.testing.assert_allclose(mean[:, j], want_mean, atol=1e-5)
        chol = model64.chol[j].numpy()
        np.testing.assert_allclose(chol @ chol.T, want_cov, atol=1e-7)


def test_full_body_mean_explains_at_least_as_much(data):
    p, y, x = data
    per_joint = NoiseModel.fit([(p, y, x)], layout="toy")
    full = NoiseModel.fit([(p, y, x)], mode="full_body", layout="toy")
    assert full.gain.shape == (1, 12, 20)
    residual = {}
    for name, model in (("joint", per_joint), ("full", full)):
        m = model.mean(torch.from_numpy(p).float(), torch.from_numpy(y).float()).numpy()
        residual[name] = np.linalg.norm(y - x - m, axis=-1).mean()
    assert residual["full"] <= residual["joint"] + 1e-4
    assert residual["joint"] < np.linalg.norm(y - x, axis=-1).mean() * 0.8


def test_denormalize_maps_the_whitened_real_errors_back(data):
    p, y, x = data
    model = NoiseModel.fit([(p, y, x)], layout="toy").to("cpu", torch.float64)
    mean = model.mean(torch.from_numpy(p), torch.from_numpy(y))
    residual = (torch.from_numpy(y - x) - mean).unsqueeze(-1)
    z = torch.linalg.solve_triangular(model.chol, residual, upper=False).squeeze(-1)
    torch.testing.assert_close(model.denormalize(z, mean), torch.from_numpy(y - x))
    np.testing.assert_allclose(np.cov(z[:, 1].numpy(), rowvar=False), np.eye(3), atol=0.01)


def test_sampling_has_the_fitted_statistics(data):
    p, y, x = data
    model = NoiseModel.fit([(p, y, x)], layout="toy").to("cpu", torch.float64)
    mean = model.mean(torch.from_numpy(p), torch.from_numpy(y))
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([model.sample(mean, g) for _ in range(20)]) - mean
    cov = np.cov(draws[:, :, 2].reshape(-1, 3).numpy(), rowvar=False)
    chol = model.chol[2].numpy()
    np.testing.assert_allclose(cov, chol @ chol.T, rtol=0.05, atol=1e-6)
    torch.testing.assert_close(model.sample(mean, torch.Generator().manual_seed(3)), model.sample(mean, torch.Generator().manual_seed(3)))


def test_a_root_without_error_is_never_moved(data):
    p, y, x = data
    y = y.copy()
    y[:, 0] = x[:, 0] = 0.0
    p = p.copy()
    p[:, 0] = 0.0
    for mode in ("per_joint", "full_body", "isotropic"):
        model = NoiseModel.fit([(p, y, x)], mode=mode, layout="toy", min_std=1e-3)
        mean = model.mean(torch.from_numpy(p).float(), torch.from_numpy(y).float())
        draw = model.sample(mean, torch.Generator().manual_seed(0))
        assert torch.count_nonzero(draw[:, 0]) == 0 and torch.count_nonzero(draw[:, 1]) > 0
        assert torch.count_nonzero(model.denormalize(torch.ones_like(mean), mean)[:, 0]) == 0
    assert NoiseModel.fit([(p, y, x)], layout="toy").info["error_rms_per_joint_mm"][0] == 0.0


def test_isotropic_model():
    model = NoiseModel.isotropic(0.05, num_joints=3, layout="toy")
    p, y = torch.zeros(2, 3, 2), torch.ones(2, 3, 3)
    assert torch.equal(model.mean(p, y), torch.zeros(2, 3, 3))
    z = torch.ones(2, 3, 3)
    torch.testing.assert_close(model.denormalize(z, model.mean(p, y)), 0.05 * z)
    assert model.mode is NoiseMode.ISOTROPIC


def test_save_load_round_trip(tmp_path, data):
    p, y, x = data
    model = NoiseModel.fit([(p, y, x)], layout="toy", info={"estimator": "unit"})
    path = tmp_path / "noise.safetensors"
    model.save(path)
    loaded = NoiseModel.load(path)
    assert loaded.mode is model.mode and loaded.layout == "toy" and loaded.info["estimator"] == "unit"
    assert loaded.info["frames"] == len(p)
    for k in ("mu_e", "mu_c", "gain", "chol"):
        torch.testing.assert_close(getattr(loaded, k), getattr(model, k))


def test_load_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        NoiseModel.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        NoiseModel.load(bad)


@pytest.mark.parametrize(
    ("tensor", "change", "message"),
    [
        ("mu_c", lambda t: t[:3], r"invalid noise file \(ValueError: per_joint model of 4 joints: tensor 'mu_c' has shape \(3, 5\), expected \(4, 5\)\)"),
        ("gain", lambda t: t[..., :4], r"tensor 'gain' has shape \(4, 3, 4\), expected \(4, 3, 5\)"),
        ("chol", lambda t: torch.full_like(t, float("nan")), r"tensor 'chol' holds NaN or inf"),
    ],
)
def test_load_refuses_wrong_shapes_and_non_finite_tensors(tmp_path, data, tensor, change, message):
    path = tmp_path / "noise.safetensors"
    NoiseModel.fit([data], layout="toy").save(path)
    tensors, metadata = read_tensors(path, FORMAT)
    write_tensors(path, {**tensors, tensor: change(tensors[tensor])}, metadata)
    with pytest.raises(WeightsError, match=message):
        NoiseModel.load(path)


def test_load_refuses_metadata_nested_too_deeply(tmp_path, data):
    path = tmp_path / "noise.safetensors"
    NoiseModel.fit([data], layout="toy").save(path)
    tensors, metadata = read_tensors(path, FORMAT)
    write_tensors(path, tensors, {**metadata, "info": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(WeightsError, match=r"invalid noise file \(RecursionError"):
        NoiseModel.load(path)


def test_unknown_mode_raises(data):
    with pytest.raises(ValueError, match="'per_limb' is not a valid NoiseMode"):
        NoiseModel.fit([data], mode="per_limb", layout="toy")
    fitted = NoiseModel.fit([data], layout="toy")
    tensors = {k: getattr(fitted, k) for k in ("mu_e", "mu_c", "gain", "chol")}
    with pytest.raises(ValueError, match="'bogus' is not a valid NoiseMode"):
        NoiseModel("bogus", 4, "toy", **tensors)
    by_name = NoiseModel("per_joint", 4, "toy", **tensors)  # a mode's name works like the Enum
    assert by_name.mode is NoiseMode.PER_JOINT
    p, y, _ = data
    torch.testing.assert_close(by_name.mean(torch.from_numpy(p).float(), torch.from_numpy(y).float()), fitted.mean(torch.from_numpy(p).float(), torch.from_numpy(y).float()))


def test_isotropic_fit_is_the_rms_error_and_round_trips(tmp_path, data):
    p, y, x = data
    y = y.copy()
    y[:, 0] = x[:, 0]  # a root without error does not count
    model = NoiseModel.fit([(p, y, x)], mode="isotropic", layout="toy")
    want = np.sqrt(np.mean((y - x)[:, 1:] ** 2))
    assert model.info["std_m"] == pytest.approx(want, rel=1e-6)
    model.save(tmp_path / "iso.safetensors")
    loaded = NoiseModel.load(tmp_path / "iso.safetensors")
    assert loaded.mode is NoiseMode.ISOTROPIC and loaded.mu_c.shape == (4, 0)
    torch.testing.assert_close(loaded.chol, model.chol)


def test_digest_identifies_the_statistics_not_the_file_or_device():
    from pathlib import Path

    noise = NoiseModel.load(Path(__file__).resolve().parent.parent / "weights" / "noise.safetensors")
    digest = noise.digest()
    assert len(digest) == 64 and noise.to("cpu", torch.float64).digest() == digest
    noise.info = {"note": "metadata is not part of it"}
    assert noise.digest() == digest
    noise.chol = noise.chol * 2.0  # other statistics
    assert noise.digest() != digest
