"""Window layout and overlap-add blending."""

import numpy as np
import pytest

from d3prefine.windows import OverlapAdd, blend_weights, frame_indices, window_starts


@pytest.mark.parametrize(("frames", "expected"), [(27, [0]), (30, [0, 3]), (60, [0, 18, 33]), (10, [-8])])
def test_window_starts_cover_the_sequence(frames, expected):
    assert window_starts(frames, 27, 18).tolist() == expected


def test_short_sequences_are_edge_padded():
    assert frame_indices(-2, 3, 7).tolist() == [0, 0, 0, 1, 2, 2, 2]


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        window_starts(0, 27, 9)
    with pytest.raises(ValueError):
        window_starts(10, 27, 28)


def test_blend_weights_are_positive_and_symmetric():
    w = blend_weights(9)
    assert np.all(w > 0) and np.allclose(w, w[::-1]) and w.argmax() == 4


@pytest.mark.parametrize("frames", [5, 27, 61, 200])
def test_overlap_add_reproduces_a_signal_cut_into_windows(frames):
    signal = np.sin(np.arange(frames) / 7.0)[:, None] * np.arange(1, 4)
    blend = OverlapAdd(frames, (3,), 27)
    for start in window_starts(frames, 27, 18):
        blend.add(int(start), signal[frame_indices(int(start), frames, 27)])
    np.testing.assert_allclose(blend.result(), signal, atol=1e-6)


def test_overlap_add_cross_fades_disagreeing_windows():
    blend = OverlapAdd(30, (), 27)
    blend.add(0, np.zeros(27))
    blend.add(3, np.ones(27))
    out = blend.result()
    assert out[0] == 0 and out[-1] == 1 and np.all(np.diff(out) >= 0)


def test_uncovered_frames_raise():
    blend = OverlapAdd(40, (), 27)
    blend.add(0, np.zeros(27))
    with pytest.raises(RuntimeError):
        blend.result()
