"""Joint layouts: the shipped Human3.6M layout and the checks that refuse broken skeletons."""

import numpy as np
import pytest
import torch

from d3prefine.errors import InputError
from d3prefine.skeleton import H36M_17, JointLayout, get_layout


def test_h36m17_bones_mirror_and_sides():
    assert H36M_17.num_joints == 17 and H36M_17.root == 0
    assert len(H36M_17.bones) == 16
    assert H36M_17.bones[:3] == ((0, 1), (1, 2), (2, 3))  # pelvis -> r_hip -> r_knee -> r_ankle
    assert H36M_17.flip_permutation.tolist() == [0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13]
    assert [H36M_17.side(j) for j in (0, 1, 4, 10, 11, 16)] == ["centre", "right", "left", "centre", "left", "right"]


def test_get_layout_names_the_known_layouts():
    assert get_layout("h36m17") is H36M_17
    with pytest.raises(InputError, match=r"unknown joint layout 'coco17' \(known: h36m17\)"):
        get_layout("coco17")


@pytest.mark.parametrize(
    ("parents", "left_right", "message"),
    [
        ((-1, 0), (), "2 parents for 3 joints"),
        ((-1, -1, 1), (), "root must be the only joint without parent"),
        ((-1, 1, 1), (), "joint 1 has invalid parent 1"),
        ((-1, 0, 3), (), "joint 2 has invalid parent 3"),
        ((-1, 2, 1), (), "the parents of joint 1 form a cycle"),
        ((-1, 0, 0), ((1, 1),), "pairs of distinct joints"),
        ((-1, 0, 0), ((1, 2), (2, 1)), "pairs of distinct joints"),
        ((-1, 0, 0), ((1, 2, 0),), "pairs of distinct joints"),
        ((-1, 0, 0), ((1, 5),), "non-root joints 0..2"),
        ((-1, 0, 0), ((0, 1),), "non-root joints 0..2"),
    ],
)
def test_broken_layouts_are_refused(parents, left_right, message):
    with pytest.raises(ValueError, match=message):
        JointLayout(name="x", joint_names=("a", "b", "c"), parents=parents, left_right=left_right)


def test_a_valid_three_joint_layout_mirrors_its_pair():
    layout = JointLayout(name="x", joint_names=("a", "b", "c"), parents=(-1, 0, 0), left_right=((1, 2),))
    assert layout.flip_permutation.tolist() == [0, 2, 1]
    assert layout.bones == ((0, 1), (0, 2))


def test_mirror_negates_x_swaps_sides_and_is_its_own_inverse():
    layout = JointLayout(name="x", joint_names=("a", "b", "c"), parents=(-1, 0, 0), left_right=((1, 2),))
    poses = np.array([[[0.5, 0.0, 3.0], [1.0, 2.0, 3.0], [-4.0, 5.0, 6.0]]])  # (T=1, J=3, 3) metres
    mirrored = layout.mirror(poses)
    np.testing.assert_array_equal(mirrored, [[[-0.5, 0.0, 3.0], [4.0, 5.0, 6.0], [-1.0, 2.0, 3.0]]])
    np.testing.assert_array_equal(layout.mirror(mirrored), poses)
    assert poses[0, 1, 0] == 1.0  # the input is not modified
    flat = torch.from_numpy(poses[..., :2])  # (..., J, 2) image coordinates, as a torch tensor
    assert layout.mirror(flat).tolist() == [[[-0.5, 0.0], [4.0, 5.0], [-1.0, 2.0]]]


def test_topological_order_puts_parents_first_whatever_the_array_order():
    layout = JointLayout(name="shuffled", joint_names=("c", "root", "b"), parents=(2, -1, 1), left_right=(), root=1)
    assert layout.topological_order == (2, 0)
    assert H36M_17.topological_order == tuple(range(1, 17))
