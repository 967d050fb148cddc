"""recipes.fit_detector on a hand-built 'dataset': one camera, detections = projection + known errors."""

import json

import numpy as np
import pytest

from recipes.detector import DETECTORS, H36M_SH_NOISE, POSTURE_CLASSES, DetectorNoise, detector_joints, person_size
from recipes.fit_detector import fit
from tests.conftest import CENTRE_PX, FOCAL_PX, project, synthetic_motion

# h36m17 joint of every sh16 keypoint (sh16: r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, pelvis,
# spine, thorax, head, r_wrist, r_elbow, r_shoulder, l_shoulder, l_elbow, l_wrist)
SH_FROM_H36M = [3, 2, 1, 4, 5, 6, 0, 7, 8, 10, 16, 15, 14, 11, 12, 13]


def _dataset(tmp_path, frames):
    """One camera and one action "Walk", the world frame the camera frame: the ground truth (metres), its projection and the sh16 detections."""
    world = synthetic_motion(frames, np.random.default_rng(0))
    camera = {"R": np.eye(3).tolist(), "T": [0.0, 0.0, 0.0], "f": [FOCAL_PX, FOCAL_PX], "c": list(CENTRE_PX),
              "k": [0.0, 0.0, 0.0], "p": [0.0, 0.0], "width": 1000, "height": 1000}
    (tmp_path / "cameras.json").write_text(json.dumps({"S1": {"cam": camera}}))
    gt = project(world)
    return world, gt, gt[:, SH_FROM_H36M].copy()


def test_fit_of_a_simulated_detector_reads_the_simulation_not_the_detections(tmp_path):
    world, gt, sh = _dataset(tmp_path, 60)
    sh += 50.0  # detections far off: a simulation must not see them
    np.savez(tmp_path / "S1.npz", **{"Walk/world_3d": world.astype(np.float32), "Walk/sh_2d/cam": sh.astype(np.float32)})
    quiet = fit(tmp_path, DetectorNoise(jitter=1e-4, outlier_rate=0.0, swap_rate=0.0))
    assert quiet["detections"] == "simulated" and quiet["outlier_rate"] == 0.0 and quiet["swap_rate"] == 0.0
    assert quiet["per_action"] == {"Walk": dict.fromkeys(POSTURE_CLASSES, 0.0)}
    assert quiet["jitter_median_std"] == pytest.approx(1e-4, rel=0.5)
    assert abs(quiet["per_joint"]["l_knee"]["offset_across"]) < 0.01
    real = fit(tmp_path)
    assert real["detections"] == "real" and abs(real["per_joint"]["l_knee"]["offset_across"]) > 0.1  # the 50 px
    noisy = fit(tmp_path, DETECTORS["h36m-sh-posture"])  # the posture preset gets the camera-frame ground truth
    assert 0.0 < noisy["jitter_median_std"] < 0.05


def test_fit_recovers_known_offsets_swaps_and_outliers(tmp_path):
    frames = 60
    world, gt, sh = _dataset(tmp_path, frames)
    sh[:, 4, 0] += 5.0  # l_knee always 5 px to the right
    sh[10:15, [0, 5]] = sh[10:15, [5, 0]]  # ankles crossed for 5 frames
    sh[20:23, 10, 1] += 0.5 * person_size(gt)  # r_wrist an outlier for 3 frames
    np.savez(tmp_path / "S1.npz", **{"Walk/world_3d": world.astype(np.float32), "Walk/sh_2d/cam": sh.astype(np.float32)})
    figures = fit(tmp_path)
    assert figures["frames"] == frames and figures["missed_rate"] == 0.0
    assert figures["swap_rate"] == pytest.approx(5 / frames, abs=1e-5) and figures["swap_mean_frames"] == 5.0
    joints = figures["per_joint"]
    assert joints["r_wrist"]["outlier_rate"] == pytest.approx(3 / frames, abs=1e-5)
    assert joints["l_ankle"]["outlier_rate"] == joints["r_ankle"]["outlier_rate"] == pytest.approx(5 / frames, abs=1e-5)
    assert figures["outlier_mean_frames"] == pytest.approx(13 / 3, abs=0.01)
    knee_bone = np.median(np.linalg.norm(gt[:, 5] - gt[:, 4], axis=-1))
    # the knee's bone points down the image (+y); "across" is (y, -x) of it: +x
    assert joints["l_knee"]["offset_across"] == pytest.approx(5.0 / knee_bone, abs=0.01)
    assert abs(joints["l_knee"]["offset_along"]) < 0.02 and joints["r_knee"]["offset_across"] == pytest.approx(0.0, abs=1e-3)
    assert joints["r_knee"]["std"] == pytest.approx(0.0, abs=1e-6)
    # per posture class: shares sum to 1 and the share-weighted outlier factors give the class's
    # outlier share over the detector's (wrists: 3 of 120 joint-frames, all joints: 13 of 1,020)
    posture = figures["posture"]
    assert sorted(posture) == sorted(POSTURE_CLASSES)
    for name, row in posture.items():
        assert sum(row["share"]) == pytest.approx(1.0, abs=1e-3) and len(row["jitter"]) == len(row["outliers"]) == 6
    wrist = posture["wrist"]
    assert np.dot(wrist["share"], wrist["outliers"]) == pytest.approx((3 / 120) / (13 / 1020), rel=0.01)
    assert np.dot(posture["elbow"]["share"], posture["elbow"]["outliers"]) == pytest.approx(0.0)
    # per action: the one action "Walk" holds them all (ankles: 10 of 120 joint-frames)
    assert figures["per_action"] == {"Walk": {"trunk": 0.0, "knee": 0.0, "ankle": round(10 / 120, 4), "elbow": 0.0, "wrist": 0.025}}


def test_view_offset_is_the_spread_of_each_views_constant_offset_beyond_the_preset_definitions(tmp_path):
    """Two views of one motion (actions "Walk" and "Walk 1"): the detections are the projection moved
    by h36m-sh's joint definitions, then the l_knee 6 px right in one view and 6 px left in the
    other: the views' medians differ by +-6 px from their median (0), so the robust std is
    1.4826 x 6 px / person size on that joint's x and 0 everywhere else."""
    world, gt, _ = _dataset(tmp_path, 40)
    defined = detector_joints(gt, H36M_SH_NOISE.joint_offset)
    arrays = {"Walk/world_3d": world.astype(np.float32), "Walk 1/world_3d": world.astype(np.float32)}
    for action, shift in (("Walk", 6.0), ("Walk 1", -6.0)):
        det = defined.copy()
        det[:, 5, 0] += shift  # l_knee, h36m17 index 5
        arrays[f"{action}/sh_2d/cam"] = det[:, SH_FROM_H36M].astype(np.float32)
    np.savez(tmp_path / "S1.npz", **arrays)
    figures = fit(tmp_path)
    assert figures["views"] == 2
    spread = {name: joint["view_offset"] for name, joint in figures["per_joint"].items()}
    assert spread["l_knee"][0] == pytest.approx(round(1.4826 * 6.0 / person_size(gt), 4), abs=2e-4)
    assert spread["l_knee"][1] == pytest.approx(0.0, abs=1e-4)
    assert max(abs(v) for name, pair in spread.items() if name not in ("l_knee", "neck_nose") for v in pair) < 1e-4
