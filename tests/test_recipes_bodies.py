"""Body-build variation: bones rescaled per sequence, directions and root trajectory kept."""

import numpy as np
import pytest

from d3prefine.bones import median_bone_lengths, scale_bones
from d3prefine.skeleton import H36M_17
from recipes.bodies import (
    BodyVariation,
    HeadVariation,
    PostureVariation,
    bend_posture,
    hold_still,
    move_spine,
    raise_hips,
    random_bone_scales,
    random_posture,
    reshape_body,
    reshape_head,
)
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


def _upright_pose() -> np.ndarray:
    """Pelvis at the origin, thorax 0.4 m above it, shoulders along x (left +x): facing -y.
    Bandai's head: the nose 35 % up the 0.2 m thorax-to-head-top line, on it."""
    poses = np.zeros((1, 17, 3))
    poses[:, 7] = [0.0, 0.0, 0.2]
    poses[:, 8] = [0.0, 0.0, 0.4]
    poses[:, 9] = [0.0, 0.0, 0.47]
    poses[:, 10] = [0.0, 0.0, 0.6]
    poses[:, 11], poses[:, 14] = [0.15, 0.0, 0.4], [-0.15, 0.0, 0.4]
    return poses


def test_reshape_head_tilts_the_head_and_puts_the_nose_in_front():
    """A 30 degree forward tilt: the head top at 0.2 (0, -sin 30, cos 30) from the thorax; the nose halfway
    up that line and 60 mm ahead of it, perpendicular to it ((0, -cos 30, -sin 30))."""
    poses = _upright_pose()
    out = reshape_head(poses, 0.5, 0.06, 30.0)
    np.testing.assert_allclose(out[0, 10], [0.0, -0.1, 0.4 + 0.2 * np.cos(np.pi / 6)], atol=1e-12)
    np.testing.assert_allclose(out[0, 9], [0.0, -0.05 - 0.06 * np.cos(np.pi / 6), 0.4 + 0.1 * np.cos(np.pi / 6) - 0.03], atol=1e-12)
    np.testing.assert_array_equal(np.delete(out, [9, 10], axis=1), np.delete(poses, [9, 10], axis=1))
    np.testing.assert_allclose(reshape_head(poses, 0.35, 0.0, 0.0), poses, atol=1e-12)  # Bandai's own head


def test_move_spine_moves_the_spine_joint_alone_backwards():
    poses = _upright_pose()
    out = move_spine(poses, 0.02)
    np.testing.assert_allclose(out[0, 7], [0.0, 0.02, 0.2], atol=1e-12)  # facing -y: back is +y
    np.testing.assert_array_equal(np.delete(out, 7, axis=1), np.delete(poses, 7, axis=1))


def test_varied_head_preset_reshapes_the_head_and_spine_before_the_bones():
    poses = synthetic_motion(10, np.random.default_rng(5))
    fixed = BodyVariation(height=(1.0, 1.0), proportion_std=0.0, hip_width_m=None, shoulder_width_m=None,
                          head=HeadVariation(nose_fraction=(0.5, 0.5), nose_forward_m=(0.05, 0.05), tilt_deg=(10.0, 10.0)),
                          spine_back_m=(0.02, 0.02))
    expected = move_spine(reshape_head(poses, 0.5, 0.05, 10.0), 0.02)
    np.testing.assert_allclose(reshape_body(np.random.default_rng(0), poses, fixed), expected, atol=1e-12)
    preset = BODIES["varied-head"]
    assert preset.hip_raise_m == BODIES["varied-hips"].hip_raise_m and preset.head == HeadVariation()
    assert preset.spine_back_m == (0.0, 0.03)
    with pytest.raises(ValueError, match="tilt_deg"):
        HeadVariation(tilt_deg=(20.0, 10.0))
    with pytest.raises(ValueError, match="spine_back_m"):
        BodyVariation(spine_back_m=(0.03, 0.0))


def test_bend_posture_seats_the_legs_and_leans_the_trunk():
    """Facing -y (left +x, up +z): hips flexed 90 degrees put the knees 0.4 m in front of the hips,
    knees flexed 90 put the ankles 0.4 m below the knees; a 90 degree lean lays the thorax forward."""
    poses = _upright_pose()
    poses[:, 1], poses[:, 4] = [-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]
    poses[:, 2], poses[:, 5] = [-0.1, 0.0, -0.4], [0.1, 0.0, -0.4]
    poses[:, 3], poses[:, 6] = [-0.1, 0.0, -0.8], [0.1, 0.0, -0.8]
    seated = bend_posture(poses, (90.0, 90.0), (90.0, 90.0), 0.0)
    np.testing.assert_allclose(seated[0, [2, 5]], [[-0.1, -0.4, 0.0], [0.1, -0.4, 0.0]], atol=1e-12)
    np.testing.assert_allclose(seated[0, [3, 6]], [[-0.1, -0.4, -0.4], [0.1, -0.4, -0.4]], atol=1e-12)
    np.testing.assert_array_equal(np.delete(seated, [2, 3, 5, 6], axis=1), np.delete(poses, [2, 3, 5, 6], axis=1))
    leaned = bend_posture(poses, (0.0, 0.0), (0.0, 0.0), 90.0)
    np.testing.assert_allclose(leaned[0, 8], [0.0, -0.4, 0.0], atol=1e-12)
    np.testing.assert_allclose(leaned[0, :7], poses[0, :7], atol=1e-12)
    one_leg = bend_posture(poses, (0.0, 45.0), (0.0, 0.0), 0.0)  # the left leg alone, straight
    np.testing.assert_allclose(one_leg[0, 6], [0.1, -0.8 / np.sqrt(2), -0.8 / np.sqrt(2)], atol=1e-12)
    np.testing.assert_allclose(one_leg[0, 3], poses[0, 3], atol=1e-12)
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    for bent in (seated, leaned, one_leg):
        np.testing.assert_allclose(np.linalg.norm(bent - bent[:, parents], axis=-1), np.linalg.norm(poses - poses[:, parents], axis=-1), atol=1e-12)


