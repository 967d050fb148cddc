"""Body-build variation: bones rescaled per sequence, directions and root trajectory kept."""

import numpy as np
import pytest

from d3prefine.bones import median_bone_lengths, scale_bones
from d3prefine.skeleton import H36M_17
from recipes.bodies import BodyVariation, random_bone_scales
from tests.conftest import synthetic_motion


def test_reshape_scales_each_bone_and_keeps_directions_and_root():
    poses = synthetic_motion(20, np.random.default_rng(0))
    scales = np.linspace(0.5, 2.1, 17)
    scales[0] = 1.0
    out = scale_bones(poses, scales, H36M_17)
    np.testing.assert_allclose(out[:, 0], poses[:, 0])
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    old, new = poses - poses[:, parents], out - out[:, parents]
    np.testing.assert_allclose(np.linalg.norm(new, axis=-1)[:, 1:], (scales * np.linalg.norm(old, axis=-1))[:, 1:], rtol=1e-10)
    cosine = (old * new).sum(-1)[:, 1:] / (np.linalg.norm(old, axis=-1) * np.linalg.norm(new, axis=-1))[:, 1:]
    np.testing.assert_allclose(cosine, 1.0, atol=1e-12)
    np.testing.assert_allclose(scale_bones(poses, np.ones(17), H36M_17), poses, atol=1e-12)


def test_random_scales_reach_human36m_hips_and_stay_symmetric():
    poses = synthetic_motion(10, np.random.default_rng(1))  # hips 0.13 m, shoulders 0.15 m from their parents
    lengths = median_bone_lengths(poses, H36M_17)
    assert lengths[1] == pytest.approx(0.13) and lengths[0] == 0.0
    variation = BodyVariation(height=(1.0, 1.0), proportion_std=0.0, hip_width_m=(0.068, 0.068), shoulder_width_m=None)
    scales = random_bone_scales(np.random.default_rng(0), lengths, variation)
    assert median_bone_lengths(scale_bones(poses, scales, H36M_17), H36M_17)[[1, 4]] == pytest.approx([0.068, 0.068])
    np.testing.assert_allclose(scales[[2, 3, 12, 16]], 1.0)  # no other change without height or proportion spread
    rng = np.random.default_rng(2)
    draws = np.array([random_bone_scales(rng, lengths, BodyVariation()) for _ in range(300)])
    np.testing.assert_array_equal(draws[:, 2], draws[:, 5])  # thighs: left = right
    hips = draws[:, 1] * lengths[1]
    assert 0.06 <= hips.min() and hips.max() <= 0.15 and hips.max() - hips.min() > 0.07
    thighs = draws[:, 2] * lengths[2]
    assert thighs.max() / thighs.min() > 1.4  # far beyond one actor's build
    with pytest.raises(ValueError):
        BodyVariation(hip_width_m=(0.2, 0.1))
