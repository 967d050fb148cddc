"""The out-of-distribution guard (library and ``refine --strict``) and the uncertainty calibration."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from d3prefine.bones import constrain_bones
from d3prefine.calibration import (
    CALIBRATION_METADATA_KEY,
    UncertaintyCalibration,
    Widening,
    conformal_scale,
    coverage,
    unscaled_radius,
    widening_factor,
)
from d3prefine.checkpoint import denoiser_metadata, save_denoiser, set_denoiser_metadata
from d3prefine.errors import ExitCode, WeightsError
from d3prefine.guard import GUARD_METADATA_KEY, GuardReference, GuardScore, familiar_mean, fit_reference, guard_score, score_weights
from d3prefine.guard_fit import GUARD_QUANTILE, MIN_THRESHOLD, fit_guard, guard_scores, threshold_of
from d3prefine.io import load_poses, save_poses
from d3prefine.model import DenoiserConfig, PoseDenoiser
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.refine import Refiner, smoothed
from tests.conftest import build_sequence
from tests.test_cli_method import invoke

J = 17


def _unit_reference(threshold: float = 1.0) -> GuardReference:
    """Conditions N(0, I) on every joint but the root; reference correction 10 mm."""
    cov = np.tile(np.eye(5), (J, 1, 1))
    cov[0] = 0.0
    return GuardReference(np.zeros((J, 5)), cov, 0.01, threshold)


def test_score_of_hand_built_inputs():
    p = np.zeros((4, J, 2))
    y = np.zeros((4, J, 3))
    y[:, 1:] = 2.0  # Mahalanobis^2 = 3 * 2^2 = 12 per joint, / 5 dims
    y[0, 1:] = 50.0  # one frame far off: the median over frames ignores it
    refined = y.copy()
    refined[:, 1:, 0] += 0.03  # 30 mm correction against a 10 mm reference
    refined[0] = y[0] + [0.03, 0, 0]
    score = guard_score(p, y, refined, _unit_reference(threshold=1.5))
    assert score.condition == pytest.approx(12 / 5 / (1 + 0.1 + 1e-6), rel=1e-5)  # identity covariance + 10 % ridge
    assert score.correction == pytest.approx(3.0)
    assert score.score == pytest.approx(math.log2(3.0))
    assert score.flagged  # log2(3) = 1.58 > 1.5
    assert not guard_score(p, y, refined, _unit_reference(threshold=2.0)).flagged
    quiet = guard_score(p, np.zeros((4, J, 3)), np.zeros((4, J, 3)) + [0.01, 0, 0], _unit_reference())
    assert quiet.condition == pytest.approx(0.0) and quiet.correction == pytest.approx(1.0) and quiet.score == pytest.approx(0.0)


def test_score_weights_golden_values():
    np.testing.assert_allclose(score_weights([0.0, 1.0], 4.0), [16 / 17, 1 / 17])
    np.testing.assert_allclose(score_weights([0.3, 0.3, 0.3]), [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(score_weights([-2.0, -1.0], 1.0), [2 / 3, 1 / 3])  # only differences count
    np.testing.assert_allclose(score_weights([50.0, -50.0]), [0.0, 1.0], atol=1e-12)  # no overflow far apart
    for bad in ([], [0.1, float("nan")], [[0.1, 0.2]]):
        with pytest.raises(ValueError, match="one finite guard score per candidate"):
            score_weights(bad)


def test_familiar_mean_weighs_the_input_as_a_candidate_at_the_threshold():
    a, b, given = np.full((2, 3), 1.0), np.full((2, 3), 3.0), np.zeros((2, 3))
    mean, weights = familiar_mean([a], [-1.0], given)  # a typical refinement (score 0, threshold 1) outweighs the input 16:1
    np.testing.assert_allclose(weights, [16 / 17, 1 / 17])
    np.testing.assert_allclose(mean, 16 / 17)
    mean, weights = familiar_mean([a, b], [0.0, 0.0], given)  # at the threshold every member counts the same
    np.testing.assert_allclose(mean, 4 / 3) and np.testing.assert_allclose(weights, [1 / 3] * 3)
    mean, weights = familiar_mean([a, b], [0.25, 0.5], None, sharpness=4.0)  # no fallback: the sets alone
    np.testing.assert_allclose(weights, [2 / 3, 1 / 3]) and np.testing.assert_allclose(mean, 5 / 3)
    mean, _ = familiar_mean([a], [3.0], given)  # far above the threshold the input takes over
    np.testing.assert_allclose(mean, 2.0**-12 / (1 + 2.0**-12))


def test_fit_reference_recovers_the_moments_and_flags_other_bodies():
    rng = np.random.default_rng(0)
    samples = []
    for s in range(3):
        seq = build_sequence(200, seed=s, noise_m=0.0)
        p, y, _ = error_triple(seq.poses_2d, seq.poses_3d, seq.gt_3d, seq.image_size, 0)
        samples.append((p, y, y + rng.normal(scale=0.01, size=y.shape) * (np.arange(J) > 0)[:, None]))
    reference = fit_reference(samples, root=0, threshold=1.0)
    c = np.concatenate([np.concatenate([p, y], -1) for p, y, _ in samples])
    np.testing.assert_allclose(reference.mean, c.mean(0), atol=1e-6)
    np.testing.assert_allclose(reference.cov[5], np.cov(c[:, 5].T), rtol=1e-6, atol=1e-9)
    assert reference.correction_m == pytest.approx(0.01 * math.sqrt(2) * math.gamma(2) / math.gamma(1.5), rel=0.05)  # mean chi_3
    assert not reference.moving[0] and reference.moving[1:].all()
    p, y, refined = samples[0]
    assert guard_score(p, y, refined, reference).score < 1.0  # a training sequence
    wide = y * 1.6  # a body 60 % larger in every bone, seen from the same camera
    assert guard_score(p, wide, wide, reference).condition > 10 * guard_score(p, y, refined, reference).condition
    assert guard_score(p, wide, wide, reference).flagged


def test_reference_json_round_trip_and_invalid_input():
    reference = _unit_reference(threshold=2.5)
    again = GuardReference.from_json(reference.to_json())
    np.testing.assert_array_equal(again.cov, reference.cov)
    assert (again.correction_m, again.threshold) == (0.01, 2.5)
    for text in ("{}", "[1]", "not json", json.dumps({"mean": [[0] * 4], "cov": [], "correction_m": 1, "threshold": 1})):
        with pytest.raises(ValueError):
            GuardReference.from_json(text)


def test_conformal_scale_and_coverage():
    ratios = np.arange(1.0, 10.0)  # n = 9: the ceil(10 * 0.9) = 9th smallest
    assert conformal_scale(ratios, 0.9) == 9.0
    assert conformal_scale(np.arange(1.0, 101.0), 0.9) == 91.0  # ceil(101 * 0.9) = 91
    with pytest.raises(ValueError):
        conformal_scale(np.arange(1.0, 5.0), 0.9)  # 4 ratios cannot give a 90 % quantile
    assert coverage(np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 2.5)) == 0.5
    with pytest.raises(ValueError):
        UncertaintyCalibration(scale=0.0, level=0.9, steps=5, samples=8, eta=0.3)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny denoiser with a non-zero head, noise statistics, and copies with a guard and a calibration."""
    folder = tmp_path_factory.mktemp("guard")
    seqs = [build_sequence(60, seed=s) for s in range(3)]
    noise = NoiseModel.fit([error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in seqs], layout="h36m17")
    noise.save(folder / "noise.safetensors")
    torch.manual_seed(0)
    model = PoseDenoiser(DenoiserConfig(window=9, dim=16, depth=1, heads=2))
    torch.nn.init.normal_(model.head.weight, std=0.5)
    save_denoiser(folder / "plain.safetensors", model, {})
    save_poses(folder / "in.npz", [build_sequence(40, seed=9, name="a"), build_sequence(30, seed=8, name="b")])
    refiner = Refiner.from_pretrained(folder / "plain.safetensors", folder / "noise.safetensors", device="cpu")
    samples = []
    for seq in load_poses(folder / "in.npz"):
        p, y, _ = error_triple(seq.poses_2d, seq.poses_3d, seq.gt_3d, seq.image_size, 0)
        refined = refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size).poses_3d
        samples.append((p, y, refined - refined[:, :1]))
    reference = fit_reference(samples, root=0, threshold=1.0)
    calibration = UncertaintyCalibration(scale=4.0, level=0.9, steps=2, samples=3, eta=0.3, fallback=True)
    for name, threshold in (("low", -5.0), ("high", 50.0)):
        set_denoiser_metadata(
            folder / "plain.safetensors", folder / f"{name}.safetensors",
            {GUARD_METADATA_KEY: reference.with_threshold(threshold).to_json(), CALIBRATION_METADATA_KEY: calibration.to_json()},
        )
    return folder


