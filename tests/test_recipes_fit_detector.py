"""recipes.fit_detector on a hand-built 'dataset': one camera, detections = projection + known errors."""

import json

import numpy as np
import pytest

from recipes.detector import POSTURE_CLASSES, person_size
from recipes.fit_detector import fit
from tests.conftest import synthetic_motion

# h36m17 joint of every sh16 keypoint (sh16: r_ankle, r_knee, r_hip, l_hip, l_knee, l_ankle, pelvis,
# spine, thorax, head, r_wrist, r_elbow, r_shoulder, l_shoulder, l_elbow, l_wrist)
SH_FROM_H36M = [3, 2, 1, 4, 5, 6, 0, 7, 8, 10, 16, 15, 14, 11, 12, 13]


def test_fit_recovers_known_offsets_swaps_and_outliers(tmp_path):
    frames = 60
    world = synthetic_motion(frames, np.random.default_rng(0))  # camera frame = world frame below
    camera = {"R": np.eye(3).tolist(), "T": [0.0, 0.0, 0.0], "f": [1145.0, 1145.0], "c": [500.0, 500.0],
              "k": [0.0, 0.0, 0.0], "p": [0.0, 0.0], "width": 1000, "height": 1000}
    (tmp_path / "cameras.json").write_text(json.dumps({"S1": {"cam": camera}}))
    gt = 1145.0 * world[..., :2] / world[..., 2:] + 500.0
    sh = gt[:, SH_FROM_H36M].copy()
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
