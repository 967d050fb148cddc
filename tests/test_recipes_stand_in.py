"""recipes.stand_in: ground truth plus draws of a noise model, AR(1)-correlated in time."""

from types import SimpleNamespace

import numpy as np
import pytest

from d3prefine.noise import NoiseModel
from recipes.stand_in import stand_in
from tests.conftest import IMAGE_SIZE, build_sequence


def test_stand_in_errors_follow_the_noise_model():
    seq = build_sequence(3000, seed=1)
    clip = SimpleNamespace(shot=SimpleNamespace(poses_2d=seq.poses_2d, gt_3d=seq.gt_3d, camera=SimpleNamespace(resolution=IMAGE_SIZE)))
    noise = NoiseModel.isotropic(0.02, num_joints=17, layout="h36m17", still=(0,))
    gt = seq.gt_3d - seq.gt_3d[:, :1]
    for rho in (0.0, 0.9):
        error = stand_in(noise, clip, rho, np.random.default_rng(0)) - gt
        np.testing.assert_array_equal(error[:, 0], 0.0)
        assert error[:, 1:].std() == pytest.approx(0.02, rel=0.05)
        lag1 = np.corrcoef(error[1:, 5, 0], error[:-1, 5, 0])[0, 1]
        assert lag1 == pytest.approx(rho, abs=0.06)
