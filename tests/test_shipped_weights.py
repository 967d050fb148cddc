"""The shipped weights/ on the shipped examples/: refinement lowers the error of real estimator output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine import Refiner
from d3prefine.calibration import Widening
from d3prefine.cli import app
from d3prefine.io import load_poses
from d3prefine.metrics import accel_error, mpjpe, p_mpjpe
from d3prefine.noise import NoiseModel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.npz"))
runner = CliRunner()


@pytest.fixture(scope="module")
def refiner():
    return Refiner.from_pretrained(device="cpu")


def test_weights_describe_their_training(refiner):
    assert refiner.model.config.layout == "h36m17" and refiner.noise.layout == "h36m17"
    # the uncertainty radius grows with the correction; its weight was chosen on unseen lifters (README, "Guard and uncertainty")
    assert refiner.calibration.widening is Widening.CORRECTION and refiner.calibration.correction_weight == 2.0  # stop 19: fitted with the fallback
    assert refiner.calibration.scale == pytest.approx(1.9268, abs=1e-4) and refiner.guard is not None
    assert refiner.calibration.fallback  # fitted on refinements with the default --fallback
    assert refiner.weights_path == ROOT / "weights" / "denoiser.safetensors"
    assert refiner.noise.info["frames"] > 1_000_000
    # the denoiser records the digest of the noise statistics it was trained with, the shipped ones
    assert refiner.noise_trained_with == refiner.noise_digest == NoiseModel.load(ROOT / "weights" / "noise.safetensors").digest()
    assert not refiner.noise_mismatch


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_refinement_lowers_mpjpe_and_p_mpjpe_of_every_example(refiner, path):
    (seq,) = load_poses(path)
    refined = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size).poses_3d
    # the examples come from the previous build (an idealised detector): a domain the shipped
    # weights were not trained on, where they gain 3-14 % (README, "Results")
    assert mpjpe(refined, seq.gt_3d) < 0.98 * mpjpe(seq.poses_3d, seq.gt_3d)
    assert p_mpjpe(refined, seq.gt_3d) < p_mpjpe(seq.poses_3d, seq.gt_3d)
    assert accel_error(refined, seq.gt_3d) < accel_error(seq.poses_3d, seq.gt_3d)


def test_smoothing_lowers_the_acceleration_error_without_raising_mpjpe(refiner):
    (seq,) = load_poses(ROOT / "examples" / "walk.npz")
    args = (seq.poses_2d, seq.poses_3d)
    raw = refiner.refine(*args, image_size=seq.image_size, smooth=0).poses_3d
    smoothed = refiner.refine(*args, image_size=seq.image_size).poses_3d
    assert accel_error(smoothed, seq.gt_3d) < 0.8 * accel_error(raw, seq.gt_3d)
    assert mpjpe(smoothed, seq.gt_3d) < mpjpe(raw, seq.gt_3d) + 5e-4


def test_more_steps_and_samples_still_improve_and_are_reproducible(refiner):
    (seq,) = load_poses(ROOT / "examples" / "wave.npz")
    run = lambda: refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, steps=5, samples=4, seed=3)
    a, b = run(), run()
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    assert mpjpe(a.poses_3d, seq.gt_3d) < mpjpe(seq.poses_3d, seq.gt_3d)
    assert a.uncertainty.shape == (seq.num_frames, 17) and 0.0 < float(a.uncertainty[:, 1:].mean()) < 0.3  # a 90 % radius, metres


def test_readme_main_job_refine_then_evaluate(tmp_path):
    """The README's set-up command, run twice (``--overwrite``): refine the example, evaluate it."""
    out = tmp_path / "walk.refined.npz"
    for _ in range(2):
        refined = runner.invoke(app, ["refine", str(ROOT / "examples" / "walk.npz"), "-o", str(out), "--overwrite"])
        assert refined.exit_code == 0, refined.output
    table = runner.invoke(app, ["evaluate", str(out)])
    assert table.exit_code == 0 and "baseline poses_3d" in table.stdout and "-3.2%" in table.stdout, table.output
    (score,) = json.loads(runner.invoke(app, ["evaluate", str(out), "--json"]).stdout)["sequences"]
    assert score["key"] == "poses_3d_refined"
    # the numbers the README quotes for this command: MPJPE 29.31 -> 28.38 mm
    assert score["baseline"]["mpjpe"] == pytest.approx(29.31, abs=0.005)
    assert score["metrics"]["mpjpe"] == pytest.approx(28.38, abs=0.05)


