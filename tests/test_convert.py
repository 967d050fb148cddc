"""convert -> refine -> export for every source format, on small files each test writes itself.

Every file is built here from a synthetic motion (tests/conftest.py) in the format's own
layout, units and axes; the checks compare joints, units and frames after the round trip.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import IMAGE_SIZE, project, synthetic_motion
from typer.testing import CliRunner

from d3prefine.cli import app
from d3prefine.io import load_poses
from d3prefine.keypoints import COCO_17, HALPE_26, MEDIAPIPE_33
from d3prefine.skeleton import H36M_17

FRAMES = 40
H = {name: j for j, name in enumerate(H36M_17.joint_names)}


def run(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def motion(seed: int = 0) -> np.ndarray:
    """Ground truth ``(FRAMES, 17, 3)`` metres, camera frame."""
    return synthetic_motion(FRAMES, np.random.default_rng(seed))


def estimate(gt: np.ndarray, seed: int = 1) -> np.ndarray:
    """A noisy root-relative estimate of ``gt`` (what lifters output)."""
    noisy = gt + np.random.default_rng(seed).normal(scale=0.015, size=gt.shape)
    return noisy - noisy[:, :1]


def source_points(h36m: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Keypoints of a source layout placed on an h36m17 body: joints of the same name where it
    has them, face points around the nose, ears beside the head top, hand and foot points at
    wrists and ankles, Halpe's head/neck/hip at head top/thorax/pelvis."""
    up = h36m[..., H["head_top"], :] - h36m[..., H["thorax"], :]
    side = h36m[..., H["l_shoulder"], :] - h36m[..., H["r_shoulder"], :]
    places = {
        "nose": h36m[..., H["neck_nose"], :], "head": h36m[..., H["head_top"], :], "neck": h36m[..., H["thorax"], :],
        "hip": h36m[..., H["pelvis"], :],
        "l_ear": h36m[..., H["head_top"], :] + 0.25 * side, "r_ear": h36m[..., H["head_top"], :] - 0.25 * side,
    }
    out = []
    for name in names:
        if name in places:
            out.append(places[name])
        elif name in H:
            out.append(h36m[..., H[name], :])
        elif "eye" in name or "mouth" in name:
            out.append(h36m[..., H["neck_nose"], :] + 0.05 * up + (0.1 if name.startswith("l") or "left" in name else -0.1) * side)
        else:  # hand and foot points
            joint = ("l_" if name.startswith("l_") else "r_") + ("wrist" if any(k in name for k in ("pinky", "index", "thumb")) and "foot" not in name else "ankle")
            out.append(h36m[..., H[joint], :] + 0.05 * up)
    return np.stack(out, axis=-2)


def refine_and_export(converted: Path, name: str) -> tuple[Path, object]:
    """Refine ``converted`` with the shipped weights, export it ``--to source`` as ``name``."""
    refined = converted.with_name(converted.stem + ".refined.npz")
    result = run("refine", converted, "-o", refined, "--fill", "3")
    assert result.exit_code == 0, result.output
    out = converted.with_name(name)
    result = run("export", refined, "--to", "source", "-o", out)
    assert result.exit_code == 0, result.output
    return out, load_poses(refined)[0]


def test_arrays_coco_2d_with_millimetre_3d_round_trip(tmp_path):
    gt = motion()
    est_mm = estimate(gt) * 1000.0
    np.save(tmp_path / "kp3d.npy", est_mm.astype(np.float32))
    coco_2d = project(source_points(gt, COCO_17.source_names))
    flat = coco_2d.reshape(FRAMES, -1)
    (tmp_path / "kp2d.csv").write_text(
        "frame," + ",".join(f"j{k}" for k in range(flat.shape[1])) + "\n"
        + "\n".join(f"{t}," + ",".join(f"{v:.4f}" for v in row) for t, row in enumerate(flat)) + "\n"
    )
    out = tmp_path / "clip.npz"
    result = run("convert", "arrays", "--2d", tmp_path / "kp2d.csv", "--layout-2d", "coco17", "--3d", tmp_path / "kp3d.npy",
                 "--units", "mm", "--image-size", *IMAGE_SIZE, "--fps", 30, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    seq = load_poses(out)[0]
    np.testing.assert_allclose(seq.poses_3d, est_mm / 1000.0, atol=1e-6)  # metres now
    np.testing.assert_allclose(seq.poses_2d[:, H["pelvis"]], coco_2d[:, [11, 12]].mean(1), atol=1e-3)  # synthesised
    convert = seq.provenance["convert"]
    assert convert["metres_per_unit"] == 0.001 and convert["layout_2d"]["source_layout"] == "coco17"
    assert set(convert["layout_2d"]["synthesised"]) == {"pelvis", "spine", "thorax", "neck_nose", "head_top"}
    exported, refined = refine_and_export(out, "kp3d.refined.npy")
    back = np.load(exported)
    assert back.shape == est_mm.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, refined.poses_3d_refined * 1000.0, atol=0.05)  # millimetres again
    assert 1.0 < np.linalg.norm(back - est_mm, axis=-1).mean() < 150.0  # refined: moved, by millimetres


