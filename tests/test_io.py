"""Pose file reading and writing: round trips, atomic writes, output protection, gap filling."""

from __future__ import annotations

import dataclasses
import errno
import os

import h5py
import numpy as np
import pytest

from d3prefine import io
from d3prefine.errors import InputError, OutputError
from d3prefine.io import PoseSequence, SequenceMetadata, fill_gaps, load_metadata, load_poses, save_poses

SUFFIXES = [".npz", ".h5", ".hdf5"]


def assert_same(a: PoseSequence, b: PoseSequence) -> None:
    """Every field equal; arrays bit-identical with the same dtype."""
    for field in dataclasses.fields(PoseSequence):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
            assert left.dtype == right.dtype == np.float32, field.name
            np.testing.assert_array_equal(left, right, err_msg=field.name)
        else:
            assert left == right and type(left) is type(right), field.name


def full_sequence(make_sequence, name: str = "walk", seed: int = 0) -> PoseSequence:
    seq = make_sequence(20, seed=seed, name=name)
    return dataclasses.replace(
        seq,
        poses_3d_refined=seq.gt_3d + np.float32(0.001),
        uncertainty=np.full(seq.gt_3d.shape[:2], 0.004, dtype=np.float32),
        provenance={"tool": "d3prefine", "steps": 5, "nested": {"list": [1, 2.5, "x"], "none": None}},
    )


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_single_sequence_round_trip(tmp_path, make_sequence, suffix):
    seq = full_sequence(make_sequence)
    path = tmp_path / f"out{suffix}"
    save_poses(path, [seq])
    (loaded,) = load_poses(path)
    assert_same(loaded, seq)
    assert sorted(os.listdir(tmp_path)) == [path.name]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_multi_sequence_round_trip_keeps_order(tmp_path, make_sequence, suffix):
    sequences = [full_sequence(make_sequence, name, seed) for seed, name in enumerate(["zeta", "alpha", "mid"])]
    sequences[1] = dataclasses.replace(sequences[1], fps=None, image_size=None, provenance={},
                                       poses_2d=np.zeros_like(sequences[1].poses_2d))
    path = tmp_path / f"many{suffix}"
    save_poses(path, sequences)
    loaded = load_poses(path)
    assert [s.name for s in loaded] == ["zeta", "alpha", "mid"]
    for got, want in zip(loaded, sequences, strict=True):
        assert_same(got, want)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("count", [1, 3])
def test_metadata_is_read_without_the_pose_arrays(tmp_path, make_sequence, suffix, count):
    sequences = [full_sequence(make_sequence, name, seed) for seed, name in enumerate(["zeta", "alpha", "mid"][:count])]
    sequences[0] = dataclasses.replace(sequences[0], provenance={"estimator": "TemporalLifter", "seed": 3})
    sequences[0].poses_3d[2, 5] = np.nan  # invalid arrays: load_poses refuses the file, load_metadata never reads them
    path = tmp_path / f"meta{suffix}"
    save_poses(path, sequences)
    with pytest.raises(InputError, match="NaN"):
        load_poses(path)
    got = load_metadata(path)
    assert got == [SequenceMetadata(s.name, s.image_size, s.fps, s.units, s.joint_layout, s.provenance) for s in sequences]
    assert got[0].provenance == {"estimator": "TemporalLifter", "seed": 3} and got[0].fps == 30.0


def test_metadata_is_checked_and_bad_files_refused(tmp_path, sequence):
    path = tmp_path / "bad.npz"
    np.savez(path, poses_2d=sequence.poses_2d, poses_3d=sequence.poses_3d, units=np.array("mm"))
    with pytest.raises(InputError, match="expected 'm'"):
        load_metadata(path)
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not a valid HDF5 file"):
        load_metadata(tmp_path / "broken.h5")
    with pytest.raises(InputError, match="file not found"):
        load_metadata(tmp_path / "missing.npz")


def test_npz_layout_has_no_object_arrays(tmp_path, sequence):
    path = tmp_path / "walk.npz"
    save_poses(path, [sequence])
    with np.load(path, allow_pickle=False) as npz:
        members = {key: npz[key] for key in npz.files}
    assert set(members) == {"name", "poses_2d", "poses_3d", "gt_3d", "fps", "units", "joint_layout", "image_size", "provenance"}
    assert all(array.dtype.kind != "O" for array in members.values())
    assert members["units"].shape == () and str(members["units"]) == "m"
    assert members["image_size"].tolist() == [1000, 1000]


