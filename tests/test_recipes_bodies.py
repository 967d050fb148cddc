"""Body-build variation: bones rescaled per sequence, directions and root trajectory kept."""

import numpy as np
import pytest

from d3prefine.bones import median_bone_lengths, scale_bones
from d3prefine.skeleton import H36M_17
from recipes.bodies import BodyVariation, raise_hips, random_bone_scales, reshape_body
from recipes.build_dataset import BODIES
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


def test_raise_hips_moves_the_legs_along_the_spine():
    """Pelvis at the origin, spine 0.2 m above it: hips 32 mm below the pelvis (Bandai's definition)
    raised 32 mm sit level with it (Human3.6M's), the knees and ankles carried along, the rest kept."""
    poses = np.zeros((2, 17, 3))
    poses[:, 7] = [0.0, 0.0, 0.2]  # spine
    poses[:, 8:] = [0.0, 0.0, 0.4]
    poses[:, 1], poses[:, 4] = [-0.068, 0.0, -0.032], [0.068, 0.0, -0.032]  # right / left hip
    poses[:, 2], poses[:, 5] = [-0.068, 0.0, -0.45], [0.068, 0.0, -0.45]
    poses[:, 3], poses[:, 6] = [-0.068, 0.0, -0.85], [0.068, 0.0, -0.85]
    poses[1] = poses[1] @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # any orientation: the spine sets "up"
    raised = raise_hips(poses, 0.032)
    np.testing.assert_allclose(raised[0, [1, 4], 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(raised[:, 1:7] - poses[:, 1:7], np.broadcast_to([0.0, 0.0, 0.032], (2, 6, 3)), atol=1e-12)
    np.testing.assert_array_equal(raised[:, [0, *range(7, 17)]], poses[:, [0, *range(7, 17)]])
    np.testing.assert_allclose(raise_hips(raised, -0.032), poses, atol=1e-12)


def test_reshape_body_keeps_the_earlier_builds_and_raises_the_hips_when_asked():
    poses = synthetic_motion(10, np.random.default_rng(3))
    lengths = median_bone_lengths(poses, H36M_17)
    old = scale_bones(poses, random_bone_scales(np.random.default_rng(4), lengths, BodyVariation()), H36M_17)
    np.testing.assert_array_equal(reshape_body(np.random.default_rng(4), poses, BODIES["varied"]), old)  # same draws as before
    fixed = BodyVariation(height=(1.0, 1.0), proportion_std=0.0, hip_width_m=None, shoulder_width_m=None, hip_raise_m=(0.03, 0.03))
    np.testing.assert_allclose(reshape_body(np.random.default_rng(0), poses, fixed), raise_hips(poses, 0.03), atol=1e-12)
    assert BODIES["actors"] is None and BODIES["varied-hips"].hip_raise_m == (0.0, 0.04)
    with pytest.raises(ValueError, match="hip_raise_m"):
        BodyVariation(hip_raise_m=(0.04, 0.0))
