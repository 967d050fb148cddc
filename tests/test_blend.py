"""Blending the shipped sets by their guard scores (d3prefine.blend, refine --weights blend)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from d3prefine.blend import BlendedRefiner
from d3prefine.bones import constrain_bones
from d3prefine.errors import ExitCode, WeightsError
from d3prefine.guard import score_weights
from d3prefine.io import load_poses, save_poses
from d3prefine.metrics import mpjpe
from d3prefine.refine import Refiner, smoothed
from tests.test_cli_method import invoke
from tests.test_shipped_weights import ROOT

WALK = ROOT / "examples" / "walk.npz"


@pytest.fixture(scope="module")
def blended() -> BlendedRefiner:
    return BlendedRefiner.shipped("cpu")


def test_blend_of_the_shipped_sets_on_the_example(blended):
    """walk.npz (the previous build's idealised detector): the default set (trained on a pool of
    lifters of both builds) knows it better than weights/varied (lower guard score) and weighs
    more; the blend lies between the two sets, nearer the default (since stop 29 the default alone
    is better here, 18.12 mm; README, "Blending"). Both sets find it familiar, so the fallback's
    input weighs under 1 %."""
    (seq,) = load_poses(WALK)
    default, varied = (r.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, fallback=False) for r in blended.refiners)
    rel = lambda a: a - a[:, :1]
    excess = [default.guard.excess, varied.guard.excess]
    for fallback in (False, True):
        (result,) = blended.refine_sequences([seq], fallback=fallback)
        weights = score_weights(excess + [0.0] * fallback)
        assert weights[0] > 0.5 and result.blend_weights == pytest.approx(tuple(weights[:2]))
        assert result.guard == default.guard and result.uncertainty is None
        assert result.input_weight == (pytest.approx(weights[2]) if fallback else None)
        mean = weights[0] * rel(default.poses_3d) + weights[1] * rel(varied.poses_3d) + (weights[2] * smoothed(rel(seq.poses_3d), 9) if fallback else 0)
        expected = constrain_bones(mean, rel(seq.poses_3d), "input", blended.layout) + seq.poses_3d[:, :1]
        np.testing.assert_allclose(result.poses_3d, expected, atol=1e-6)
        errors = [1000 * mpjpe(p, seq.gt_3d) for p in (result.poses_3d, default.poses_3d, varied.poses_3d)]
        assert errors[0] == pytest.approx(18.63, abs=0.01) and errors[1] < errors[0] < errors[2] and errors[2] == pytest.approx(28.51, abs=0.01)
    assert 0.001 < result.input_weight < 0.01


def test_blending_refuses_what_it_cannot_weigh(blended, tmp_path):
    default = blended.refiners[0]
    with pytest.raises(WeightsError, match="at least two weight sets"):
        BlendedRefiner([default])
    unguarded = Refiner.from_pretrained(device="cpu")
    unguarded.guard = None
    with pytest.raises(WeightsError, match="holds no guard reference"):
        BlendedRefiner([default, unguarded])
    (seq,) = load_poses(WALK)
    with pytest.raises(ValueError, match="--samples must be 1"):
        list(blended.refine_stream([("walk", [(seq.poses_2d, seq.poses_3d, seq.image_size)])], samples=2, steps=2))


def test_refine_weights_blend_cli(blended, tmp_path):
    out = tmp_path / "walk.npz"
    invoke("refine", WALK, "--weights", "blend", "-o", out)
    (written,) = load_poses(out)
    (result,) = blended.refine_sequences(load_poses(WALK))
    np.testing.assert_allclose(written.poses_3d_refined, result.poses_3d, atol=1e-6)
    refine = written.provenance["refine"]
    assert refine["weights"] == [str(r.weights_path) for r in blended.refiners]
    assert refine["noise_digest"] == [r.noise_digest for r in blended.refiners]
    assert refine["blend"]["sharpness"] == blended.sharpness and refine["blend_weights"] == pytest.approx(result.blend_weights, abs=1e-4)
    assert refine["guard"]["score"] == pytest.approx(result.guard.score, abs=1e-4)
    for extra in (["--samples", "2", "--steps", "2"], ["--noise", str(ROOT / "weights" / "noise.safetensors")]):
        refused = invoke("refine", WALK, "--weights", "blend", "-o", tmp_path / "no.npz", *extra, code=ExitCode.USAGE)
        assert "--weights blend" in refused.stderr and not (tmp_path / "no.npz").exists()


def test_refine_weights_blend_blends_at_the_weights_rate(blended, tmp_path):
    """A 50 fps file is resampled to the weights' 30 fps, blended there and resampled back, by
    the CLI and the library alike."""
    source = [dataclasses.replace(s, fps=50.0, name=f"s{i}") for i, s in enumerate([*load_poses(WALK), *load_poses(ROOT / "examples" / "wave.npz")])]
    save_poses(tmp_path / "in.h5", source)
    invoke("refine", tmp_path / "in.h5", "--weights", "blend", "-o", tmp_path / "out.h5")
    written = load_poses(tmp_path / "out.h5")
    for seq, result in zip(written, blended.refine_sequences(source)):
        assert seq.provenance["refine"]["resampled"]["to_fps"] == 30.0 and len(seq.provenance["refine"]["blend_weights"]) == 2
        np.testing.assert_allclose(seq.poses_3d_refined, result.poses_3d, atol=1e-5)