def test_multi_sequence_npz_uses_prefixed_keys(tmp_path, make_sequence):
    path = tmp_path / "two.npz"
    save_poses(path, [make_sequence(5, name="a"), make_sequence(5, name="b", seed=1)])
    with np.load(path, allow_pickle=False) as npz:
        assert {"a/poses_3d", "b/poses_3d", "a/fps", "b/provenance"} <= set(npz.files)
        assert not any("/" not in key for key in npz.files)


def test_hdf5_has_one_group_per_sequence_with_attributes(tmp_path, make_sequence):
    path = tmp_path / "two.h5"
    save_poses(path, [make_sequence(5, name="a"), make_sequence(5, name="b", seed=1)])
    with h5py.File(path, "r") as handle:
        assert list(handle) == ["a", "b"]
        assert handle["a"]["poses_3d"].shape == (5, 17, 3)
        assert handle["a"].attrs["units"] == "m" and handle["a"].attrs["fps"] == 30.0


def test_hdf5_with_top_level_datasets_is_one_sequence(tmp_path, sequence):
    path = tmp_path / "flat.hdf5"
    with h5py.File(path, "w") as handle:
        handle["poses_2d"] = sequence.poses_2d.astype(np.float64)
        handle["poses_3d"] = sequence.poses_3d
        handle.attrs["image_size"] = np.array([1000.0, 1000.0])  # integral floats are accepted
    (loaded,) = load_poses(path)
    assert loaded.name == "flat" and loaded.image_size == (1000, 1000) and loaded.fps is None
    assert loaded.poses_2d.dtype == np.float32
    np.testing.assert_array_equal(loaded.poses_3d, sequence.poses_3d)


def test_top_level_npz_without_name_is_named_after_the_file(tmp_path, sequence):
    path = tmp_path / "plain.npz"
    np.savez(path, poses_2d=sequence.poses_2d, poses_3d=sequence.poses_3d, image_size=np.array([1000, 1000]))
    (loaded,) = load_poses(path)
    assert (loaded.name, loaded.units, loaded.joint_layout, loaded.provenance) == ("plain", "m", "h36m17", {})


def test_refuses_to_overwrite_existing_file(tmp_path, sequence):
    path = tmp_path / "out.npz"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match=r"already exists \(use --overwrite"):
        save_poses(path, [sequence])
    assert path.read_bytes() == b"keep me"
    assert os.listdir(tmp_path) == ["out.npz"]
    save_poses(path, [sequence], overwrite=True)
    assert_same(load_poses(path)[0], sequence)


@pytest.mark.parametrize("overwrite", [False, True])
def test_refuses_to_write_over_an_input(tmp_path, sequence, overwrite):
    source = tmp_path / "in.npz"
    save_poses(source, [sequence])
    before = source.read_bytes()
    link = tmp_path / "link.npz"
    link.symlink_to(source)
    hard = tmp_path / "hard.npz"
    os.link(source, hard)
    for target, inputs in [(source, [source]), (tmp_path / "sub" / ".." / "in.npz", [str(source)]),
                           (link, [source]), (hard, [source]), (source, [link])]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="refusing to write over input file"):
            save_poses(target, [sequence], overwrite=overwrite, inputs=inputs)
    assert source.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["hard.npz", "in.npz", "link.npz", "sub"]


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_failed_write_leaves_nothing_behind(tmp_path, sequence, monkeypatch, suffix):
    writer = "_write_npz" if suffix == ".npz" else "_write_hdf5"
    real = getattr(io, writer)

    def write_then_fail(path, sequences):
        real(path, sequences)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(io, writer, write_then_fail)
    target = tmp_path / f"out{suffix}"
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_poses(target, [sequence])
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, sequence, monkeypatch):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")

    def fail(path, sequences):
        path.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "_write_npz", fail)
    with pytest.raises(OutputError, match="writing failed"):
        save_poses(target, [sequence], overwrite=True)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.npz"]


def test_missing_directory_and_unwritable_targets(tmp_path, sequence):
    with pytest.raises(OutputError, match="does not exist"):
        save_poses(tmp_path / "nope" / "out.npz", [sequence])
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="does not exist"):
        save_poses(tmp_path / "file" / "out.npz", [sequence])
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(OutputError, match="is a directory"):
        save_poses(tmp_path / "dir.npz", [sequence], overwrite=True)
    with pytest.raises(OutputError, match="unknown file suffix '.csv'"):
        save_poses(tmp_path / "out.csv", [sequence])