def test_coco_ordered_2d_with_h36m_3d_is_refused_or_forced(tmp_path):
    gt = motion()
    np.save(tmp_path / "kp3d.npy", estimate(gt))
    np.save(tmp_path / "kp2d.npy", project(source_points(gt, COCO_17.source_names)))  # COCO order, 17 joints
    args = ["convert", "arrays", "--2d", tmp_path / "kp2d.npy", "--3d", tmp_path / "kp3d.npy", "--image-size", *IMAGE_SIZE]
    result = run(*args, "-o", tmp_path / "a.npz")
    assert result.exit_code == 1 and not (tmp_path / "a.npz").exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "disagree on the joint order" in lines[0] and "--layout-2d" in lines[0]
    result = run(*args, "-o", tmp_path / "b.npz", "--force")
    assert result.exit_code == 0 and "warning:" in result.stderr and (tmp_path / "b.npz").exists()
    # refine checks files written by hand too
    result = run("refine", tmp_path / "b.npz", "-o", tmp_path / "b.refined.npz")
    assert result.exit_code == 1 and "disagree on the joint order" in result.stderr
    assert run("refine", tmp_path / "b.npz", "-o", tmp_path / "b.refined.npz", "--force").exit_code == 0


def test_normalised_3d_is_refused_until_scaled(tmp_path):
    gt = motion()
    est = estimate(gt)
    est_norm = est * (2.0 / 1.61)  # MotionBERT-like: about 2 units tall
    np.save(tmp_path / "kp3d.npy", est_norm)
    np.save(tmp_path / "kp2d.npy", project(gt))
    base = ["convert", "arrays", "--2d", tmp_path / "kp2d.npy", "--3d", tmp_path / "kp3d.npy", "--image-size", *IMAGE_SIZE]
    result = run(*base, "-o", tmp_path / "a.npz")  # read as metres: a 2-metre skeleton
    assert result.exit_code == 1 and "head top to ankle" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = run(*base, "--units", "normalised", "-o", tmp_path / "a.npz")
    assert result.exit_code == 1 and "--scale-to-height" in result.stderr
    result = run(*base, "--units", "normalised", "--scale-to-height", "1.6", "-o", tmp_path / "a.npz")
    assert result.exit_code == 0, result.output
    seq = load_poses(tmp_path / "a.npz")[0]
    from d3prefine.checks import body_height

    assert body_height(seq.poses_3d) == pytest.approx(1.6, rel=1e-4)
    np.testing.assert_allclose(seq.poses_3d, est, atol=0.03)  # back to metres within the 1.6 vs 1.61 m height


def test_motionbert_x3d_with_alphapose_halpe(tmp_path):
    gt = motion()
    est = estimate(gt)
    height = 1.6
    from d3prefine.checks import body_height

    units_per_m = 2.0 / body_height(est)
    np.save(tmp_path / "X3D.npy", (est * units_per_m).astype(np.float32))
    halpe = project(source_points(gt, HALPE_26.source_names))
    detections = []
    for t in range(FRAMES):
        for idx, shift in ((0, 0.0), (1, 300.0)):  # a second, lower-scoring person
            kp = np.concatenate([halpe[t] + shift, np.full((26, 1), 0.9)], axis=1)
            detections.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                               "score": 2.5 - idx, "box": [0, 0, 10, 10], "idx": idx})
    (tmp_path / "alphapose-results.json").write_text(json.dumps(detections))
    out = tmp_path / "clip.npz"
    result = run("convert", "motionbert", "--3d", tmp_path / "X3D.npy", "--2d", tmp_path / "alphapose-results.json",
                 "--image-size", *IMAGE_SIZE, "--scale-to-height", height, "-o", out)
    assert result.exit_code == 0, result.output
    seq = load_poses(out)[0]
    assert seq.num_frames == FRAMES and body_height(seq.poses_3d) == pytest.approx(height, rel=1e-4)
    np.testing.assert_allclose(seq.poses_2d[:, H["head_top"]], halpe[:, 17], atol=1e-3)  # person idx 0 (highest score)
    exported, refined = refine_and_export(out, "X3D.refined.npy")
    back = np.load(exported)
    assert back.shape == (FRAMES, 17, 3) and back.dtype == np.float32
    scale = seq.provenance["convert"]["metres_per_unit"]
    np.testing.assert_allclose(back, refined.poses_3d_refined / scale, atol=1e-4)  # MotionBERT units again


