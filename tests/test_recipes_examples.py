"""make_examples picks the right validation sequences; the batch script is valid shell."""

import subprocess
from pathlib import Path

import numpy as np

from d3prefine.io import PoseSequence, load_poses, save_poses
from recipes import make_examples

REPO = Path(__file__).resolve().parent.parent
# A stick figure (H36M-17, metres) with human bone lengths.
FIGURE = np.array(
    [[0, 0, 0], [-0.1, 0, 0], [-0.1, 0.4, 0], [-0.1, 0.8, 0], [0.1, 0, 0], [0.1, 0.4, 0], [0.1, 0.8, 0],
     [0, -0.25, 0], [0, -0.5, 0], [0, -0.6, 0], [0, -0.72, 0], [0.2, -0.5, 0], [0.45, -0.5, 0], [0.7, -0.5, 0],
     [-0.2, -0.5, 0], [-0.45, -0.5, 0], [-0.7, -0.5, 0]], dtype=np.float32)


def sequence(name, frames, content, camera, estimator):
    gt = np.broadcast_to(FIGURE + [0, 0, 5], (frames, 17, 3)).astype(np.float32)
    return PoseSequence(name, poses_2d=gt[..., :2] * 200 + 500, poses_3d=gt - gt[:, :1], gt_3d=gt, image_size=(1000, 1000), fps=30.0,
                        provenance={"content": content, "camera": camera, "estimator": estimator})


def test_make_examples_picks_walk_and_wave(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for kind, estimator in (("temporal", "TemporalLifter"), ("frame", "FrameLifter")):
        save_poses(data / f"val_{kind}.h5", [
            sequence("a_walk_short", 50, "walk", "54138969", estimator),  # too short
            sequence("b_walk_random", 150, "walk", "random", estimator),  # random camera
            sequence("c_walk", 150, "walk", "55011271", estimator),
            sequence("d_wave", 120, "wave-right-hand", "58860488", estimator),
        ])
    out = tmp_path / "examples"
    assert make_examples.main(["--data", str(data), "--out", str(out)]) == 0
    (walk,) = load_poses(out / "walk.npz")
    (wave,) = load_poses(out / "wave.npz")
    (frame,) = load_poses(out / "walk_frame_lifter.npz")
    assert (walk.name, wave.name, frame.name) == ("c_walk", "d_wave", "c_walk")
    assert frame.provenance["estimator"] == "FrameLifter" and walk.gt_3d is not None
    assert sum(p.stat().st_size for p in out.iterdir()) < 1_000_000
    assert make_examples.main(["--data", str(data), "--out", str(out)]) == 1  # exists, no --overwrite


def test_make_examples_reports_an_unusable_output_folder(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    assert make_examples.main(["--data", str(tmp_path), "--out", str(tmp_path / "a_file" / "sub")]) == 1
    err = capsys.readouterr().err
    assert "cannot create the examples folder" in err and "Traceback" not in err


def test_batch_script_syntax_and_empty_folder(tmp_path):
    script = REPO / "examples" / "batch.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run(["bash", str(script), str(tmp_path), str(tmp_path / "out")], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "no .npz or .h5 files" in result.stderr
