"""Windows, seeds and filmed views."""

import numpy as np

from recipes.cameras import Camera, look_at
from recipes.views import (
    ViewConfig,
    film,
    is_visible,
    random_viewpoint,
    split_windows,
    stable_seed,
)


def test_short_still_motion_is_one_window_and_too_short_is_none():
    config = ViewConfig(max_frames=300, max_extent_m=3.5, min_frames=32)
    assert split_windows(np.zeros((120, 2)), config) == [(0, 120)]
    assert split_windows(np.zeros((31, 2)), config) == []
    assert split_windows(np.zeros((700, 2)), config) == [(0, 233), (233, 467), (467, 700)]


def test_long_walk_is_cut_by_distance():
    config = ViewConfig(max_frames=300, max_extent_m=3.5, min_frames=32)
    walk = np.stack([np.linspace(0, 10, 200), np.zeros(200)], axis=1)  # 10 m in 200 frames
    windows = split_windows(walk, config)
    assert len(windows) == 3 and windows[0][0] == 0 and windows[-1][1] == 200
    assert all(np.ptp(walk[a:b, 0]) <= 3.5 for a, b in windows)
    sprint = np.stack([np.linspace(0, 30, 64), np.zeros(64)], axis=1)  # cannot fit: windows stop at min_frames
    assert split_windows(sprint, config) == [(0, 32), (32, 64)]


def test_stable_seed_is_deterministic_and_distinct():
    # pinned: the committed datasets and examples were drawn with it, whatever Python's hash seed
    assert stable_seed(0, "dataset-2_walk_active_001", 1) == 9534900000025574778
    seeds = {stable_seed(s, n, w) for s in (0, 1) for n in ("a", "b") for w in (0, 1)}
    assert len(seeds) == 8


def test_film_and_visibility():
    h36m_like = Camera("c", np.array([1150.0, 1150.0]), np.array([500.0, 500.0]), np.zeros(3), np.zeros(2), (1000, 1000),
                       look_at(np.array([0.0, -5.0, 1.5]), np.array([0.0, 0.0, 0.9])), np.array([0.0, -5.0, 1.5]))
    rng = np.random.default_rng(0)
    world = np.zeros((10, 17, 3))
    world[..., 2] = np.linspace(0.1, 1.6, 17)  # a vertical stick figure at the origin
    world += rng.normal(0, 0.05, world.shape)
    shot = film(world, h36m_like, detector_seed=5)
    assert shot.gt_3d.shape == (10, 17, 3) and shot.poses_2d.shape == (10, 17, 2)
    assert shot.in_image == 1.0 and 4.5 < shot.gt_3d[..., 2].mean() < 5.5
    np.testing.assert_array_equal(film(world, h36m_like, detector_seed=5).poses_2d, shot.poses_2d)
    config = ViewConfig()
    assert is_visible(world, h36m_like, config) == (True, 1.0)
    assert is_visible(world + [0, -5.2, 0], h36m_like, config)[0] is False  # behind the camera
    cam = random_viewpoint(world, np.random.default_rng(1), [h36m_like], config)
    assert is_visible(world, cam, config)[1] >= config.min_in_image
