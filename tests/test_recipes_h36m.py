"""Human3.6M recipe on tiny hand-built files in the real key layout (no ../shared needed)."""

import json

import numpy as np
import pytest

from d3prefine.errors import InputError
from d3prefine.io import load_poses, save_poses
from d3prefine.skeleton import H36M_17
from recipes.h36m import action_group, load_cameras, read_dataset, read_subject, to_sequence
from recipes.h36m_build import main as build_main

SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
R_TURN = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # a quarter turn about z
CAMERAS = {
    "cam_a": {"R": np.eye(3).tolist(), "T": [0.0, 0.0, -4.0], "f": [1000.0, 1000.0], "c": [500.0, 500.0], "k": [0.0, 0.0, 0.0], "p": [0.0, 0.0], "width": 1000, "height": 1002},
    "cam_b": {"R": R_TURN, "T": [1.0, 2.0, -5.0], "f": [900.0, 900.0], "c": [320.0, 240.0], "k": [0.0, 0.0, 0.0], "p": [0.0, 0.0], "width": 640, "height": 480},
}


def world_poses(frames: int, seed: int) -> np.ndarray:
    """A skeleton of 0.25 m bones (fixed directions) drifting slowly, ``(T, 17, 3)`` metres."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(17, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    pose = np.zeros((17, 3))
    for parent, child in H36M_17.bones:
        pose[child] = pose[parent] + 0.25 * directions[child]
    drift = np.linspace(0, 0.1, frames)[:, None, None] * np.array([1.0, 0.0, 0.0])
    return (pose[None] + drift + rng.normal(scale=0.01, size=(frames, 17, 3))).astype(np.float32)


def write_subject(folder, subject, actions=("Walking", "Walking 1"), frames=40, seed=0, **override):
    arrays = {}
    for i, action in enumerate(actions):
        arrays[f"{action}/world_3d"] = world_poses(frames, seed + i)
        for cam in CAMERAS:
            arrays[f"{action}/sh_2d/{cam}"] = (np.arange(16 * 2, dtype=np.float32).reshape(16, 2) + np.arange(frames, dtype=np.float32)[:, None, None])
    arrays.update(override)
    np.savez(folder / f"{subject}.npz", **arrays)


@pytest.fixture
def dataset(tmp_path):
    (tmp_path / "cameras.json").write_text(json.dumps({s: CAMERAS for s in SUBJECTS}))
    for n, subject in enumerate(SUBJECTS):
        write_subject(tmp_path, subject, seed=10 * n)
    return tmp_path


def test_views_hold_camera_frame_truth_and_mapped_detections(dataset):
    views = read_subject(dataset / "S1.npz", "S1", load_cameras(dataset / "cameras.json")["S1"])
    assert [v.name for v in views] == ["S1_Walking_cam_a", "S1_Walking_cam_b", "S1_Walking_1_cam_a", "S1_Walking_1_cam_b"]
    world = world_poses(40, 0)
    np.testing.assert_allclose(views[0].gt_3d, world + [0.0, 0.0, 4.0], atol=1e-6)  # (X - T) @ I
    x, y, z = (world[3, 5] - [1.0, 2.0, -5.0])  # (X - T) @ R_TURN = (-y', x', z')
    np.testing.assert_allclose(views[1].gt_3d[3, 5], [-y, x, z], atol=1e-6)
    assert views[0].image_size == (1000, 1002) and views[1].image_size == (640, 480)
    sh = np.arange(32, dtype=np.float32).reshape(16, 2) + 7  # frame 7
    np.testing.assert_allclose(views[0].poses_2d[7, 3], sh[0])  # r_ankle
    np.testing.assert_allclose(views[0].poses_2d[7, 13], sh[15])  # l_wrist
    np.testing.assert_allclose(views[0].poses_2d[7, 9], 0.7 * sh[8] + 0.3 * sh[9], rtol=1e-6)  # neck_nose synthesised
    assert views[0].poses_2d.dtype == np.float32 and views[0].gt_3d.shape == (40, 17, 3)


def test_sequence_round_trips_with_fps_image_size_and_provenance(dataset, tmp_path):
    view = read_dataset(dataset, ("S8",))[3]
    seq = to_sequence(view, view.gt_3d - view.gt_3d[:, :1], {"estimator": "TemporalLifter", "fold": "S8"})
    save_poses(tmp_path / "out.h5", [seq])
    (back,) = load_poses(tmp_path / "out.h5")
    assert back.name == "S8_Walking_1_cam_b" and back.fps == 50.0 and back.image_size == (640, 480)
    prov = back.provenance
    assert (prov["subject"], prov["action"], prov["action_group"], prov["camera"], prov["estimator"]) == ("S8", "Walking 1", "Walking", "cam_b", "TemporalLifter")
    assert prov["poses_2d"]["synthesised"]["neck_nose"]["from"] == {"thorax": 0.7, "head": 0.3}
    np.testing.assert_allclose(back.gt_3d, view.gt_3d)


def test_action_group_drops_the_take_number():
    assert [action_group(a) for a in ("Eating 2", "Eating", "Walk Dog 1", "WalkDog", "Photo 1")] == ["Eating", "Eating", "Walk Dog", "WalkDog", "Photo"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"Walking/world_3d": np.zeros((40, 16, 3), np.float32)}, r"key 'Walking/world_3d': expected float array of shape \(T, 17, 3\), got float32 \(40, 16, 3\)"),
        ({"Walking/sh_2d/cam_a": np.zeros((39, 16, 2), np.float32)}, "key 'Walking/sh_2d/cam_a': 39 frames, but world_3d has 40"),
        ({"Walking/sh_2d/cam_z": np.zeros((40, 16, 2), np.float32)}, "detections of camera 'cam_z', which cameras.json lacks for S1"),
        ({"Walking/sh_2d/cam_a": np.full((40, 16, 2), np.nan, np.float32)}, "holds NaN or inf"),
        ({"Run/sh_2d/cam_a": np.zeros((40, 16, 2), np.float32)}, "action 'Run': missing key 'Run/world_3d'"),
        ({"Run/world_3d": world_poses(40, 1)}, "action 'Run': no 'Run/sh_2d/<camera>' detections"),
        ({"Walking/world_3d": np.zeros((40, 17, 3), np.int32)}, "expected float array"),
    ],
)
def test_bad_subject_files_are_refused_in_one_line(dataset, override, message):
    write_subject(dataset, "S1", **override)
    with pytest.raises(InputError, match=message) as info:
        read_dataset(dataset, ("S1",))
    assert "\n" not in str(info.value)


def test_bad_files_and_cameras_are_refused(dataset):
    np.savez(dataset / "S5.npz", **{"Walking/world_3d": np.array([object()], dtype=object)})
    with pytest.raises(InputError, match="S5.npz"):
        read_dataset(dataset, ("S5",))
    (dataset / "S6.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"S6.npz: not a readable .npz file"):
        read_dataset(dataset, ("S6",))
    with pytest.raises(InputError, match="no cameras for subject 'S9'"):
        read_dataset(dataset, ("S9",))
    broken = {"S1": {"cam_a": {k: v for k, v in CAMERAS["cam_a"].items() if k != "f"}}}
    (dataset / "cameras.json").write_text(json.dumps(broken))
    with pytest.raises(InputError, match=r"camera S1/cam_a: missing key 'f'"):
        load_cameras(dataset / "cameras.json")
    (dataset / "cameras.json").write_text(json.dumps({"S1": {"cam_a": {**CAMERAS["cam_a"], "R": [[1, 0, 0], [0, 2, 0], [0, 0, 1]]}}}))
    with pytest.raises(InputError, match="key 'R': expected a \\(3, 3\\) rotation matrix"):
        load_cameras(dataset / "cameras.json")


def test_build_cross_fits_by_subject_and_resumes(dataset, tmp_path, capsys):
    out = tmp_path / "h36m"
    args = ["--data", str(dataset), "--out", str(out), "--kinds", "frame", "--frame-steps", "2", "--threads", "1"]
    assert build_main(args) == 0
    train, val = load_poses(out / "train_frame.h5"), load_poses(out / "val_frame.h5")
    assert sorted({s.provenance["subject"] for s in train}) == ["S1", "S5", "S6", "S7"] and len(train) == 16
    assert {s.provenance["subject"] for s in val} == {"S8"} and len(val) == 4
    for seq in train:  # each training subject predicted by the lifter that did not see it
        assert seq.provenance["fold"] == seq.provenance["subject"] and seq.provenance["subject"] not in seq.provenance["trained_on"].split("+")
        assert seq.provenance["estimator_weights"] == f"estimators/frame_{seq.provenance['subject']}.safetensors"
    assert val[0].provenance["trained_on"] == "S1+S5+S6+S7" and val[0].poses_3d.shape == (40, 17, 3)
    summary = json.loads((out / "build_summary_frame.json").read_text())
    assert set(summary["estimators"]["frame"]["errors"]) == set(SUBJECTS)
    assert all(s > 0 for s in summary["estimators"]["frame"]["fit_seconds"].values())
    assert build_main(args) == 1  # outputs exist
    assert "exists, pass --overwrite" in capsys.readouterr().err
    assert build_main([*args, "--overwrite"]) == 0  # resumes: the lifters are loaded, not refitted
    assert capsys.readouterr().err.count("exists, loaded") == 5
    again = load_poses(out / "val_frame.h5")
    np.testing.assert_array_equal(again[0].poses_3d, val[0].poses_3d)
    assert build_main([*args, "--overwrite", "--cross-fit", "S6", "S1"]) == 0  # fewer folds: only their outputs
    assert sorted({s.provenance["subject"] for s in load_poses(out / "train_frame.h5")}) == ["S1", "S6"]
    assert json.loads((out / "build_summary_frame.json").read_text())["cross_fitted"] == ["S1", "S6"]
