"""BVH parser and forward kinematics on tiny hand-written files."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from d3prefine.bvh import BvhSkeleton, format_bvh
from d3prefine.errors import InputError
from recipes.bvh import forward_kinematics, load_bvh, parse_bvh

SIX = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
CHAIN_TEXT = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT arm
  {
    OFFSET 10 0 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT hand
    {
      OFFSET 0 0 5
      CHANNELS 3 Zrotation Xrotation Yrotation
      End Site
      {
        OFFSET 0 0 1
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0333333
0 0 0 0 0 0 0 0 0 0 0 0
1 2 3 90 0 0 0 0 90 0 0 0
"""


def test_parse_hierarchy_and_channels():
    skeleton, values, frame_time = parse_bvh(CHAIN_TEXT)
    assert skeleton.joint_names == ("root", "arm", "hand")
    assert skeleton.parents.tolist() == [-1, 0, 1]
    np.testing.assert_allclose(skeleton.offsets, [[0, 0, 0], [10, 0, 0], [0, 0, 5]])
    assert skeleton.channels[1] == ("Zrotation", "Xrotation", "Yrotation")
    assert values.shape == (2, 12)
    assert frame_time == pytest.approx(1 / 30, rel=1e-5)


def test_forward_kinematics_hand_checked(tmp_path):
    path = tmp_path / "chain.bvh"
    path.write_text(CHAIN_TEXT)
    motion = load_bvh(path)
    assert motion.fps == pytest.approx(30.0, rel=1e-5)
    # Rest pose: offsets add up.
    np.testing.assert_allclose(motion.positions[0], [[0, 0, 0], [10, 0, 0], [10, 0, 5]], atol=1e-9)
    # Frame 1: root moved to (1, 2, 3) and turned 90 deg about z; arm turned 90 deg about y.
    # arm = t + Rz90 (10, 0, 0) = (1, 12, 3); hand = t + Rz90 ((10, 0, 0) + Ry90 (0, 0, 5)) = (1, 17, 3).
    np.testing.assert_allclose(motion.positions[1], [[1, 2, 3], [1, 12, 3], [1, 17, 3]], atol=1e-9)


def test_euler_channels_are_intrinsic_in_listed_order():
    # "Zrotation Xrotation" both 90: R = Rz90 @ Rx90 maps the child offset (0, 1, 0) to (0, 0, 1)
    # (the extrinsic reading Rx90 @ Rz90 would give (-1, 0, 0)).
    text = CHAIN_TEXT.replace("OFFSET 10 0 0", "OFFSET 0 1 0").replace(
        "1 2 3 90 0 0 0 0 90 0 0 0", "0 0 0 90 90 0 0 0 0 0 0 0"
    )
    skeleton, values, _ = parse_bvh(text)
    np.testing.assert_allclose(forward_kinematics(skeleton, values)[1, 1], [0, 0, 1], atol=1e-9)


def test_position_channels_replace_offsets():
    skeleton = BvhSkeleton(("a", "b"), np.array([-1, 0]), np.array([[5.0, 5, 5], [1.0, 0, 0]]), (SIX, SIX))
    values = np.zeros((1, 12))
    values[0, :3] = [0, 0, 0]  # root at the origin despite its offset
    values[0, 6:9] = [0, 2, 0]  # bone translation (0, 2, 0) instead of the offset (1, 0, 0)
    np.testing.assert_allclose(forward_kinematics(skeleton, values)[0], [[0, 0, 0], [0, 2, 0]])


def test_bone_lengths_constant_under_random_rotations(tmp_path):
    rng = np.random.default_rng(0)
    names = ("hips", "spine", "head", "leg", "foot")
    parents = np.array([-1, 0, 1, 0, 3])
    offsets = np.array([[0, 90, 0], [0, 20, 0], [0, 30, 0], [10, -5, 0], [0, -40, 2]], dtype=float)
    rot = ("Zrotation", "Xrotation", "Yrotation")
    channels = (SIX, rot, rot, rot, rot)
    skeleton = BvhSkeleton(names, parents, offsets, channels)
    values = rng.uniform(-180, 180, size=(50, skeleton.num_channels))
    values[:, :3] = rng.normal(0, 100, size=(50, 3))
    path = tmp_path / "random.bvh"
    path.write_text(format_bvh(skeleton, values, 1 / 30))
    motion = load_bvh(path)
    assert motion.skeleton.joint_names == names
    lengths = np.linalg.norm(motion.positions[:, 1:] - motion.positions[:, parents[1:]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(offsets[1:], axis=-1), lengths.shape), rtol=1e-6)
    # The global rotation really varies: the head is not always above the hips.
    assert np.ptp(motion.positions[:, 2, 1] - motion.positions[:, 0, 1]) > 30
    # And FK agrees with a direct composition for the spine of frame 0.
    r0 = Rotation.from_euler("ZXY", values[0, 3:6], degrees=True).as_matrix()
    np.testing.assert_allclose(motion.positions[0, 1], values[0, :3] + r0 @ offsets[1], atol=1e-4)


def test_empty_and_malformed_files_raise(tmp_path):
    empty = tmp_path / "empty.bvh"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_bvh(empty)
    truncated = tmp_path / "short.bvh"
    truncated.write_text(CHAIN_TEXT.rsplit("\n", 2)[0] + "\n")  # one frame fewer than announced
    with pytest.raises(InputError, match="expected 2 frames x 12 channels"):
        load_bvh(truncated)
    with pytest.raises(InputError, match="not a BVH"):
        parse_bvh("hello")
    with pytest.raises(InputError, match="no joint 'Nose'"):
        parse_bvh(CHAIN_TEXT)[0].index("Nose")
