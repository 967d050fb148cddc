"""benchmarks/frame_rate: both ways of refining another frame rate, scored against ground truth."""

import json

from benchmarks import frame_rate
from d3prefine.io import save_poses


def test_frame_rate_probe_scores_three_rows(tmp_path, make_sequence):
    save_poses(tmp_path / "val.npz", [make_sequence(45, seed=k, name=f"s{k}") for k in range(2)])
    code = frame_rate.main(["--data", str(tmp_path / "val.npz"), "--as-fps", "50", "--threads", "1", "--out", str(tmp_path / "fr")])
    assert code == 0
    document = json.loads((tmp_path / "fr.json").read_text())
    (entry,) = document["files"]
    assert document["weights_fps"] == 30.0 and entry["fps"] == [50.0] and entry["frames"] == 2 * 74  # 45 frames at 30 fps -> 74 at 50
    assert [row["method"].split(" (")[0] for row in entry["rows"]] == ["base estimator", "refined as it is", "refined at 30 fps and back"]
    assert entry["rows"][0]["change_pct_vs_base"]["mpjpe"] == 0.0
    assert all(row["metrics"]["mpjpe"] > 0 for row in entry["rows"])
    assert "| refined at 30 fps and back" in (tmp_path / "fr.md").read_text()
    code = frame_rate.main(["--data", str(tmp_path / "val.npz"), "--threads", "1", "--out", str(tmp_path / "same")])
    assert code == 1 and not (tmp_path / "same.json").exists()  # 30 fps data, 30 fps weights: nothing to compare