def test_unwritable_directory(tmp_path, sequence, monkeypatch):
    real_open = os.open

    def refuse_new_files(path, flags, *args):  # a directory without write permission, even for root
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse_new_files)
    with pytest.raises(OutputError, match=r"out.npz: cannot write in .* \(Permission denied\)$"):
        save_poses(tmp_path / "out.npz", [sequence])
    assert list(tmp_path.iterdir()) == []


def test_refuses_invalid_sequences(tmp_path, sequence):
    target = tmp_path / "out.npz"
    cases = [
        ([], "no sequences"),
        ([sequence, sequence], "invalid sequence name 'walk'"),
        ([dataclasses.replace(sequence, name="a/b")], "invalid sequence name 'a/b'"),
        ([dataclasses.replace(sequence, units="mm")], "expected 'm'"),
        ([dataclasses.replace(sequence, poses_3d=sequence.poses_3d * 1000)], "looks like millimetres"),
        ([dataclasses.replace(sequence, provenance={"x": object()})], "JSON-serializable"),
    ]
    for sequences, message in cases:
        with pytest.raises(OutputError, match=message):
            save_poses(target, sequences)
    assert os.listdir(tmp_path) == []


def test_output_file_permissions_follow_umask(tmp_path, sequence):
    path = tmp_path / "out.npz"
    old = os.umask(0o022)
    try:
        save_poses(path, [sequence])
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_nan_needs_allow_nan_and_fill_gaps_interpolates(tmp_path, sequence):
    poses_3d = sequence.poses_3d.copy()
    poses_3d[3:5, 2, 0] = np.nan  # interior gap of 2 frames
    poses_3d[0, 7, :] = np.nan  # leading gap of 1 frame, all coordinates
    poses_2d = sequence.poses_2d.copy()
    poses_2d[10, 4, 1] = np.nan
    path = tmp_path / "gaps.npz"
    save_poses(path, [dataclasses.replace(sequence, poses_3d=poses_3d, poses_2d=poses_2d)])
    with pytest.raises(InputError, match=r"key 'poses_2d': expected finite values, got 1 NaN of 1088"):
        load_poses(path)
    (loaded,) = load_poses(path, allow_nan=True)
    filled, count = fill_gaps(loaded, max_gap=2)
    assert count == 6
    assert not np.isnan(filled.poses_3d).any() and not np.isnan(filled.poses_2d).any()
    a, b = poses_3d[2, 2, 0], poses_3d[5, 2, 0]
    np.testing.assert_allclose(filled.poses_3d[3:5, 2, 0], [a + (b - a) / 3, a + 2 * (b - a) / 3], rtol=1e-6)
    np.testing.assert_array_equal(filled.poses_3d[0, 7], poses_3d[1, 7])
    np.testing.assert_allclose(filled.poses_2d[10, 4, 1], (poses_2d[9, 4, 1] + poses_2d[11, 4, 1]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(filled.poses_3d[6:], poses_3d[6:])
    assert np.isnan(loaded.poses_3d).sum() == 5  # the input sequence is unchanged
    assert fill_gaps(filled, max_gap=0)[1] == 0


def test_fill_gaps_rejects_long_and_total_gaps(sequence):
    poses_3d = sequence.poses_3d.copy()
    poses_3d[10:14, 3, 1] = np.nan
    message = r"NaN gap of 4 frames at frames 10-13 \(joint 3 'r_ankle', coordinate y\), longer than the longest gap to fill \(3 frames\)"
    with pytest.raises(InputError, match=message):
        fill_gaps(dataclasses.replace(sequence, poses_3d=poses_3d), max_gap=3)
    assert fill_gaps(dataclasses.replace(sequence, poses_3d=poses_3d), max_gap=4)[1] == 4
    poses_3d[:, 5, 2] = np.nan
    with pytest.raises(InputError, match=r"all 32 frames are NaN \(joint 5 'l_knee', coordinate z\)"):
        fill_gaps(dataclasses.replace(sequence, poses_3d=poses_3d), max_gap=100)
    with pytest.raises(ValueError):
        fill_gaps(sequence, max_gap=-1)


def test_the_longest_file_names_can_be_written(tmp_path, sequence):
    target = tmp_path / ("n" * 251 + ".npz")  # 255 bytes, the usual limit; the temporary name must fit too
    save_poses(target, [sequence])
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    with pytest.raises(OutputError, match=r"cannot write \(File name too long\)"):
        save_poses(tmp_path / ("n" * 252 + ".npz"), [sequence])
