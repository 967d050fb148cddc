"""``d3prefine plot`` and :mod:`d3prefine.plot`: frame choice, rendered PNG/GIF files, output rules."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

from PIL import Image

from d3prefine import plot
from d3prefine.cli import app
from d3prefine.io import PoseSequence, save_poses

runner = CliRunner()
TAB_BLUE, TAB_RED = (31, 119, 180), (214, 39, 40)  # left and right bones


def refined(seq: PoseSequence, offset_mm: np.ndarray | float = 5.0) -> PoseSequence:
    """``seq`` with ``poses_3d_refined`` = ``poses_3d`` with every non-root joint moved along x by
    ``offset_mm`` (one value, or one per frame ``(T,)``)."""
    moved = seq.poses_3d.copy()
    moved[:, 1:, 0] += (np.broadcast_to(offset_mm, (seq.num_frames,)) / 1000.0)[:, None].astype(np.float32)
    return dataclasses.replace(seq, poses_3d_refined=moved)


def write(tmp_path, *sequences: PoseSequence, name: str = "walk.npz"):
    path = tmp_path / name
    save_poses(path, list(sequences))
    return path


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def count_colour(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(rgb.astype(int) - colour).max(axis=-1) <= 10).sum())


def test_select_frames_takes_largest_corrections_apart_in_time(make_sequence):
    offsets = np.linspace(1.0, 3.0, 40)  # small corrections growing over time
    offsets[[10, 11, 30]] = [30.0, 25.0, 20.0]
    seq = refined(make_sequence(40), offsets)
    assert plot.frame_corrections(seq)[[0, 10]] * 1000 == pytest.approx(np.array([1.0, 30.0]) * 16 / 17, abs=1e-3)
    # Frame 11 (second largest) lies within 40 // (4 * count) frames of frame 10 and is skipped.
    assert plot.select_frames(seq, 2).tolist() == [10, 30]
    assert plot.select_frames(seq, 3).tolist() == [10, 30, 39]
    assert plot.select_frames(seq, 100).tolist() == list(range(40))


def test_select_frames_evenly_spaced_without_refinement(make_sequence):
    seq = make_sequence(24)
    assert plot.select_frames(seq, 4).tolist() == [0, 8, 15, 23]
    assert plot.select_frames(seq, 1).tolist() == [0]


def test_cli_writes_a_full_size_figure_with_coloured_skeletons(tmp_path, make_sequence):
    path = write(tmp_path, refined(make_sequence(24)))
    result = runner.invoke(app, ["plot", "--json", "--frames", "3", str(path)])
    assert result.exit_code == 0, result.output
    png = tmp_path / "walk.png"
    assert json.loads(result.stdout) == {
        "figures": [{"input": str(path), "sequence": "walk", "outputs": [str(png)]}],
        "failed": [],
    }
    rgb = pixels(png)
    assert rgb.shape == (plot.FIGURE_SIZE_PX[1], plot.FIGURE_SIZE_PX[0], 3)
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100  # far from blank
    assert count_colour(rgb, TAB_BLUE) > 300 and count_colour(rgb, TAB_RED) > 300  # left and right bones
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed


def test_gif_shows_every_array_side_by_side_and_is_subsampled(tmp_path, make_sequence, monkeypatch):
    monkeypatch.setattr(plot, "MAX_GIF_FRAMES", 5)
    path = write(tmp_path, refined(make_sequence(24)))
    out_dir = tmp_path / "figures"
    result = runner.invoke(app, ["plot", "--gif", "--frames", "2", "--out-dir", str(out_dir), str(path)])
    assert result.exit_code == 0, result.output
    with Image.open(out_dir / "walk.gif") as gif:
        assert gif.n_frames == 5  # frames 0, 5, 10, 15, 20 of 24
        assert gif.size == (3 * plot.GIF_PANEL_PX[0], plot.GIF_PANEL_PX[1])  # input, refined, ground truth
        assert gif.info["duration"] == pytest.approx(1000 * 5 / 30, abs=10)  # real time at 30 fps
        first = np.asarray(gif.convert("RGB"))
        gif.seek(4)
        last = np.asarray(gif.convert("RGB"))
    assert count_colour(first, TAB_BLUE) > 50 and not np.array_equal(first, last)
    assert (out_dir / "walk.png").is_file()


def test_without_ground_truth_the_strip_fills_the_figure(tmp_path, make_sequence):
    seq = dataclasses.replace(make_sequence(24), gt_3d=None)
    figure = plot.summary_figure(seq, frames=3)
    assert [ax.name for ax in figure.axes] == ["3d"] * 3  # one row of skeletons, no error panels
    corrected = plot.summary_figure(refined(seq), frames=3)
    assert [ax.name for ax in corrected.axes] == ["3d"] * 6 + ["rectilinear"] * 3  # input and refined rows
    assert corrected.axes[-1].get_ylabel() == "correction per joint (mm)"
    with_gt = plot.summary_figure(refined(make_sequence(24)), frames=3)
    assert with_gt.axes[-1].get_ylabel() == "MPJPE per joint (mm)"

    result = runner.invoke(app, ["plot", "--frames", "3", str(write(tmp_path, seq))])
    assert result.exit_code == 0, result.output
    assert pixels(tmp_path / "walk.png").shape == (1000, 1600, 3)


def test_refuses_to_overwrite_without_the_flag(tmp_path, make_sequence):
    path = write(tmp_path, make_sequence(24))
    png = tmp_path / "walk.png"
    png.write_bytes(b"keep")
    result = runner.invoke(app, ["plot", "--gif", str(path)])
    assert result.exit_code == 1
    assert "already exists" in result.output and "--overwrite" in result.output
    assert png.read_bytes() == b"keep" and not (tmp_path / "walk.gif").exists()
    result = runner.invoke(app, ["plot", "--overwrite", "--frames", "2", str(path)])
    assert result.exit_code == 0, result.output
    assert pixels(png).shape == (1000, 1600, 3)


def test_several_sequences_get_their_own_files(tmp_path, make_sequence):
    path = write(tmp_path, make_sequence(24, name="walk"), make_sequence(24, name="run", seed=1), name="session.h5")
    out = tmp_path / "custom.png"
    result = runner.invoke(app, ["plot", "--json", "--max-sequences", "1", "--frames", "2", "-o", str(out), str(path)])
    assert result.exit_code == 0, result.output
    (figure,) = json.loads(result.stdout)["figures"]
    assert figure == {"input": str(path), "sequence": "walk", "outputs": [str(tmp_path / "custom_walk.png")]}
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["custom_walk.png"]  # not custom_run.png


def test_output_option_errors(tmp_path, make_sequence):
    a = write(tmp_path, make_sequence(24), name="a.npz")
    b = write(tmp_path, make_sequence(24), name="b.npz")
    assert runner.invoke(app, ["plot", "-o", str(tmp_path / "x.png"), str(a), str(b)]).exit_code == 2
    result = runner.invoke(app, ["plot", "-o", str(tmp_path / "x.jpg"), str(a)])
    assert result.exit_code == 1 and "expected a .png file name" in result.output
    (tmp_path / "other").mkdir()
    twin = write(tmp_path / "other", make_sequence(24), name="a.h5")
    result = runner.invoke(app, ["plot", "--out-dir", str(tmp_path / "figures"), str(a), str(twin)])
    assert result.exit_code == 2 and "would both write" in " ".join(result.output.replace("│", " ").split())


def test_plot_never_draws_two_inputs_into_one_figure(tmp_path, make_sequence):
    save_poses(tmp_path / "m.npz", [dataclasses.replace(make_sequence(24), name=name) for name in ("b", "c")])  # m_b.png, m_c.png
    save_poses(tmp_path / "m_b.npz", [make_sequence(24)])  # m_b.png too
    result = runner.invoke(app, ["plot", str(tmp_path / "m.npz"), str(tmp_path / "m_b.npz"), "--overwrite"])
    assert result.exit_code == 1 and "m_b.png: already drawn for another input of this run" in result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["m_b.png", "m_c.png"]


def test_missing_matplotlib_is_a_one_line_error(tmp_path, make_sequence, monkeypatch):
    path = write(tmp_path, make_sequence(24))
    monkeypatch.delitem(sys.modules, "d3prefine.plot")
    for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)  # makes `import matplotlib...` fail
    result = runner.invoke(app, ["plot", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: plotting needs the optional extra: pip install 'd3prefine[plot]'")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "walk.png").exists()


def test_the_cli_does_not_import_matplotlib():
    code = "import sys, d3prefine.cli; sys.exit(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_evaluate_plot_writes_a_figure_per_file(tmp_path, make_sequence):
    seq = make_sequence(24)
    seq.poses_3d_refined = seq.gt_3d + np.float32(0.01)
    save_poses(tmp_path / "a.npz", [seq])
    result = runner.invoke(app, ["evaluate", str(tmp_path / "a.npz"), "--plot", str(tmp_path / "figs"), "--json"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "figs" / "a.png") as image:
        assert image.size == (1600, 1000)
    assert json.loads(result.stdout)["sequences"][0]["metrics"]["mpjpe"] > 0


def test_evaluate_plot_refuses_clashing_names_and_keeps_existing_figures(tmp_path, make_sequence):
    seq = make_sequence(24)
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        save_poses(tmp_path / folder / "walk.npz", [seq])
    figs = tmp_path / "figs"
    clash = runner.invoke(app, ["evaluate", str(tmp_path / "d1" / "walk.npz"), str(tmp_path / "d2" / "walk.npz"), "--plot", str(figs)])
    assert clash.exit_code == 2 and "would both write" in clash.stderr and not figs.exists()
    first = ["evaluate", str(tmp_path / "d1" / "walk.npz"), "--plot", str(figs)]
    assert runner.invoke(app, first).exit_code == 0
    drawn = (figs / "walk.png").read_bytes()
    again = runner.invoke(app, first)
    assert again.exit_code == 1 and "already exists (use --overwrite" in again.stderr
    assert (figs / "walk.png").read_bytes() == drawn
    assert runner.invoke(app, [*first, "--overwrite"]).exit_code == 0


def test_evaluate_plot_never_draws_two_inputs_into_one_figure(tmp_path, make_sequence):
    two = [dataclasses.replace(make_sequence(24), name=name) for name in ("s1", "s2")]
    save_poses(tmp_path / "a.npz", two)  # figures a_s1.png and a_s2.png
    save_poses(tmp_path / "a_s1.npz", [make_sequence(24)])  # figure a_s1.png as well
    figs = tmp_path / "figs"
    args = ["evaluate", str(tmp_path / "a.npz"), str(tmp_path / "a_s1.npz"), "--plot", str(figs), "--overwrite", "--continue-on-error"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "a_s1.png: already drawn for another input of this run" in result.stderr
    assert sorted(p.name for p in figs.iterdir()) == ["a_s1.png", "a_s2.png"]