def test_mmpose_json_axes_undone_and_restored(tmp_path):
    gt = motion()
    est = estimate(gt)
    demo = -est[..., [0, 2, 1]]  # the demo's display axes
    demo[..., 2] -= demo[..., 2].min(axis=-1, keepdims=True)  # rebased height
    coco = project(source_points(gt, COCO_17.source_names))

    def doc(keypoints):
        return {"meta_info": {"dataset_name": "h36m"}, "instance_info": [
            {"frame_id": t, "instances": [{"keypoints": kp.tolist(), "keypoint_scores": [0.9] * len(kp)}]} for t, kp in enumerate(keypoints)]}

    (tmp_path / "pred3d.json").write_text(json.dumps(doc(demo)))
    (tmp_path / "pred2d.json").write_text(json.dumps(doc(coco)))
    out = tmp_path / "clip.npz"
    result = run("convert", "mmpose", "--3d", tmp_path / "pred3d.json", "--2d", tmp_path / "pred2d.json", "--layout-2d", "coco17",
                 "--image-size", *IMAGE_SIZE, "-o", out)
    assert result.exit_code == 0, result.output
    seq = load_poses(out)[0]
    rel = seq.poses_3d - seq.poses_3d[:, :1]
    np.testing.assert_allclose(rel, est - est[:, :1], atol=1e-5)  # camera frame again: y down, z forward
    exported, refined = refine_and_export(out, "pred3d.refined.json")
    data = json.loads(exported.read_text())
    back = np.array([f["instances"][0]["keypoints"] for f in data["instance_info"]])
    assert back.shape == (FRAMES, 17, 3) and data["meta_info"] == {"dataset_name": "h36m"}
    np.testing.assert_allclose(back, -refined.poses_3d_refined[..., [0, 2, 1]], atol=1e-4)


def test_mediapipe_landmarks_with_a_missing_frame(tmp_path):
    gt = motion()
    world = source_points(estimate(gt), MEDIAPIPE_33.source_names)
    image = project(source_points(gt, MEDIAPIPE_33.source_names)) / IMAGE_SIZE
    frames = [
        {"landmarks": [{"x": x, "y": y, "z": 0.0, "visibility": 0.99} for x, y in image[t]],
         "world_landmarks": [{"x": x, "y": y, "z": z, "visibility": 0.99} for x, y, z in world[t]]}
        for t in range(FRAMES)
    ]
    frames[5] = None  # no person found
    (tmp_path / "mp.json").write_text(json.dumps(frames))
    out = tmp_path / "clip.npz"
    result = run("convert", "mediapipe", "--3d", tmp_path / "mp.json", "--image-size", *IMAGE_SIZE, "--fps", 30, "-o", out)
    assert result.exit_code == 0, result.output
    seq = load_poses(out, allow_nan=True)[0]
    assert np.isnan(seq.poses_3d[5]).all() and not np.isnan(seq.poses_3d[6]).any()
    np.testing.assert_allclose(seq.poses_2d[6, H["l_wrist"]], image[6, 15] * IMAGE_SIZE, atol=1e-3)
    exported, refined = refine_and_export(out, "mp.refined.json")
    data = json.loads(exported.read_text())
    assert data[5] is None and len(data) == FRAMES
    back = np.array([[[p["x"], p["y"], p["z"]] for p in data[t]["world_landmarks"]] for t in range(6, FRAMES)])
    r = refined.poses_3d_refined[6:]
    np.testing.assert_allclose(back[:, 15], r[:, H["l_wrist"]], atol=1e-5)  # a copied joint lands on its refined joint
    np.testing.assert_allclose(back[:, 19] - back[:, 15], world[6:, 19] - world[6:, 15], atol=1e-5)  # fingers follow the wrist
    assert data[6]["world_landmarks"][0]["visibility"] == 0.99  # other fields kept


def _pickled_npz(path: Path, **items: object) -> None:
    np.savez(path, **{key: np.array(value, dtype=object) for key, value in items.items()})