def test_metadata_is_added_without_changing_the_tensors(weights):
    plain = Refiner.from_pretrained(weights / "plain.safetensors", weights / "noise.safetensors", device="cpu")
    guarded = Refiner.from_pretrained(weights / "high.safetensors", weights / "noise.safetensors", device="cpu")
    assert plain.guard is None and plain.calibration is None
    assert guarded.guard.threshold == 50.0 and guarded.calibration.scale == 4.0
    for a, b in zip(plain.model.state_dict().values(), guarded.model.state_dict().values()):
        assert torch.equal(a, b)
    assert denoiser_metadata(weights / "high.safetensors")["config"] == denoiser_metadata(weights / "plain.safetensors")["config"]
    with pytest.raises(ValueError):
        set_denoiser_metadata(weights / "plain.safetensors", weights / "x.safetensors", {"config": "{}"})
    seq = build_sequence(30, seed=3)
    args = {"image_size": seq.image_size, "steps": 2, "samples": 3, "seed": 1}
    raw, scaled = plain.refine(seq.poses_2d, seq.poses_3d, **args), guarded.refine(seq.poses_2d, seq.poses_3d, **args)
    np.testing.assert_allclose(scaled.uncertainty, 4.0 * raw.uncertainty, rtol=1e-6)
    np.testing.assert_array_equal(scaled.poses_3d, raw.poses_3d)
    assert raw.guard is None and scaled.guard is not None and not scaled.guard.flagged


