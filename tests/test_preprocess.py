"""Screen normalization and root-relative poses: golden values on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from d3prefine.preprocess import normalize_screen, root_relative


def test_normalize_screen_videopose3d_convention():
    pixels = np.array([[0.0, 0.0], [1000.0, 500.0], [500.0, 250.0], [250.0, 125.0]], dtype=np.float32)
    normalized = normalize_screen(pixels, (1000, 500))
    np.testing.assert_allclose(normalized, [[-1.0, -0.5], [1.0, 0.5], [0.0, 0.0], [-0.5, -0.25]])
    assert normalized.dtype == np.float32


def test_normalize_screen_keeps_leading_axes_and_promotes_integers():
    pixels = np.full((2, 3, 17, 2), 640, dtype=np.int64)
    normalized = normalize_screen(pixels, (1280, 720))
    assert normalized.shape == (2, 3, 17, 2) and normalized.dtype == np.float64
    np.testing.assert_allclose(normalized[0, 0, 0], [0.0, 2 * 640 / 1280 - 720 / 1280])


@pytest.mark.parametrize("poses, size", [(np.zeros((4, 3)), (10, 10)), (np.zeros((4, 2)), (0, 10))])
def test_normalize_screen_rejects_bad_input(poses, size):
    with pytest.raises(ValueError):
        normalize_screen(poses, size)


def test_root_relative():
    poses = np.array([[[1.0, 2.0, 3.0], [2.0, 2.0, 5.0], [0.0, 0.0, 0.0]]])  # (T=1, J=3, 3)
    np.testing.assert_array_equal(root_relative(poses, 0), [[[0, 0, 0], [1, 0, 2], [-1, -2, -3]]])
    np.testing.assert_array_equal(root_relative(poses, 2), poses)
    assert root_relative(poses[0], 1)[1].tolist() == [0.0, 0.0, 0.0]  # (J, 3) without a time axis
