"""Bone lengths: a sequence's medians, re-chaining, and refine --bone-lengths."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.bones import BoneLengthMode, constrain_bones, median_bone_lengths, rechain
from d3prefine.cli import app
from d3prefine.io import load_poses, save_poses
from d3prefine.skeleton import H36M_17, JointLayout
from tests.conftest import synthetic_motion

# root 0 at the origin; 1 one unit along x from it; 2 two units along y from 1
CHAIN = JointLayout(name="chain3", joint_names=("a", "b", "c"), parents=(-1, 0, 1), left_right=())


def test_median_bone_lengths_golden():
    poses = np.array([
        [[0, 0, 0], [1, 0, 0], [1, 2, 0]],
        [[0, 0, 0], [3, 0, 0], [3, 0, 4]],
        [[0, 0, 0], [0, 2, 0], [np.nan, np.nan, np.nan]],
    ], dtype=float)
    # bone 0-1: lengths 1, 3, 2 -> median 2; bone 1-2: 2, 4 (NaN frame ignored) -> 3
    np.testing.assert_allclose(median_bone_lengths(poses, CHAIN), [0.0, 2.0, 3.0])


def test_rechain_sets_each_length_keeps_directions_root_and_zero_bones():
    poses = np.array([[[1, 1, 1], [3, 1, 1], [3, 1, 1]]], dtype=float)  # bone 1-2 has zero length
    out = rechain(poses, np.array([0.0, 0.5, 7.0]), CHAIN)
    np.testing.assert_allclose(out, [[[1, 1, 1], [1.5, 1, 1], [1.5, 1, 1]]])


def test_constrain_bones_modes_on_a_moving_body():
    rng = np.random.default_rng(0)
    inputs = synthetic_motion(30, rng)
    refined = 0.9 * inputs + rng.normal(0, 0.01, inputs.shape)  # shorter bones, each length wobbling per frame
    assert constrain_bones(refined, inputs, "free", H36M_17) is refined
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    for mode, source in ((BoneLengthMode.CONSTANT, refined), (BoneLengthMode.INPUT, inputs)):
        out = constrain_bones(refined, inputs, mode, H36M_17)
        lengths = np.linalg.norm(out - out[:, parents], axis=-1)
        np.testing.assert_allclose(lengths, np.broadcast_to(median_bone_lengths(source, H36M_17), lengths.shape), atol=1e-9)
        np.testing.assert_allclose(out[:, 0], refined[:, 0])
    with pytest.raises(ValueError):
        constrain_bones(refined, inputs, "rigid", H36M_17)


def test_refine_bone_lengths_input_keeps_the_estimators_skeleton(tmp_path, make_sequence):
    source = tmp_path / "walk.npz"
    save_poses(source, [make_sequence(frames=40, noise_m=0.03)])
    runner = CliRunner()
    outputs = {}
    for mode in ("free", "input", None):  # None: the default, input
        out = tmp_path / f"{mode}.npz"
        result = runner.invoke(app, ["refine", str(source), "-o", str(out), "--device", "cpu", *(["--bone-lengths", mode] if mode else [])])
        assert result.exit_code == 0, result.output
        outputs[mode] = load_poses(out)[0]
    seq = outputs["input"]
    assert seq.provenance["refine"]["bone_lengths"] == "input"
    want = median_bone_lengths(seq.poses_3d, H36M_17)
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    got = np.linalg.norm(seq.poses_3d_refined - seq.poses_3d_refined[:, parents], axis=-1)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=2e-6)
    free = outputs["free"].poses_3d_refined
    free_lengths = np.linalg.norm(free - free[:, parents], axis=-1)
    assert np.abs(free_lengths - want).max() > 1e-3  # the network's own lengths differ: the option did something
    assert outputs[None].provenance["refine"]["bone_lengths"] == "input"
    np.testing.assert_array_equal(outputs[None].poses_3d_refined, seq.poses_3d_refined)
    bad = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / "x.npz"), "--bone-lengths", "rigid"])
    assert bad.exit_code == 2