def test_varied_seated_preset_bends_a_share_of_the_sequences_after_the_spine():
    poses = synthetic_motion(10, np.random.default_rng(6))
    preset = BODIES["varied-seated"]
    assert preset.hip_raise_m == BODIES["varied-hips"].hip_raise_m and preset.posture == PostureVariation()
    always = BodyVariation(height=(1.0, 1.0), proportion_std=0.0, hip_width_m=None, shoulder_width_m=None,
                           posture=PostureVariation(share=1.0, hip_flexion_deg=(80.0, 80.0), knee_flexion_deg=(70.0, 70.0),
                                                    leg_offset_deg=0.0, lean_deg=(20.0, 20.0)))
    np.testing.assert_allclose(reshape_body(np.random.default_rng(0), poses, always),
                               bend_posture(poses, (80.0, 80.0), (70.0, 70.0), 20.0), atol=1e-12)
    never = BodyVariation(height=(1.0, 1.0), proportion_std=0.0, hip_width_m=None, shoulder_width_m=None, posture=PostureVariation(share=0.0))
    np.testing.assert_allclose(reshape_body(np.random.default_rng(0), poses, never), poses, atol=1e-12)
    bent = [not np.allclose(random_posture(np.random.default_rng(seed), poses, PostureVariation()), poses) for seed in range(200)]
    assert 0.3 < np.mean(bent) < 0.5  # share 0.4
    with pytest.raises(ValueError, match="knee_flexion_deg"):
        PostureVariation(knee_flexion_deg=(90.0, 10.0))
    with pytest.raises(ValueError, match="share"):
        PostureVariation(share=1.5)


def test_hold_still_fixes_the_legs_in_the_pelvis_frame_and_the_root():
    """Two frames facing -y: the right leg hangs straight down, then points straight forward, and the
    body moves 0.2 m along x. Held still, both frames point that leg halfway, 45 degrees down and forward
    ((0, -1, -1) / sqrt 2 from the hip), and the root sits at its mean; the straight left leg and the
    bone lengths stay."""
    poses = np.repeat(_upright_pose(), 2, axis=0)
    poses[:, 1], poses[:, 4] = [-0.1, 0.0, 0.0], [0.1, 0.0, 0.0]
    poses[:, 5], poses[:, 6] = [0.1, 0.0, -0.4], [0.1, 0.0, -0.8]
    poses[0, 2], poses[0, 3] = [-0.1, 0.0, -0.4], [-0.1, 0.0, -0.8]
    poses[1, 2], poses[1, 3] = [-0.1, -0.4, 0.0], [-0.1, -0.8, 0.0]
    poses[1] += [0.2, 0.0, 0.0]
    held = hold_still(poses, 1.0)
    np.testing.assert_allclose(held[:, 0], [[0.1, 0.0, 0.0], [0.1, 0.0, 0.0]], atol=1e-12)
    d = 0.4 / np.sqrt(2)
    for t in range(2):
        np.testing.assert_allclose(held[t, [2, 3]], [[0.0, -d, -d], [0.0, -2 * d, -2 * d]], atol=1e-12)
        np.testing.assert_allclose(held[t, 4:7], [[0.2, 0.0, 0.0], [0.2, 0.0, -0.4], [0.2, 0.0, -0.8]], atol=1e-12)
    np.testing.assert_allclose(hold_still(poses, 0.0), poses, atol=1e-12)
    parents = np.maximum(np.asarray(H36M_17.parents), 0)
    walk = synthetic_motion(30, np.random.default_rng(3))
    for stillness in (0.5, 1.0):
        out = hold_still(walk, stillness)
        np.testing.assert_allclose(np.linalg.norm(out - out[:, parents], axis=-1), np.linalg.norm(walk - walk[:, parents], axis=-1), atol=1e-12)
    assert np.ptp(hold_still(walk, 1.0)[:, 0], axis=0).max() < 1e-12 < np.ptp(walk[:, 0], axis=0).max()


def test_varied_still_preset_holds_the_bent_sequences_still_and_leaves_earlier_presets_alone():
    poses = synthetic_motion(10, np.random.default_rng(7))
    posture = BODIES["varied-still"].posture
    assert posture.share == 0.6 and posture.knee_flexion_deg == (0.0, 150.0) and posture.stillness == (0.5, 1.0)
    always = PostureVariation(share=1.0, hip_flexion_deg=(80.0, 80.0), knee_flexion_deg=(70.0, 70.0), leg_offset_deg=0.0,
                              lean_deg=(20.0, 20.0), stillness=(1.0, 1.0))
    np.testing.assert_allclose(random_posture(np.random.default_rng(0), poses, always),
                               bend_posture(hold_still(poses, 1.0), (80.0, 80.0), (70.0, 70.0), 20.0), atol=1e-12)
    # without stillness nothing more is drawn: the generator ends where it did before the field existed
    rng = np.random.default_rng(1)
    random_posture(rng, poses, PostureVariation(share=1.0))
    reference = np.random.default_rng(1)
    reference.uniform(size=8)  # share, hip, knee, the 2 x 2 offsets, lean
    assert rng.uniform() == reference.uniform()
    with pytest.raises(ValueError, match="stillness"):
        PostureVariation(stillness=(0.5, 1.5))