def test_videopose3d_custom_2d_with_predictions_and_h36m_ground_truth(tmp_path):
    gt = motion()
    coco = project(source_points(gt, COCO_17.source_names))
    metadata = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [[1, 3, 5], [2, 4, 6]],
                "video_metadata": {"clip.mp4": {"w": IMAGE_SIZE[0], "h": IMAGE_SIZE[1]}}}
    _pickled_npz(tmp_path / "data_2d_custom_clips.npz", positions_2d={"clip.mp4": {"custom": [coco.astype(np.float32)]}}, metadata=metadata)
    np.save(tmp_path / "clip_pred.npy", estimate(gt).astype(np.float32))
    # ground truth: 32 mocap joints in a Z-up world seen by one camera
    rotation = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # camera -> world (camera y down = world -z)
    translation_mm = np.array([100.0, -4000.0, 1500.0])
    world17 = gt @ rotation.T + translation_mm / 1000.0
    world32 = np.zeros((FRAMES, 32, 3))
    world32[:, [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]] = world17
    _pickled_npz(tmp_path / "data_3d_h36m.npz", positions_3d={"clip.mp4": {"custom": world32}})
    from scipy.spatial.transform import Rotation

    quat = Rotation.from_matrix(rotation).as_quat(scalar_first=True)
    (tmp_path / "cams.json").write_text(json.dumps({"clip.mp4": [{"orientation": quat.tolist(), "translation": translation_mm.tolist()}]}))
    out = tmp_path / "clip.npz"
    args = ["convert", "videopose3d", "--2d", tmp_path / "data_2d_custom_clips.npz", "--3d", tmp_path / "clip_pred.npy", "-o", out]
    result = run(*args)
    assert result.exit_code == 1 and "--allow-pickle" in result.stderr and not out.exists()
    result = run(*args, "--allow-pickle", "--gt", tmp_path / "data_3d_h36m.npz", "--cameras", tmp_path / "cams.json", "--fps", 50)
    assert result.exit_code == 0, result.output
    assert "warning: --allow-pickle" in result.stderr
    seq = load_poses(out)[0]
    assert seq.name == "clip.mp4" and seq.image_size == IMAGE_SIZE and seq.fps == 50.0
    np.testing.assert_allclose(seq.gt_3d, gt, atol=1e-5)  # world -> camera
    (tmp_path / "data_2d_custom_clips.npz").unlink()  # export never reads (unpickles) the 2D again
    exported, refined = refine_and_export(out, "clip_pred.refined.npy")
    back = np.load(exported)
    assert back.shape == (FRAMES, 17, 3)
    np.testing.assert_allclose(back, refined.poses_3d_refined, atol=1e-6)
    with pytest.raises(Exception, match="pickled object array"):  # load_poses never unpickles
        load_poses(tmp_path / "data_3d_h36m.npz")


def test_csv_and_bvh_export(tmp_path, make_sequence):
    from d3prefine.io import save_poses
    from recipes.bvh import load_bvh

    seq = make_sequence(20, noise_m=0.0)
    seq.poses_3d_refined = seq.gt_3d  # constant bone lengths: BVH reproduces them exactly
    save_poses(tmp_path / "walk.npz", [seq])
    assert run("export", tmp_path / "walk.npz", "--to", "csv").exit_code == 0
    lines = (tmp_path / "walk.csv").read_text().splitlines()
    assert lines[0].startswith("frame,pelvis_x,pelvis_y,pelvis_z,r_hip_x") and len(lines) == 21
    np.testing.assert_allclose(np.array(lines[3].split(",")[1:], float).reshape(17, 3), seq.gt_3d[2], atol=1e-6)
    assert run("export", tmp_path / "walk.npz", "--to", "bvh").exit_code == 0
    motion_ = load_bvh(tmp_path / "walk.bvh")
    assert motion_.fps == pytest.approx(30.0, rel=1e-5) and len(motion_.positions) == 20
    joints = [motion_.skeleton.joint_names.index(name) for name in H36M_17.joint_names]
    camera = motion_.positions[:, joints] * (1.0, -1.0, -1.0)  # Y-up back to the camera frame
    np.testing.assert_allclose(camera, seq.gt_3d, atol=1e-4)
    result = run("export", tmp_path / "walk.npz", "--to", "source")
    assert result.exit_code == 1 and "not made by 'd3prefine convert'" in result.stderr


