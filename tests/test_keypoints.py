"""Detector keypoint layouts mapped to h36m17: copies, synthesised joints, NaN, refusals."""

import numpy as np
import pytest

from d3prefine.errors import InputError
from d3prefine.keypoints import SH_16, KeypointMapping, blend, get_mapping, keypoint
from d3prefine.skeleton import H36M_17, JointLayout


def test_sh16_maps_every_joint_by_index():
    kp = np.arange(16 * 2, dtype=np.float64).reshape(16, 2)  # keypoint i at (2i, 2i + 1)
    out = SH_16.apply(kp)
    assert out.shape == (17, 2)
    expected_source = {0: 6, 1: 2, 2: 1, 3: 0, 4: 3, 5: 4, 6: 5, 7: 7, 8: 8, 10: 9, 11: 13, 12: 14, 13: 15, 14: 12, 15: 11, 16: 10}
    for target, source in expected_source.items():
        np.testing.assert_array_equal(out[target], kp[source])
    np.testing.assert_allclose(out[9], 0.7 * kp[8] + 0.3 * kp[9])  # neck_nose between thorax and head


def test_sh16_keeps_left_and_right():
    sh_mirror = [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]  # r_ankle <-> l_ankle, ...
    kp = np.random.default_rng(0).normal(size=(5, 16, 2))
    np.testing.assert_allclose(SH_16.apply(kp[:, sh_mirror]), SH_16.apply(kp)[:, H36M_17.flip_permutation])


def test_apply_keeps_leading_axes_and_limits_nan():
    kp = np.ones((3, 4, 16, 2), dtype=np.float32)
    kp[1, 2, 9] = np.nan  # the head
    out = SH_16.apply(kp)
    assert out.shape == (3, 4, 17, 2) and out.dtype == np.float32
    assert np.isnan(out[1, 2]).any(axis=-1).nonzero()[0].tolist() == [9, 10]  # neck_nose (blend) and head_top only
    with pytest.raises(InputError, match=r"sh16 keypoints must have shape \(\.\.\., 16, D\), got \(17, 2\)"):
        SH_16.apply(np.zeros((17, 2)))


def test_describe_names_what_fills_the_synthesised_joints():
    info = SH_16.describe()
    assert info["source_layout"] == "sh16" and info["target_layout"] == "h36m17"
    assert set(info["synthesised"]) == {"spine", "neck_nose", "head_top"}
    assert info["synthesised"]["neck_nose"]["from"] == {"thorax": 0.7, "head": 0.3}
    assert info["synthesised"]["head_top"]["from"] == {"head": 1.0}


def test_get_mapping_and_broken_mappings():
    assert get_mapping("sh16") is SH_16
    with pytest.raises(InputError, match=r"unknown keypoint layout 'nope' \(known: .*sh16"):
        get_mapping("nope")
    two = JointLayout(name="two", joint_names=("a", "b"), parents=(-1, 0), left_right=())
    ok = KeypointMapping("x", ("p", "q"), (keypoint(0), blend({0: 0.5, 1: 0.5}, "mid")), target=two, anchors=((1, 1),))
    np.testing.assert_allclose(ok.apply(np.array([[0.0, 0.0], [2.0, 4.0]])), [[0, 0], [1, 2]])
    for joints, message in [
        ((keypoint(0),), "1 joint sources for the 2 joints"),
        ((keypoint(0), keypoint(2)), "source index outside 0..1"),
        ((keypoint(0), blend({0: 0.5, 1: 0.6}, "x")), "sum to 1"),
        ((keypoint(0), blend({0: 1.5, 1: -0.5}, "x")), "positive"),
        ((keypoint(0), blend({0: 0.5, 1: 0.5}, "x")), "every source keypoint needs a copy or an anchor"),
    ]:
        with pytest.raises(ValueError, match=message):
            KeypointMapping("x", ("p", "q"), joints, target=two)


@pytest.mark.parametrize("name", ["coco17", "halpe26", "mediapipe33"])
def test_detector_layouts_keep_left_and_right_and_follow_their_anchors(name):
    from d3prefine.keypoints import MAPPINGS

    mapping = MAPPINGS[name]
    names = mapping.source_names

    def twin(n: str) -> str:
        for a, b in (("l_", "r_"), ("r_", "l_"), ("_left", "_right"), ("_right", "_left")):
            if n.startswith(a) or n.endswith(a):
                return n.replace(a, b, 1)
        return n

    mirror = [names.index(twin(n)) for n in names]
    kp = np.random.default_rng(1).normal(size=(4, len(names), 3))
    np.testing.assert_allclose(mapping.apply(kp[:, mirror]), mapping.apply(kp)[:, H36M_17.flip_permutation], atol=1e-12)
    assert set(mapping.describe()["synthesised"]) == {"pelvis", "spine", "thorax", "neck_nose", "head_top"}
    shift = np.zeros((4, 17, 3))
    shift[:, H36M_17.joint_names.index("l_wrist")] = 1.0
    moved = mapping.follow(kp, mapping.apply(kp), mapping.apply(kp) + shift) - kp
    followers = {names[i] for i in np.flatnonzero(moved[0, :, 0])}
    assert "l_wrist" in followers and all(n.startswith("l_") for n in followers)
    assert len(followers) == {"coco17": 1, "halpe26": 1, "mediapipe33": 4}[name]  # MediaPipe's hand points follow too