def test_cli_warns_records_and_strict_refuses(weights, tmp_path):
    common = [weights / "in.npz", "--noise", weights / "noise.safetensors", "--device", "cpu"]
    quiet = invoke("refine", *common, "--weights", weights / "high.safetensors", "-o", tmp_path / "quiet.npz", "--strict")
    assert "warning" not in quiet.stderr
    loud = invoke("refine", *common, "--weights", weights / "low.safetensors", "-o", tmp_path / "loud.npz")
    warning = [line for line in loud.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "in 2 of 2 sequences" in warning[0] and "> -5.00" in warning[0]
    assert "the output leans on the input (up to 100% of it, --fallback)" in warning[0]
    for seq in load_poses(tmp_path / "loud.npz"):
        guard = seq.provenance["refine"]["guard"]
        assert guard["flagged"] and guard["threshold"] == -5.0 and guard["score"] > -5.0
        assert seq.provenance["refine"]["fallback"] and seq.provenance["refine"]["input_weight"] > 0.999
    plain = invoke("refine", *common, "--weights", weights / "low.safetensors", "-o", tmp_path / "plain.npz", "--no-fallback", "--json")
    assert "refinement may make these poses worse (--no-fallback)" in plain.stderr
    assert json.loads(plain.stdout)["files"][0]["guard"]["max_input_weight"] is None
    assert all("input_weight" not in seq.provenance["refine"] for seq in load_poses(tmp_path / "plain.npz"))
    refused = invoke("refine", *common, "--weights", weights / "low.safetensors", "-o", tmp_path / "no.npz", "--strict",
                     code=ExitCode.OUT_OF_DISTRIBUTION)
    assert "--strict: not written" in refused.stderr and not (tmp_path / "no.npz").exists()
    missing = invoke("refine", tmp_path / "absent.npz", weights / "in.npz", "--continue-on-error", "--strict", "--out-dir", tmp_path / "o",
                     "--weights", weights / "low.safetensors", "--noise", weights / "noise.safetensors", code=ExitCode.FAILED)
    assert "absent.npz" in missing.stderr  # a bad input outranks a refusal
    invoke("refine", *common, "--weights", weights / "plain.safetensors", "-o", tmp_path / "x.npz", "--strict", code=ExitCode.USAGE)


def test_fallback_leans_on_the_input_where_the_guard_flags(weights):
    """Threshold -5: every score lies far above it, so the output is the input, filtered as the
    refinement is and with its bones set again; threshold 50: the refinement, untouched."""
    seq = build_sequence(30, seed=3)
    rel = lambda a: a - a[:, :1]
    for name in ("low", "high"):
        refiner = Refiner.from_pretrained(weights / f"{name}.safetensors", weights / "noise.safetensors", device="cpu")
        leaning, plain = (refiner.refine(seq.poses_2d, seq.poses_3d, image_size=seq.image_size, fallback=f) for f in (True, False))
        assert leaning.guard == plain.guard and plain.input_weight is None
        assert leaning.input_weight == pytest.approx(score_weights([leaning.guard.excess, 0.0])[1], abs=1e-12)
        np.testing.assert_allclose(leaning.poses_3d[:, 0], seq.poses_3d[:, 0], atol=1e-6)  # the root trajectory is the input's
        if name == "low":
            assert leaning.input_weight > 1 - 1e-6
            given = rel(seq.poses_3d).astype(np.float64)
            expected = constrain_bones(smoothed(given, 9), given, "input", refiner.layout)
            np.testing.assert_allclose(rel(leaning.poses_3d), expected, atol=1e-5)
            assert np.abs(rel(plain.poses_3d) - expected).max() > 0.01  # without the fallback, the refinement
        else:
            assert leaning.input_weight < 1e-50
            np.testing.assert_allclose(leaning.poses_3d, plain.poses_3d, atol=1e-6)


def test_cli_records_what_the_uncertainty_is(weights, tmp_path):
    same = invoke("refine", weights / "in.npz", "--weights", weights / "high.safetensors", "--noise", weights / "noise.safetensors",
                  "-o", tmp_path / "s.npz", "--steps", "2", "--samples", "3")
    assert "note:" not in same.stderr
    meaning = load_poses(tmp_path / "s.npz")[0].provenance["refine"]["uncertainty"]
    assert meaning["scale"] == 4.0 and "probability 0.9" in meaning["kind"] and meaning["widening"] == "none"
    other = invoke("refine", weights / "in.npz", "--weights", weights / "high.safetensors", "--noise", weights / "noise.safetensors",
                   "-o", tmp_path / "t.npz", "--steps", "3", "--samples", "3")
    assert "fitted with --steps 2 --samples 3 --eta 0.3 --fallback without --flip" in other.stderr
    plain = invoke("refine", weights / "in.npz", "--weights", weights / "high.safetensors", "--noise", weights / "noise.safetensors",
                   "-o", tmp_path / "u.npz", "--steps", "2", "--samples", "3", "--no-fallback")
    assert "note: the uncertainty calibration was fitted with" in plain.stderr  # fitted with the fallback, run without it
    assert load_poses(tmp_path / "u.npz")[0].provenance["refine"]["uncertainty"]["calibrated_with"]["fallback"] is True


def test_widening_by_the_guard_score():
    assert widening_factor(Widening.NONE, 3.0) == 1.0 and widening_factor(Widening.GUARD, None) == 1.0
    assert widening_factor(Widening.GUARD, -2.0) == 1.0 and widening_factor(Widening.GUARD, 0.5) == pytest.approx(2 ** 0.5)
    assert widening_factor(Widening.GUARD, 2.0) == 4.0
    calibration = UncertaintyCalibration(scale=3.0, level=0.9, steps=2, samples=3, eta=0.3, widening=Widening.GUARD)
    assert UncertaintyCalibration.from_json(calibration.to_json()) == calibration
    older = '{"scale": 3.0, "level": 0.9, "steps": 2, "samples": 3, "eta": 0.3}'  # written before the rule existed
    assert UncertaintyCalibration.from_json(older).widening is Widening.NONE
    with pytest.raises(ValueError, match="invalid uncertainty calibration"):
        UncertaintyCalibration.from_json(older[:-1] + ', "widening": "wider"}')
    assert UncertaintyCalibration.from_json(older).correction_weight == 0.0 and UncertaintyCalibration.from_json(older).fallback is False
    with pytest.raises(ValueError, match="fallback must be true or false"):
        UncertaintyCalibration.from_json(older[:-1] + ', "fallback": "yes"}')


def test_widening_by_the_correction():
    spread, correction = np.array([[0.01, 0.02]]), np.array([[0.1, 0.0]])
    assert widening_factor(Widening.CORRECTION, 2.0) == 1.0
    np.testing.assert_allclose(unscaled_radius(Widening.CORRECTION, spread, correction, 2.0, 0.5), [[0.06, 0.02]])
    np.testing.assert_allclose(unscaled_radius(Widening.GUARD, spread, correction, 1.0, 0.5), [[0.02, 0.04]])  # the weight is ignored
    np.testing.assert_allclose(unscaled_radius(Widening.NONE, spread, correction, 1.0), spread)
    np.testing.assert_allclose(widening_factor(Widening.GUARD, np.array([-1.0, 0.0, 3.0])), [1.0, 1.0, 8.0])  # one score per element
    calibration = UncertaintyCalibration(scale=3.0, level=0.9, steps=2, samples=3, eta=0.3, widening=Widening.CORRECTION, correction_weight=0.5)
    assert UncertaintyCalibration.from_json(calibration.to_json()) == calibration
    np.testing.assert_allclose(calibration.radius(spread, correction, None), [[0.18, 0.06]])
    with pytest.raises(ValueError, match="correction_weight >= 0"):
        dataclasses.replace(calibration, correction_weight=-0.1)


def test_widening_by_the_correction_and_the_guard():
    """(spread + 0.5 x correction) = [0.06, 0.02], doubled per unit of guard score above 0."""
    spread, correction = np.array([[0.01, 0.02]]), np.array([[0.1, 0.0]])
    np.testing.assert_allclose(unscaled_radius(Widening.CORRECTION_GUARD, spread, correction, 1.0, 0.5), [[0.12, 0.04]])
    np.testing.assert_allclose(unscaled_radius(Widening.CORRECTION_GUARD, spread, correction, -1.0, 0.5), [[0.06, 0.02]])
    np.testing.assert_allclose(unscaled_radius(Widening.CORRECTION_GUARD, spread, correction, None, 0.5), [[0.06, 0.02]])
    assert [w.uses_guard for w in Widening] == [False, True, False, True, True]
    assert [w.uses_correction for w in Widening] == [False, False, True, True, True]
    calibration = UncertaintyCalibration(scale=3.0, level=0.9, steps=2, samples=3, eta=0.3, widening=Widening.CORRECTION_GUARD,
                                         correction_weight=0.5)
    assert UncertaintyCalibration.from_json(calibration.to_json()) == calibration
    np.testing.assert_allclose(calibration.radius(spread, correction, GuardScore(2.0, 0.5, 4.0, 1.0)), [[0.72, 0.24]])


def test_widening_by_the_correction_and_the_square_root_of_the_condition():
    """(spread + 0.5 x correction) = [0.06, 0.02] times sqrt(condition): twice as wide at condition 4,
    half as wide at 0.25 (inputs more typical than the calibration data's), whatever the score."""
    spread, correction = np.array([[0.01, 0.02]]), np.array([[0.1, 0.0]])
    rule = Widening.CORRECTION_CONDITION
    np.testing.assert_allclose(unscaled_radius(rule, spread, correction, 3.0, 0.5, 4.0), [[0.12, 0.04]])
    np.testing.assert_allclose(unscaled_radius(rule, spread, correction, 3.0, 0.5, 0.25), [[0.03, 0.01]])
    np.testing.assert_allclose(unscaled_radius(rule, spread, correction, None, 0.5, None), [[0.06, 0.02]])  # no guard
    np.testing.assert_allclose(widening_factor(rule, np.zeros(3), np.array([1.0, 4.0, 9.0])), [1.0, 2.0, 3.0])  # one ratio per element
    calibration = UncertaintyCalibration(scale=3.0, level=0.9, steps=2, samples=3, eta=0.3, widening=rule, correction_weight=0.5)
    assert UncertaintyCalibration.from_json(calibration.to_json()) == calibration
    np.testing.assert_allclose(calibration.radius(spread, correction, GuardScore(-1.0, 0.25, 0.5, 1.0)), [[0.09, 0.03]])
    np.testing.assert_allclose(calibration.radius(spread, correction, None), [[0.18, 0.06]])


def _refine_plain_and_widened(weights, **changes):
    """The tiny refiner's calibration, and that calibration with ``changes``, on one sequence
    (2 steps, 3 samples): ``(plain refiner, sequence, plain result, widened result)``."""
    plain = Refiner.from_pretrained(weights / "high.safetensors", weights / "noise.safetensors", device="cpu")
    widened = Refiner.from_pretrained(weights / "high.safetensors", weights / "noise.safetensors", device="cpu")
    widened.calibration = dataclasses.replace(plain.calibration, **changes)
    seq = build_sequence(30, seed=3)
    args = {"image_size": seq.image_size, "steps": 2, "samples": 3, "seed": 1}
    return plain, seq, plain.refine(seq.poses_2d, seq.poses_3d, **args), widened.refine(seq.poses_2d, seq.poses_3d, **args)


def test_correction_widened_uncertainty_adds_the_correction_length(weights):
    plain, seq, a, b = _refine_plain_and_widened(weights, widening=Widening.CORRECTION, correction_weight=0.5)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
    moved = np.linalg.norm((a.poses_3d - a.poses_3d[:, :1]) - (seq.poses_3d - seq.poses_3d[:, :1]), axis=-1)  # root-relative, metres
    assert moved[:, 1:].min() > 0 and np.all(moved[:, 0] == 0)
    np.testing.assert_allclose(b.uncertainty, a.uncertainty + plain.calibration.scale * 0.5 * moved, rtol=1e-5, atol=1e-7)


def test_guard_widened_uncertainty_grows_with_the_guard_score(weights):
    _, _, a, b = _refine_plain_and_widened(weights, widening=Widening.GUARD)
    assert a.guard == b.guard and a.guard.score > 0  # this tiny model's inputs lie far from its reference
    np.testing.assert_allclose(b.uncertainty, 2 ** a.guard.score * a.uncertainty, rtol=1e-6)
    np.testing.assert_array_equal(a.poses_3d, b.poses_3d)


def test_condition_widened_uncertainty_scales_with_the_square_root_of_the_condition(weights):
    plain, seq, a, b = _refine_plain_and_widened(weights, widening=Widening.CORRECTION_CONDITION, correction_weight=0.5)
    assert a.guard == b.guard and a.guard.condition != 1.0
    moved = np.linalg.norm((a.poses_3d - a.poses_3d[:, :1]) - (seq.poses_3d - seq.poses_3d[:, :1]), axis=-1)  # root-relative, metres
    expected = np.sqrt(a.guard.condition) * (a.uncertainty + plain.calibration.scale * 0.5 * moved)
    np.testing.assert_allclose(b.uncertainty, expected, rtol=1e-5, atol=1e-7)


def test_guard_widening_without_a_guard_reference_is_refused(weights):
    calibration = UncertaintyCalibration(scale=3.0, level=0.9, steps=2, samples=3, eta=0.3, widening=Widening.GUARD)
    set_denoiser_metadata(weights / "plain.safetensors", weights / "widened.safetensors", {CALIBRATION_METADATA_KEY: calibration.to_json()})
    with pytest.raises(WeightsError, match="widens by the guard's verdict, but the file holds no guard reference"):
        Refiner.from_pretrained(weights / "widened.safetensors", weights / "noise.safetensors", device="cpu")


def test_threshold_is_the_quantile_rounded_up_to_a_tenth():
    assert threshold_of(np.array([0.1, 0.25, 0.31]), 1.0) == 0.4
    assert threshold_of(np.array([-0.5, 0.3]), 1.0) == 0.3  # not 0.4: 10 * 0.3 is 3.0000000000000004
    assert threshold_of(np.array([0.0, 1.0]), 0.5) == 0.5
    assert threshold_of(np.array([-0.06]), 0.99) == 0.0


def test_guard_scores_need_a_reference(weights):
    plain = Refiner.from_pretrained(weights / "plain.safetensors", weights / "noise.safetensors", device="cpu")
    with pytest.raises(ValueError, match="holds no guard reference"):
        guard_scores(plain, load_poses(weights / "in.npz"))


def test_fit_guard_keeps_the_validation_quantile_above_the_floor(weights):
    plain = Refiner.from_pretrained(weights / "plain.safetensors", weights / "noise.safetensors", device="cpu")
    train = load_poses(weights / "in.npz")
    reference = fit_guard(plain, train, train)
    assert plain.guard is reference and reference.threshold == MIN_THRESHOLD  # its own training data scores about 0
    unusual = [dataclasses.replace(seq, poses_3d=3.0 * seq.poses_3d) for seq in train]  # 3D three times too large
    reference = fit_guard(plain, train, unusual)
    scores = guard_scores(plain, unusual)
    assert scores.min() > MIN_THRESHOLD and reference.threshold == threshold_of(scores, GUARD_QUANTILE) > MIN_THRESHOLD


def test_pooled_reference_is_the_mixture_of_the_two_gaussians():
    a = GuardReference(np.zeros((2, 5)), np.stack([np.zeros((5, 5)), np.eye(5)]), 0.01, 1.0)
    mean = np.zeros((2, 5))
    mean[1, 0] = 2.0
    b = GuardReference(mean, np.stack([np.zeros((5, 5)), 3.0 * np.eye(5)]), 0.02, 1.5)
    both = a.pooled(b, 0.5)
    np.testing.assert_allclose(both.mean, [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    # per axis the mixture's variance: the mean of the variances (1, 3) plus the spread of the means (+-1 along x)
    np.testing.assert_allclose(both.cov[1], np.diag([3.0, 2.0, 2.0, 2.0, 2.0]), atol=1e-12)
    assert not both.cov[0].any() and list(both.moving) == [False, True]  # the root stays still
    assert both.correction_m == 0.02 and both.threshold == 0.0
    np.testing.assert_allclose(a.pooled(b, 0.0).cov, a.cov)
    with pytest.raises(ValueError, match="share must be in"):
        a.pooled(b, 1.5)