# Golden numbers of the shipped weights (stop 15) on examples/walk.npz, default options
# (--bone-lengths input): MPJPE (m), sum of |refined| (m), joint 3 of frame 10 (m), mean raw spread (m).
# Without the fallback: the network's refinement; with it (the default, stop 19) the input's
# weight is 1.1 % (guard score -0.61), and the spread shrinks with the refinement's weight.
GOLDEN = [
    ({"fallback": False}, 0.028510720908797686, 842.0353797961579, [-0.01928136870265007, 0.7597185969352722, 0.03796856477856636], None),
    ({"fallback": False, "steps": 2}, 0.029246070068863112, 843.8549977567179, [-0.0171117652207613, 0.756994903087616, 0.03330929949879646], None),
    ({"fallback": False, "steps": 5, "samples": 4, "seed": 3}, 0.030329105177178992, 844.9089809276848,
     [-0.012451209127902985, 0.749951958656311, 0.034877076745033264], 0.004144686832138695),
    ({"fallback": False, "smooth": 0}, 0.028638179267503543, 842.1010039808225, [-0.016471123322844505, 0.761928915977478, 0.03982838988304138], None),
    ({}, 0.028377519969162355, 842.1015299061237, [-0.0196647010743618, 0.7598161101341248, 0.03817985579371452], None),
    ({"steps": 5, "samples": 4, "seed": 3}, 0.030066163887945356, 845.0153371640845,
     [-0.013167275115847588, 0.750300407409668, 0.03526247292757034], 0.0040722893677528),
]


@pytest.mark.parametrize(("options", "error", "total", "joint", "spread"), GOLDEN, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_refine_output_of_the_shipped_weights_is_unchanged(refiner, options, error, total, joint, spread):
    (seq,) = load_poses(ROOT / "examples" / "walk.npz")
    result = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, **options)
    assert mpjpe(result.poses_3d, seq.gt_3d) == pytest.approx(error, abs=1e-6)
    assert float(np.abs(result.poses_3d).astype(np.float64).sum()) == pytest.approx(total, rel=1e-6)
    np.testing.assert_allclose(result.poses_3d[10, 3], joint, atol=1e-5)
    if spread is None:
        assert result.uncertainty is None
    else:  # the golden number is the raw spread; the shipped calibration turns it into scale x (a x spread + b) (d3prefine.calibration)
        moved = np.linalg.norm((result.poses_3d - result.poses_3d[:, :1]) - (seq.poses_3d - seq.poses_3d[:, :1]), axis=-1)
        b = refiner.calibration.radius(np.zeros_like(moved), moved, result.guard.score)
        a = refiner.calibration.radius(np.ones_like(moved), moved, result.guard.score) - b
        assert float(((result.uncertainty - b) / a).mean()) == pytest.approx(spread, rel=1e-4)


def test_the_pool_set_is_shipped_by_name_and_gains_more_on_the_examples(refiner, tmp_path):
    """weights/pool (README, "Results"): four estimators on both Bandai builds; on the examples (the
    previous build's idealised detector) it gains 28 % where the default gains 3 %."""
    pool = Refiner.from_pretrained("pool", device="cpu")
    assert pool.weights_path == ROOT / "weights" / "pool" / "denoiser.safetensors" and not pool.noise_mismatch
    assert pool.guard.threshold == 1.0 and pool.calibration.widening is Widening.GUARD and not pool.calibration.fallback  # stop 16
    (seq,) = load_poses(ROOT / "examples" / "walk.npz")
    ours = pool.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size).poses_3d
    default = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size).poses_3d
    assert 1000 * mpjpe(ours, seq.gt_3d) == pytest.approx(21.02, abs=0.01)  # 21.03 without the fallback
    assert mpjpe(ours, seq.gt_3d) < 0.8 * mpjpe(default, seq.gt_3d)
    out = tmp_path / "walk.pool.npz"
    result = runner.invoke(app, ["refine", str(ROOT / "examples" / "walk.npz"), "--weights", "pool", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (refined,) = load_poses(out)
    assert refined.provenance["refine"]["weights"] == str(pool.weights_path)
    np.testing.assert_allclose(refined.poses_3d_refined, ours, atol=1e-6)
