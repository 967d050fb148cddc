"""Bandai-Namco -> Human3.6M-17 mapping, the split rule, and an end-to-end build on tiny files."""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from d3prefine.bvh import BvhSkeleton, format_bvh
from d3prefine.errors import D3PrefineError, InputError
from d3prefine.io import load_poses
from d3prefine.skeleton import H36M_17
from recipes import build_dataset
from recipes.bandai import HEAD_TOP_EXTENSION_M, YUP_TO_ZUP, Split, motion_info, to_h36m
from recipes.bvh import load_bvh
from recipes.cameras import look_at
from recipes.estimators import FitConfig, LifterKind

SIX = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
# Bandai-like hierarchy (depth-first), T-pose offsets in cm, Y up, facing +Z: the subject's left is +X.
JOINTS = (
    ("joint_Root", None, (0, 0, 0)),
    ("Hips", "joint_Root", (0, 90, 0)),
    ("Spine", "Hips", (0, 15, 0)),
    ("Chest", "Spine", (0, 10, 0)),
    ("Neck", "Chest", (0, 20, 0)),
    ("Head", "Neck", (0, 10, 0)),
    ("Shoulder_L", "Chest", (5, 15, 0)),
    ("UpperArm_L", "Shoulder_L", (10, 0, 0)),
    ("LowerArm_L", "UpperArm_L", (25, 0, 0)),
    ("Hand_L", "LowerArm_L", (22, 0, 0)),
    ("Shoulder_R", "Chest", (-5, 15, 0)),
    ("UpperArm_R", "Shoulder_R", (-10, 0, 0)),
    ("LowerArm_R", "UpperArm_R", (-25, 0, 0)),
    ("Hand_R", "LowerArm_R", (-22, 0, 0)),
    ("UpperLeg_L", "Hips", (8, -5, 0)),
    ("LowerLeg_L", "UpperLeg_L", (0, -40, 0)),
    ("Foot_L", "LowerLeg_L", (0, -40, 0)),
    ("Toes_L", "Foot_L", (0, -5, 10)),
    ("UpperLeg_R", "Hips", (-8, -5, 0)),
    ("LowerLeg_R", "UpperLeg_R", (0, -40, 0)),
    ("Foot_R", "LowerLeg_R", (0, -40, 0)),
    ("Toes_R", "Foot_R", (0, -5, 10)),
)
NAMES = tuple(j[0] for j in JOINTS)
SKELETON = BvhSkeleton(
    NAMES,
    np.array([-1 if p is None else NAMES.index(p) for _, p, _ in JOINTS]),
    np.array([o for _, _, o in JOINTS], dtype=float),
    (SIX,) * len(JOINTS),
)


def bandai_values(frames: int, rng: np.random.Generator | None = None, speed_cm: float = 4.0, heading_deg: float = 0.0) -> np.ndarray:
    """Channel values ``(T, 22 * 6)``: bone translations = offsets, the hips walk along their heading."""
    values = np.zeros((frames, len(JOINTS), 6))
    values[:, :, :3] = SKELETON.offsets
    values[:, 1, 2] = speed_cm * np.arange(frames)  # Hips move along +Z (the facing direction)
    values[:, 1, 5] = heading_deg  # Hips Yrotation turns the whole body
    if rng is not None:  # small joint rotations so poses vary
        values[:, 2:, 3:] = rng.normal(0, 8, size=(frames, len(JOINTS) - 2, 3))
    return values.reshape(frames, -1)


