"""Frame rates: resampling, the weights' training rate, and refine at another rate."""

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import load_poses, save_poses
from d3prefine.refine import Refiner
from d3prefine.resample import resample, resampled_length


def test_resample_reproduces_a_smooth_signal_at_the_new_times():
    t50 = np.arange(101) / 50.0
    signal = np.stack([np.sin(2 * t50), t50**2], axis=-1)[:, None, :]  # (T, 1, 2)
    out = resample(signal, 50.0, 30.0)
    assert out.shape == (resampled_length(101, 50.0, 30.0), 1, 2) == (61, 1, 2)
    t30 = np.arange(61) / 30.0
    np.testing.assert_allclose(out[:, 0, 0], np.sin(2 * t30), atol=1e-4)
    np.testing.assert_allclose(out[:, 0, 1], t30**2, atol=1e-5)
    back = resample(out, 30.0, 50.0, frames=101)
    np.testing.assert_allclose(back, signal, atol=1e-3)
    assert resample(signal[:1], 50.0, 30.0).shape == (1, 1, 2)
    np.testing.assert_allclose(resample(signal[:3], 50.0, 25.0)[:, 0, 1], [0.0, 0.0016], atol=1e-7)  # linear for < 4 frames
    with pytest.raises(ValueError, match="frame rates must be > 0"):
        resample(signal, 0.0, 30.0)


def test_shipped_weights_record_their_training_rate():
    assert Refiner.from_pretrained(device="cpu").fps == 30.0


def test_refine_resamples_other_rates_and_back(tmp_path, make_sequence):
    seq = make_sequence(60)
    seq.fps = 60.0
    save_poses(tmp_path / "s.npz", [seq])
    runner = CliRunner()
    result = runner.invoke(app, ["refine", str(tmp_path / "s.npz"), "-o", str(tmp_path / "r.npz")])
    assert result.exit_code == 0, result.output
    out = load_poses(tmp_path / "r.npz")[0]
    assert out.poses_3d_refined.shape == seq.poses_3d.shape
    assert out.provenance["refine"]["resampled"]["from_fps"] == 60.0 and out.provenance["refine"]["resampled"]["to_fps"] == 30.0
    result = runner.invoke(app, ["refine", str(tmp_path / "s.npz"), "-o", str(tmp_path / "i.npz"), "--fps-policy", "ignore"])
    assert result.exit_code == 0 and "resampled" not in load_poses(tmp_path / "i.npz")[0].provenance["refine"]
    assert not np.allclose(load_poses(tmp_path / "i.npz")[0].poses_3d_refined, out.poses_3d_refined, atol=1e-4)
    result = runner.invoke(app, ["refine", str(tmp_path / "s.npz"), "-o", str(tmp_path / "x.npz"), "--fps-policy", "refuse"])
    assert result.exit_code == 1 and "is 60 fps, the weights learned 30 fps motion" in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_training_records_the_rate_its_sequences_share(tmp_path, make_sequence):
    import dataclasses

    from d3prefine.architectures import build_denoiser
    from d3prefine.checkpoint import denoiser_metadata, save_denoiser, training_fps
    from d3prefine.model import DenoiserConfig
    from d3prefine.train import WindowSampler

    same = [make_sequence(30, seed=k) for k in range(2)]
    assert WindowSampler(same, 9, 0).fps == 30.0
    assert WindowSampler([same[0], dataclasses.replace(same[1], fps=50.0)], 9, 0).fps is None
    model = build_denoiser(DenoiserConfig(window=9, dim=8, depth=1, heads=1))
    save_denoiser(tmp_path / "d.safetensors", model, {}, fps=30.0)
    assert training_fps(denoiser_metadata(tmp_path / "d.safetensors")) == 30.0
    save_denoiser(tmp_path / "n.safetensors", model, {})
    assert training_fps(denoiser_metadata(tmp_path / "n.safetensors")) is None
    with pytest.raises(ValueError, match="expected a positive frame rate"):
        training_fps({"fps": "-5"})
