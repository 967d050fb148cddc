"""The Refiner: windows, batching, determinism, and the Gaussian-mean fallback of an untrained network."""

from pathlib import Path

import numpy as np
import pytest
import torch

from d3prefine.baselines import savgol
from d3prefine.errors import InputError, UsageError, WeightsError
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple, model_inputs
from d3prefine.refine import DEFAULT_SMOOTH, DEFAULT_WEIGHTS_DIR, DENOISER_FILE, SHIPPED_SETS, SMOOTH_POLYORDER, Refiner, denoiser_path
from tests.conftest import build_sequence

TINY = DenoiserConfig(window=9, dim=16, depth=1, heads=2)


@pytest.fixture(scope="module")
def noise():
    seqs = [build_sequence(60, seed=s) for s in range(3)]
    return NoiseModel.fit([error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in seqs], layout="h36m17")


def _refiner(noise, trained=True):
    torch.manual_seed(0)
    model = PoseDenoiser(TINY)
    if trained:  # a network with a non-zero output, standing in for trained weights
        torch.nn.init.normal_(model.head.weight, std=0.5)
    return Refiner(model, noise, device="cpu")


@pytest.mark.parametrize("frames", [1, 5, 9, 40, 257])
def test_shapes_and_root_trajectory_are_kept(noise, frames):
    seq = build_sequence(frames, seed=7)
    out = _refiner(noise).refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=2)
    assert out.poses_3d.shape == (frames, 17, 3) and out.poses_3d.dtype == np.float32 and out.uncertainty is None
    np.testing.assert_allclose(out.poses_3d[:, 0], seq.poses_3d[:, 0], atol=1e-6)
    assert np.abs(out.poses_3d - seq.poses_3d).max() > 1e-4


@pytest.mark.parametrize("steps", [1, 4])
def test_untrained_network_applies_the_gaussian_conditional_mean(noise, steps):
    seq = build_sequence(50, seed=8)
    out = _refiner(noise, trained=False).refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=steps, smooth=0, bone_lengths="free")
    x = model_inputs(seq.poses_2d, seq.poses_3d, seq.image_size, 0)
    mean = noise.mean(torch.from_numpy(x.p), torch.from_numpy(x.y)).numpy()
    np.testing.assert_allclose(out.poses_3d, seq.poses_3d - mean, atol=1e-5)


def test_smoothing_filters_the_root_relative_refinement_only(noise):
    seq = build_sequence(40, seed=5)
    refiner = _refiner(noise)
    raw = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, smooth=0, bone_lengths="free").poses_3d
    smoothed = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, bone_lengths="free").poses_3d
    root = seq.poses_3d[:, :1]
    expected = savgol(raw - root, DEFAULT_SMOOTH, SMOOTH_POLYORDER) + root
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)
    np.testing.assert_allclose(smoothed[:, 0], seq.poses_3d[:, 0], atol=1e-6)
    jerk = lambda poses: np.abs(np.diff(poses - root, n=2, axis=0)).mean()
    assert jerk(smoothed) < 0.8 * jerk(raw)


def test_batching_and_sequence_grouping_do_not_change_results(noise):
    seqs = [build_sequence(n, seed=n) for n in (3, 30, 70)]
    args = [(s.poses_2d, s.poses_3d, s.image_size) for s in seqs]
    refiner = _refiner(noise)
    together = refiner.refine_many(args, steps=3, batch_size=2)
    for arg, result in zip(args, together):
        alone = refiner.refine(*arg[:2], image_size=arg[2], steps=3, batch_size=64)
        np.testing.assert_allclose(result.poses_3d, alone.poses_3d, atol=1e-5)


def test_sampling_is_seeded_and_reports_uncertainty(noise):
    seq = build_sequence(30, seed=9)
    refiner = _refiner(noise)
    run = lambda seed: refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=3, samples=4, seed=seed)
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    assert not np.allclose(a.poses_3d, c.poses_3d)
    assert a.uncertainty.shape == (30, 17) and np.all(a.uncertainty[:, 1:] > 0)
    np.testing.assert_allclose(a.uncertainty[:, 0], 0.0, atol=1e-6)  # the root is never moved


