"""Bone lengths: a sequence's medians, re-chaining, and refine --bone-lengths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from d3prefine.bones import BoneLengthMode, constrain_bones, load_skeleton, median_bone_lengths, rechain, skeleton_mismatch
from d3prefine.cli import app
from d3prefine.errors import InputError
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


def _skeleton_file(path, **fields):
    document = {"joint_layout": "chain3", "units": "mm", "bones": {"b": 450.0, "c": 380}} | fields
    path.write_text(json.dumps(document))
    return path


def test_load_skeleton_golden_units_and_one_line_errors(tmp_path):
    np.testing.assert_allclose(load_skeleton(_skeleton_file(tmp_path / "s.json"), CHAIN), [0.0, 0.45, 0.38])
    np.testing.assert_allclose(load_skeleton(_skeleton_file(tmp_path / "m.json", units="m", bones={"b": 0.5, "c": 1}), CHAIN), [0.0, 0.5, 1.0])
    bad = {
        "layout": (dict(joint_layout="h36m17"), "joint_layout 'h36m17', the weights refine 'chain3'"),
        "units": (dict(units="cm"), "units 'cm', expected one of ['m', 'mm']"),
        "missing": (dict(bones={"b": 450.0}), "missing ['c']"),
        "unknown": (dict(bones={"b": 450.0, "c": 380, "a": 1}), "unknown ['a']"),
        "zero": (dict(bones={"b": 0, "c": 380}), "bone 'b': 0 is not a length in (0, 1] m"),
        "metres as mm": (dict(units="m", bones={"b": 450.0, "c": 380}), "bone 'b': 450.0 is not a length in (0, 1] m (units 'm')"),
        "text": (dict(bones={"b": "450", "c": 380}), "bone 'b': '450' is not a length"),
        "no bones": (dict(bones=[450, 380]), "a skeleton file is an object with"),
    }
    for name, (fields, message) in bad.items():
        with pytest.raises(InputError, match=re.escape(message)):
            load_skeleton(_skeleton_file(tmp_path / f"{name}.json", **fields), CHAIN)
    (tmp_path / "nan.json").write_text('{"joint_layout": "chain3", "units": "m", "bones": {"b": NaN, "c": 0.3}}')
    with pytest.raises(InputError, match="bone 'b': nan is not a length"):
        load_skeleton(tmp_path / "nan.json", CHAIN)
    (tmp_path / "broken.json").write_text('{"joint_layout": ')
    with pytest.raises(InputError, match="not a readable skeleton JSON file"):
        load_skeleton(tmp_path / "broken.json", CHAIN)


def test_refine_skeleton_sets_the_subjects_bones_last(tmp_path, make_sequence):
    """--skeleton: every refined bone gets the file's length in the refinement's direction, the root
    trajectory kept (the default refinement re-chained); recorded in the provenance; refused with
    --samples (exit 2) and for a bad file (exit 1, one line, nothing written)."""
    source = tmp_path / "walk.npz"
    save_poses(source, [make_sequence(frames=40, noise_m=0.03)])
    lengths = {H36M_17.joint_names[c]: 400.0 + 10 * c for _, c in H36M_17.bones}  # millimetres
    skeleton = tmp_path / "subject.json"
    skeleton.write_text(json.dumps({"joint_layout": "h36m17", "units": "mm", "bones": lengths}))
    runner = CliRunner()
    for name, extra in (("plain", []), ("subject", ["--skeleton", str(skeleton)])):
        result = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / f"{name}.npz"), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
    plain, subject = (load_poses(tmp_path / f"{name}.npz")[0] for name in ("plain", "subject"))
    want = np.array([0.0] + [0.4 + 0.01 * c for c in range(1, 17)])
    np.testing.assert_allclose(subject.poses_3d_refined, rechain(plain.poses_3d_refined, want, H36M_17), atol=1e-6)
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    got = np.linalg.norm(subject.poses_3d_refined - subject.poses_3d_refined[:, parents], axis=-1)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=2e-6)
    assert subject.provenance["refine"]["skeleton"] == {"file": str(skeleton), "bone_lengths_m": {n: v / 1000 for n, v in lengths.items()}}
    halved = tmp_path / "halved.json"  # every bone half the input's: a warning names the worst, the output is written
    halved.write_text(json.dumps({"joint_layout": "h36m17", "units": "m", "bones": {
        H36M_17.joint_names[c]: float(v) / 2 for c, v in enumerate(median_bone_lengths(subject.poses_3d, H36M_17)) if c}}))
    result = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / "halved.npz"), "--device", "cpu", "--skeleton", str(halved)])
    assert result.exit_code == 0 and "bone is 0.50 x its median length in poses_3d" in result.stderr
    # without --skeleton no warning but the guard's (this made-up walk scores near its threshold)
    again = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / "again.npz"), "--device", "cpu"]).stderr
    assert all("inputs unlike the weights' training data" in line for line in again.splitlines() if "warning" in line)
    sampled = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / "x.npz"), "--skeleton", str(skeleton), "--steps", "2", "--samples", "2"])
    assert sampled.exit_code == 2 and "no --samples with it" in sampled.output
    lengths.pop("r_knee")
    skeleton.write_text(json.dumps({"joint_layout": "h36m17", "units": "mm", "bones": lengths}))
    broken = runner.invoke(app, ["refine", str(source), "-o", str(tmp_path / "x.npz"), "--device", "cpu", "--skeleton", str(skeleton)])
    assert broken.exit_code == 1 and "missing ['r_knee']" in broken.output and len(broken.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()


def test_the_readmes_skeleton_example_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```json\n(.*?)```", readme[readme.index("`--skeleton FILE`"):], re.S).group(1)
    path = tmp_path / "subject.json"
    path.write_text(block)
    lengths = load_skeleton(path, H36M_17)
    assert lengths[H36M_17.joint_names.index("r_knee")] == pytest.approx(0.45) and lengths[0] == 0.0


def test_skeleton_mismatch_names_the_bone_furthest_off_beyond_the_ratio():
    poses = np.array([[[0, 0, 0], [1, 0, 0], [1, 2, 0]]] * 3, dtype=float)  # bones 1 and 2 long
    assert skeleton_mismatch(poses, np.array([0.0, 1.4, 2.0]), CHAIN) is None  # 1.4 x: within 1.5
    assert skeleton_mismatch(poses, np.array([0.0, 1.4, 0.5]), CHAIN) == ("c", 0.25)  # 4 x shorter beats 1.4 x longer
    assert skeleton_mismatch(poses, np.array([0.0, 1.6, 2.0]), CHAIN) == ("b", pytest.approx(1.6))