def test_pickle_is_never_read_without_the_flag(tmp_path):
    payload = tmp_path / "evil.npz"
    np.savez(payload, positions_2d=np.array({"x": pickle.dumps(1)}, dtype=object))
    result = run("convert", "videopose3d", "--2d", payload, "--3d", payload, "-o", tmp_path / "o.npz")
    assert result.exit_code == 1 and "pickled" in result.stderr


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("csv_columns", ["arrays", "--2d", "{d}/bad.csv", "--3d", "{d}/kp3d.npy"], "expected 34 columns (17 joints x 2) or 35 with a frame column, got 5"),
        ("csv_ragged", ["arrays", "--2d", "{d}/ragged.csv", "--3d", "{d}/kp3d.npy"], "rows of different lengths (2 to 3 columns)"),
        ("csv_header_only", ["arrays", "--2d", "{d}/header.csv", "--3d", "{d}/kp3d.npy"], "no data rows below the header"),
        ("frames", ["arrays", "--2d", "{d}/short.npy", "--3d", "{d}/kp3d.npy"], "the 2D has 39 frames, the 3D 40; expected the same frames"),
        ("no_size", ["motionbert", "--3d", "{d}/kp3d.npy", "--2d", "{d}/ap.json"], "give --image-size WIDTH HEIGHT"),
        ("ap_frames", ["motionbert", "--3d", "{d}/kp3d.npy", "--2d", "{d}/ap.json", "--image-size", "1000", "1000", "--scale-to-height", "1.6"],
         "1 frames with a detection, but"),
        ("mm_shape", ["mmpose", "--3d", "{d}/mm.json", "--2d", "{d}/mm.json", "--image-size", "1000", "1000"], "expected keypoints of shape (17, 3), got (2, 3)"),
        ("mp_missing", ["mediapipe", "--image-size", "1000", "1000"], "--3d is required"),
        ("json", ["mediapipe", "--3d", "{d}/broken.json", "--image-size", "1000", "1000"], "not valid JSON"),
    ],
)
def test_bad_source_files_fail_in_one_line(tmp_path, setup, args, message):
    gt = motion()
    np.save(tmp_path / "kp3d.npy", estimate(gt))
    np.save(tmp_path / "short.npy", project(gt)[:-1])
    (tmp_path / "bad.csv").write_text("1,2,3,4,5\n")
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    (tmp_path / "header.csv").write_text("x0,y0\n")
    (tmp_path / "ap.json").write_text(json.dumps([{"image_id": "0.jpg", "keypoints": [1.0] * 78, "score": 1.0, "idx": 0}]))
    (tmp_path / "mm.json").write_text(json.dumps({"instance_info": [{"frame_id": 0, "instances": [{"keypoints": [[0, 0, 0]] * 2}]}]}))
    (tmp_path / "broken.json").write_text("[{")
    result = run("convert", *[a.format(d=tmp_path) for a in args], "-o", tmp_path / "out.npz")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]
    assert not (tmp_path / "out.npz").exists()


def test_videopose3d_h36m_2d_needs_the_sequence_and_image_size(tmp_path):
    gt = motion()
    p2 = project(gt).astype(np.float32)
    positions = {"S9": {"Walking": [p2, p2 + 1.0], "Eating 2": [p2 + 2.0]}}
    _pickled_npz(tmp_path / "data_2d_h36m_cpn.npz", positions_2d=positions, metadata={"layout_name": "h36m", "num_joints": 17})
    np.save(tmp_path / "pred.npy", estimate(gt))
    base = ["convert", "videopose3d", "--2d", tmp_path / "data_2d_h36m_cpn.npz", "--3d", tmp_path / "pred.npy", "--allow-pickle", "-o", tmp_path / "o.npz"]
    result = run(*base)
    assert result.exit_code == 1 and "holds 3 sequences; pick the one of" in result.stderr and "'S9_Walking_cam0'" in result.stderr
    result = run(*base, "--sequence", "S9_Walking_cam1")
    assert result.exit_code == 1 and "give --image-size WIDTH HEIGHT" in result.stderr
    result = run(*base, "--sequence", "S9_Walking_cam1", "--image-size", *IMAGE_SIZE, "--fps", 50)
    assert result.exit_code == 0, result.output
    seq = load_poses(tmp_path / "o.npz")[0]
    assert seq.name == "S9_Walking_cam1" and seq.fps == 50.0
    np.testing.assert_allclose(seq.poses_2d, p2 + 1.0, atol=1e-4)
    assert seq.provenance["convert"]["camera"] == 1 and seq.provenance["convert"]["action"] == "Walking"