def write_bandai(path, frames=40, rng=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(format_bvh(SKELETON, bandai_values(frames, rng, **kwargs), 1 / 30))
    return path


def test_yup_to_zup_is_a_proper_rotation():
    assert np.linalg.det(YUP_TO_ZUP) == pytest.approx(1.0)
    np.testing.assert_allclose(YUP_TO_ZUP @ YUP_TO_ZUP.T, np.eye(3))
    np.testing.assert_allclose(YUP_TO_ZUP @ [0, 1, 0], [0, 0, 1])  # BVH up -> world up


def test_mapping_joints_units_and_head_top(tmp_path):
    poses = to_h36m(load_bvh(write_bandai(tmp_path / "dataset-2_walk_normal_001.bvh", frames=3)))
    assert poses.shape == (3, 17, 3)
    pelvis, l_hip = poses[0, 0], poses[0, 4]
    np.testing.assert_allclose(pelvis, [0, 0, 0.90], atol=1e-9)  # cm -> m, Y up -> Z up
    np.testing.assert_allclose(l_hip, [0.08, 0, 0.85], atol=1e-9)
    np.testing.assert_allclose(poses[0, H36M_17.joint_names.index("l_ankle")], [0.08, 0, 0.05], atol=1e-9)
    head = poses[0, 9]
    np.testing.assert_allclose(head, [0, 0, 1.45], atol=1e-9)
    np.testing.assert_allclose(poses[0, 10], head + [0, 0, HEAD_TOP_EXTENSION_M], atol=1e-9)
    # With random joint rotations head_top stays 0.12 m beyond Head, on the Neck -> Head line.
    bent = to_h36m(load_bvh(write_bandai(tmp_path / "bent.bvh", frames=20, rng=np.random.default_rng(1))))
    extension = bent[:, 10] - bent[:, 9]
    np.testing.assert_allclose(np.linalg.norm(extension, axis=-1), HEAD_TOP_EXTENSION_M, rtol=1e-9)
    np.testing.assert_allclose(np.cross(extension, bent[:, 9] - bent[:, 8]), 0, atol=1e-12)
    assert np.ptp(extension[:, 0]) > 0.01  # the head really tilts
    np.testing.assert_allclose(poses[0, 13], [0.62, 0, 1.30], atol=1e-9)  # left wrist: x 5 + 10 + 25 + 22 cm, at shoulder height


@pytest.mark.parametrize("heading_deg", [0.0, 90.0, -135.0])
def test_left_joints_are_on_the_subjects_left(tmp_path, heading_deg):
    poses = to_h36m(load_bvh(write_bandai(tmp_path / "w.bvh", frames=10, heading_deg=heading_deg)))
    # Facing direction from the toes (Foot -> Toes), the subject's left = up x forward.
    toes = load_bvh(tmp_path / "w.bvh").positions
    forward = (toes[:, NAMES.index("Toes_L")] - toes[:, NAMES.index("Foot_L")]) @ YUP_TO_ZUP.T
    forward[:, 2] = 0
    left = np.cross([0, 0, 1], forward)
    for l, r in H36M_17.left_right:
        assert (np.sum((poses[:, l] - poses[:, r]) * left, axis=-1) > 0).all(), H36M_17.joint_names[l]


def test_motion_names_give_actor_and_split():
    assert motion_info("dataset-1_dance-short_normal_001").split == Split.TRAIN
    info = motion_info("dataset-2_walk-turn-left_masculine_012")
    assert (info.content, info.style, info.take, info.actor, info.split) == ("walk-turn-left", "masculine", 12, "M", Split.TRAIN)
    assert motion_info("dataset-2_raise-up-both-hands_normal_001").split == Split.TRAIN
    for style in ("active", "elderly", "exhausted"):
        info = motion_info(f"dataset-2_run_{style}_003")
        assert (info.actor, info.split) == ("A", Split.VAL)
    with pytest.raises(InputError, match="youthful"):
        motion_info("dataset-2_walk_youthful_001")
    with pytest.raises(InputError, match="expected a name"):
        motion_info("walk_001")


def _cameras_json(path):
    cameras = []
    for i, azimuth in enumerate((0.3, 1.9, 3.5, 5.0)):
        centre = np.array([5 * np.cos(azimuth), 5 * np.sin(azimuth), 1.5])
        x, y, z, w = Rotation.from_matrix(look_at(centre, np.array([0.0, 0.0, 0.9]))).as_quat()
        cameras.append(
            {"id": f"cam{i}", "center": [500.0, 500.0], "focal_length": [1150.0, 1150.0], "radial_distortion": [-0.2, 0.24, 0.0],
             "tangential_distortion": [0.0, 0.0], "res_w": 1000, "res_h": 1000, "orientation": [w, x, y, z],
             "translation": (centre * 1000).tolist()}
        )
    path.write_text(json.dumps({"cameras": cameras}))
    return path


def test_build_end_to_end(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw" / "dataset"
    d1 = raw / "Bandai-Namco-Research-Motiondataset-1" / "data"
    d2 = raw / "Bandai-Namco-Research-Motiondataset-2" / "data"
    for path in (d1 / "dataset-1_walk_happy_001.bvh", d2 / "dataset-2_walk_normal_001.bvh", d2 / "dataset-2_run_masculine_002.bvh",
                 d2 / "dataset-2_walk_active_001.bvh", d2 / "dataset-2_wave-left-hand_elderly_004.bvh"):
        write_bandai(path, frames=40, rng=rng)
    write_bandai(d2 / "dataset-2_walk_normal_009.bvh", frames=10)  # too short for a window: skipped
    (d1 / "dataset-1_dance-long_normal_001.bvh").write_bytes(b"")  # the known empty file: warned and skipped
    cameras = _cameras_json(tmp_path / "cams.json")
    monkeypatch.setattr(build_dataset, "FITS", {k: FitConfig(steps=2, batch_frames=64, chunk=32) for k in LifterKind})
    out = tmp_path / "data"

    summary = build_dataset.build(tmp_path / "raw", out, cameras, seed=0, workers=1, overwrite=False, max_motions=None)

    assert summary["skipped_files"] == ["dataset-1_dance-long_normal_001.bvh"]
    assert summary["motions_too_short"] == ["dataset-2_walk_normal_009"]
    assert summary["splits"]["train"]["motions"] == 3 and summary["splits"]["val"]["motions"] == 2
    assert summary["splits"]["train"]["sequences"] == 3 * 5 and summary["splits"]["val"]["sequences"] == 2 * 2
    assert not summary["actors"]["skeletons_distinguish_actors"]
    val = load_poses(out / "val_temporal.h5")
    assert len(val) == 4 and {s.provenance["camera"] for s in val} == {"cam0", "cam1", "random"}
    for seq in val:
        assert seq.image_size == (1000, 1000) and seq.fps == 30.0 and seq.poses_2d.shape == (40, 17, 2)
        assert (seq.poses_3d[:, 0] == 0).all()  # root-relative estimator output
        assert seq.gt_3d[..., 2].min() > 0.5  # absolute camera-frame ground truth in front of the camera
        assert seq.provenance["split"] == "val" and seq.provenance["estimator"] == "TemporalLifter"
        assert seq.provenance["estimator_weights"] == "estimators/temporal.safetensors"
        assert seq.provenance["source_file"].startswith("Bandai-Namco-Research-Motiondataset-2/data/dataset-2_")
    train = load_poses(out / "train_frame.h5")
    assert {s.provenance["fold"] for s in train} == {0, 1, 2}
    for seq in train:  # cross-fitting: each train motion predicted by the model of its own fold
        assert seq.provenance["estimator_weights"] == f"estimators/frame_fold{seq.provenance['fold']}.safetensors"
    assert (out / "estimators" / "frame.safetensors").exists()
    with pytest.raises(D3PrefineError, match="--overwrite"):
        build_dataset.build(tmp_path / "raw", out, cameras, seed=0, workers=1, overwrite=False, max_motions=None)
    # Deterministic: a second build gives identical files.
    build_dataset.build(tmp_path / "raw", tmp_path / "again", cameras, seed=0, workers=1, overwrite=False, max_motions=None)
    for name in ("val_temporal.h5", "train_frame.h5"):
        for a, b in zip(load_poses(out / name), load_poses(tmp_path / "again" / name)):
            assert a.name == b.name and a.provenance == b.provenance
            np.testing.assert_array_equal(a.poses_2d, b.poses_2d)
            np.testing.assert_array_equal(a.poses_3d, b.poses_3d)