def test_flip_averages_the_refinement_of_the_mirror_image(noise):
    seq = build_sequence(40, seed=4)
    refiner = _refiner(noise)
    mirror = refiner.layout.mirror
    p = model_inputs(seq.poses_2d, seq.poses_3d, seq.image_size, 0).p  # normalized: mirrored about the root
    run = lambda p2d, p3d, **options: refiner.refine(p2d, p3d, steps=2, bone_lengths="free", **options)
    plain, flipped = run(p, seq.poses_3d).poses_3d, run(p, seq.poses_3d, flip=True).poses_3d
    twin = mirror(run(mirror(p), mirror(seq.poses_3d)).poses_3d)
    np.testing.assert_allclose(flipped, (plain + twin) / 2, atol=1e-5)
    assert np.abs(plain - twin).max() > 1e-3  # the untrained network is not mirror-symmetric
    sampled = run(p, seq.poses_3d, samples=2, seed=3, flip=True)
    assert sampled.uncertainty.shape == (40, 17) and np.all(sampled.uncertainty[:, 1:] > 0)
    np.testing.assert_array_equal(sampled.poses_3d, run(p, seq.poses_3d, samples=2, seed=3, flip=True).poses_3d)


def test_samples_do_not_depend_on_batching(noise):
    seqs = [build_sequence(n, seed=n) for n in (30, 70)]
    args = [(s.poses_2d, s.poses_3d, s.image_size) for s in seqs]
    refiner = _refiner(noise)
    options = {"steps": 3, "samples": 4, "seed": 1}
    together = refiner.refine_many(args, batch_size=2, **options)
    alone = refiner.refine(*args[0][:2], image_size=args[0][2], batch_size=64, **options)
    np.testing.assert_allclose(together[0].poses_3d, alone.poses_3d, atol=1e-5)
    np.testing.assert_allclose(together[0].uncertainty, alone.uncertainty, atol=1e-5)
    assert not np.allclose(together[1].uncertainty[:30], alone.uncertainty)  # another sequence, other noise


def test_progress_reports_every_frame_once(noise):
    seqs = [build_sequence(n, seed=n) for n in (4, 50)]
    done = []
    _refiner(noise).refine_many([(s.poses_2d, s.poses_3d, s.image_size) for s in seqs], batch_size=3, progress=done.append)
    assert sum(done) == 54


def test_invalid_requests_raise(noise):
    refiner = _refiner(noise)
    seq = build_sequence(20)
    with pytest.raises(ValueError, match="samples"):
        refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=1, samples=3)
    with pytest.raises(InputError, match="poses_3d"):
        refiner.refine(seq.poses_2d[:, :16], seq.poses_3d[:, :16], image_size=seq.image_size)
    with pytest.raises(ValueError, match="steps"):
        refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=500)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=2, samples=2, seed=-1)
    for window in (2, 3, -1):
        with pytest.raises(ValueError, match="smooth must be 0"):
            refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, smooth=window)


def test_mismatched_noise_statistics_are_refused():
    with pytest.raises(WeightsError, match="do not match"):
        Refiner(PoseDenoiser(TINY), NoiseModel.isotropic(0.05, num_joints=16, layout="h36m17"), device="cpu")


def test_denoiser_path_resolves_shipped_sets_by_name(tmp_path, monkeypatch):
    assert SHIPPED_SETS == ("varied",)
    assert denoiser_path(None) == DEFAULT_WEIGHTS_DIR / DENOISER_FILE
    assert denoiser_path("varied") == DEFAULT_WEIGHTS_DIR / "varied" / DENOISER_FILE
    monkeypatch.chdir(tmp_path)
    (tmp_path / "varied").mkdir()  # a folder of that name here wins over the shipped set
    assert denoiser_path("varied") == Path("varied") / DENOISER_FILE
    with pytest.raises(UsageError, match=r"^--weights pool: the shipped set 'pool' is the default weights/ since stop 20"):
        denoiser_path("pool")  # stop 16-19's name: the set moved
    (tmp_path / "pool").mkdir()
    assert denoiser_path("pool") == Path("pool") / DENOISER_FILE
    assert denoiser_path(tmp_path / "x.safetensors") == tmp_path / "x.safetensors"
