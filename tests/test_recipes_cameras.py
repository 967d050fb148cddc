"""Camera model: hand-computed projections, quaternions, look-at, H36M file loading, random views."""

import json

import numpy as np
import pytest

from d3prefine.errors import InputError
from recipes.cameras import (
    Camera,
    ViewpointRange,
    fitted_pinhole_projection,
    load_h36m_cameras,
    look_at,
    quaternion_to_matrix,
    random_camera,
    recentre,
)


def camera(radial=(0.0, 0.0, 0.0), tangential=(0.0, 0.0), rotation=((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)), centre=(0.0, 0.0, 0.0)):
    return Camera("test", np.array([1000.0, 1000.0]), np.array([500.0, 500.0]), np.array(radial), np.array(tangential),
                  (1000, 1000), np.asarray(rotation, dtype=float), np.asarray(centre, dtype=float))


def test_pinhole_projection_by_hand():
    # x = 0.5 / 5 = 0.1, y = -0.25 / 5 = -0.05 -> (500 + 100, 500 - 50)
    np.testing.assert_allclose(camera().project(np.array([0.5, -0.25, 5.0])), [600.0, 450.0])


def test_distorted_projection_by_hand():
    point = np.array([0.5, -0.25, 5.0])
    # r2 = 0.0125, radial = 1 + 0.1 r2 = 1.00125
    np.testing.assert_allclose(camera(radial=(0.1, 0, 0)).project(point), [600.125, 449.9375], atol=1e-9)
    # x_d = 0.100125 + 2*0.01*0.1*(-0.05) + 0.02*(0.0125 + 2*0.01) = 0.100675
    # y_d = -0.0500625 + 0.01*(0.0125 + 2*0.0025) + 2*0.02*0.1*(-0.05) = -0.0500875
    np.testing.assert_allclose(camera(radial=(0.1, 0, 0), tangential=(0.01, 0.02)).project(point), [600.675, 449.9125], atol=1e-9)


def test_quaternion_wxyz():
    h = np.sqrt(0.5)
    np.testing.assert_allclose(quaternion_to_matrix([h, 0, 0, h]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix([2.0, 0, 0, 0]), np.eye(3))  # normalized


def test_look_at_extrinsics():
    # Camera 5 m behind the origin (at -y) looking along +y: world +x is image right, +z is image up.
    cam = camera(rotation=look_at(np.array([0.0, -5.0, 1.0]), np.array([0.0, 0.0, 1.0])), centre=(0.0, -5.0, 1.0))
    np.testing.assert_allclose(cam.world_to_camera(np.array([0.0, 0.0, 1.0])), [0, 0, 5], atol=1e-12)
    np.testing.assert_allclose(cam.world_to_camera(np.array([1.0, 0.0, 2.0])), [1, -1, 5], atol=1e-12)
    np.testing.assert_allclose(cam.project(cam.world_to_camera(np.array([1.0, 0.0, 2.0]))), [700, 300])
    assert np.linalg.det(cam.rotation) == pytest.approx(1.0)


def test_load_h36m_cameras_converts_units(tmp_path):
    entry = {"id": "54138969", "center": [512.5, 515.4], "focal_length": [1145.0, 1143.8], "radial_distortion": [-0.2, 0.24, -0.003],
             "tangential_distortion": [-0.001, -0.0014], "res_w": 1000, "res_h": 1002, "orientation": [1.0, 0.0, 0.0, 0.0],
             "translation": [1841.1, 4955.3, 1563.4]}
    path = tmp_path / "cams.json"
    path.write_text(json.dumps({"cameras": [entry]}))
    (cam,) = load_h36m_cameras(path)
    assert cam.id == "54138969" and cam.resolution == (1000, 1002)
    np.testing.assert_allclose(cam.centre, [1.8411, 4.9553, 1.5634])
    np.testing.assert_allclose(cam.world_to_camera(np.array([1.8411, 4.9553, 2.5634])), [0, 0, 1], atol=1e-12)
    path.write_text("{}")
    with pytest.raises(InputError, match="cams.json"):
        load_h36m_cameras(path)


def test_random_camera_looks_at_subject():
    rng = np.random.default_rng(0)
    ranges = ViewpointRange()
    for _ in range(20):
        cam = random_camera(rng, [camera()], ranges)
        assert ranges.distance[0] <= np.linalg.norm(cam.centre[:2]) <= ranges.distance[1]
        assert ranges.height[0] <= cam.centre[2] <= ranges.height[1]
        pixel = cam.project(cam.world_to_camera(np.array([0.0, 0.0, 0.85])))
        assert np.abs(pixel - 500).max() < 60  # the subject's centre is near the image centre
    a = random_camera(np.random.default_rng(3), [camera()])
    b = random_camera(np.random.default_rng(3), [camera()])
    np.testing.assert_array_equal(a.rotation, b.rotation)


def test_recentre_moves_mean_root_to_origin_and_turns():
    poses = np.zeros((4, 2, 3))
    poses[:, 0] = [[10, 20, 0.9], [11, 20, 0.9], [12, 20, 0.9], [13, 20, 0.9]]
    poses[:, 1] = poses[:, 0] + [1.0, 0, 0]
    moved = recentre(poses, root=0, yaw=np.pi / 2)
    np.testing.assert_allclose(moved[:, 0, :2].mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(moved[:, 1] - moved[:, 0], [[0, 1, 0]] * 4, atol=1e-12)  # +x turned to +y
    np.testing.assert_allclose(moved[..., 2], poses[..., 2])


def test_fitted_pinhole_projection_recovers_the_camera_from_its_detections():
    """Pixels of a pinhole (focal 1000 / 900, principal point 500 / 400), one detection missing
    and one off by 30 px: the fit over the rest gives back projections close to the exact ones."""
    points = np.array([[[0.0, 0.0, 2.0], [0.2, -0.1, 4.0], [1.0, 1.0, 5.0], [-0.5, 0.3, 3.0], [0.4, 0.6, 2.5]]])
    exact = points[..., :2] / points[..., 2:3] * [1000.0, 900.0] + [500.0, 400.0]  # (500, 400), (550, 377.5), ...
    detections = exact.copy()
    detections[0, 1] = np.nan
    np.testing.assert_allclose(fitted_pinhole_projection(points, detections), exact, atol=1e-9)
    detections[0, 3, 0] += 30.0
    fitted = fitted_pinhole_projection(points, detections)
    assert np.abs(fitted - exact).max() < 30.0 and np.abs(fitted[..., 1] - exact[..., 1]).max() < 1e-9  # y untouched
    with pytest.raises(InputError, match="too few distinct finite points"):
        fitted_pinhole_projection(points[:, :1], exact[:, :1])
