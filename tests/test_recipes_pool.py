"""The estimator pool: lifter configs of other receptive fields and depths, generic cross-fitting,
and ``recipes.estimator_pool`` adding a cross-fitted member to a (tiny, fake) build."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from d3prefine.bones import median_bone_lengths
from d3prefine.io import load_poses, save_poses
from d3prefine.metrics import bone_lengths
from d3prefine.skeleton import get_layout
from recipes import estimator_pool
from recipes.cameras import fitted_pinhole_projection
from recipes.estimator_pool import PoolMember
from recipes.estimators import (
    FitConfig,
    LifterConfig,
    LifterKind,
    cross_fit,
    fit,
    lifter_input,
    load_lifter,
    pooled_errors_mm,
    predict,
    save_lifter,
)
from tests.conftest import build_sequence

TEMPORAL9 = LifterConfig(LifterKind.TEMPORAL, width=16, filter_widths=(3, 3))
SHALLOW = LifterConfig(LifterKind.FRAME, width=16, blocks=1)
TINY_FIT = FitConfig(steps=2, batch_frames=64, chunk=4)


def _info(path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["info"])


def test_lifter_config_round_trip_keeps_filter_widths_and_blocks(tmp_path):
    x = torch.randn(1, 12, 17, 2)
    for config in (TEMPORAL9, SHALLOW):
        torch.manual_seed(0)
        model = config.build().eval()
        path = tmp_path / f"{config.kind.value}.safetensors"
        save_lifter(model, config, path)
        loaded, loaded_config = load_lifter(path)
        assert loaded_config == config and isinstance(loaded_config.filter_widths, tuple)
        assert len(loaded.blocks) == 1  # (3, 3): one dilated block after the expansion; blocks=1
        torch.testing.assert_close(loaded(x), model(x))
    temporal, _ = load_lifter(tmp_path / "temporal.safetensors")
    assert temporal.receptive_field == 9 and temporal.pad == 4
    assert temporal(x).shape == (1, 12 - 8, 17, 3)


@pytest.mark.parametrize("kind", list(LifterKind))
def test_lifter_files_without_the_new_keys_load_with_the_defaults(tmp_path, kind):
    """Files written before ``filter_widths``/``blocks`` existed: the default architectures."""
    config = LifterConfig(kind, width=16)
    raw = config.as_dict()
    del raw["filter_widths"], raw["blocks"]
    path = tmp_path / "old.safetensors"
    save_file({k: v.contiguous() for k, v in config.build().state_dict().items()}, str(path),
              metadata={"config": json.dumps(raw), "info": "{}"})
    model, loaded = load_lifter(path)
    assert loaded == config and (loaded.filter_widths, loaded.blocks) == ((3, 3, 3), 2)
    if kind is LifterKind.TEMPORAL:
        assert model.receptive_field == 27 and len(model.blocks) == 2
    else:
        assert len(model.blocks) == 2


def _toy(lengths, seed):
    """Lifter inputs ``(T, 17, 2)`` and camera-frame ground truth ``(T, 17, 3)`` of random sequences."""
    rng = np.random.default_rng(seed)
    gt = [(rng.normal(0, 0.3, size=(t, 17, 3)) + [0.0, 0.0, 5.0]).astype(np.float32) for t in lengths]
    return [(g[..., :2] / g[..., 2:]).astype(np.float32) for g in gt], gt


def test_cross_fit_predicts_each_sequence_by_a_model_that_did_not_see_it(tmp_path):
    torch.set_num_threads(1)
    inputs, gt = _toy([20, 24, 18, 30, 22, 26], seed=0)
    folds = [0, 1, 2, 0, 1, 2]
    val_inputs, _ = _toy([15, 28], seed=1)
    labels, calls = [], []

    def progress(label):
        labels.append(label)
        return lambda step, loss: calls.append((label, step, loss))

    fit_config = replace(TINY_FIT, seed=5)
    train_pred, train_weights, val_pred, val_weights, seconds = cross_fit(
        TEMPORAL9, fit_config, inputs, gt, folds, val_inputs, tmp_path, "t9", {"estimator": "T9"}, progress)

    assert train_weights == [f"estimators/t9_fold{f}.safetensors" for f in folds]
    assert val_weights == "estimators/t9.safetensors"
    assert labels == ["t9 fold0", "t9 fold1", "t9 fold2", "t9 full"] and set(seconds) == {"fold0", "fold1", "fold2", "full"}
    assert [(label, step) for label, step, _ in calls] == [(label, step) for label in labels for step in (0, 1)]
    assert [p.shape for p in train_pred] == [(len(x), 17, 3) for x in inputs]
    assert [p.shape for p in val_pred] == [(len(x), 17, 3) for x in val_inputs]
    for fold in range(3):
        info = _info(tmp_path / f"estimators/t9_fold{fold}.safetensors")
        assert info["estimator"] == "T9" and info["trained_on"] == f"train folds != {fold}"
        assert info["train_sequences"] == 4 and info["fit"]["seed"] == 5 + 1 + fold
    full = _info(tmp_path / val_weights)
    assert (full["trained_on"], full["train_sequences"], full["fit"]["seed"]) == ("train (all folds)", 6, 5)

    # Each prediction is its named model's: reloaded, it predicts the same; the other models do not.
    models = {w: load_lifter(tmp_path / w)[0] for w in {*train_weights, val_weights}}
    for x, pred, weights in zip(inputs, train_pred, train_weights):
        np.testing.assert_allclose(predict(models[weights], [x])[0], pred, atol=1e-5)
        for other in set(models) - {weights}:
            assert np.abs(predict(models[other], [x])[0] - pred).max() > 1e-4
    for x, pred in zip(val_inputs, val_pred):
        np.testing.assert_allclose(predict(models[val_weights], [x])[0], pred, atol=1e-5)
    # The fold-0 model is the fit on folds 1 and 2 alone, with seed + 1: it never saw fold 0.
    kept = [i for i, f in enumerate(folds) if f != 0]
    refit = fit(TEMPORAL9, replace(fit_config, seed=6), [inputs[i] for i in kept], [gt[i] - gt[i][:, :1] for i in kept])
    for name, tensor in refit.state_dict().items():
        torch.testing.assert_close(models["estimators/t9_fold0.safetensors"].state_dict()[name], tensor)


# ---------------------------------------------------------------------------------------------
# recipes.estimator_pool on a fake build

TINY_MEMBER = PoolMember("TinyLifter9", TEMPORAL9, TINY_FIT)


def _sequences(count, split, seed, folds=True):
    sequences = []
    for k in range(count):
        seq = build_sequence(20 + 3 * k, seed=seed + k, name=f"{split}{k}")
        seq.provenance = {"estimator": "TemporalLifter", "estimator_weights": "estimators/temporal.safetensors",
                          "camera": f"cam{k % 2}", "split": split}
        if folds:
            seq.provenance["fold"] = k % 3 if split == "train" else None
        sequences.append(seq)
    return sequences


def _fake_build(folder, folds=True):
    folder.mkdir()
    save_poses(folder / "train_temporal.h5", _sequences(6, "train", 0, folds))
    save_poses(folder / "val_temporal.h5", _sequences(2, "val", 10, folds))
    return folder


@pytest.fixture
def tiny_pool(monkeypatch):
    monkeypatch.setitem(estimator_pool.POOL, "tiny", TINY_MEMBER)


def test_estimator_pool_adds_a_cross_fitted_member(tmp_path, tiny_pool, capsys):
    build = _fake_build(tmp_path / "build")
    assert estimator_pool.main(["--build", str(build), "--member", "tiny"]) == 0
    for split in ("train", "val"):
        source, written = load_poses(build / f"{split}_temporal.h5"), load_poses(build / f"{split}_tiny.h5")
        assert [s.name for s in written] == [s.name for s in source]
        for a, b in zip(source, written):
            np.testing.assert_array_equal(b.gt_3d, a.gt_3d)
            np.testing.assert_array_equal(b.poses_2d, a.poses_2d)
            assert b.image_size == a.image_size and b.fps == a.fps and b.poses_3d.shape == a.poses_3d.shape
            assert np.abs(b.poses_3d - a.poses_3d).max() > 0.01
            assert (b.poses_3d[:, 0] == 0).all()  # root-relative lifter output
            weights = f"estimators/tiny_fold{a.provenance['fold']}.safetensors" if split == "train" else "estimators/tiny.safetensors"
            assert b.provenance == {**a.provenance, "estimator": "TinyLifter9", "estimator_weights": weights}
            model, config = load_lifter(build / weights)  # the written 3D is that model's prediction
            assert config == TEMPORAL9
            np.testing.assert_allclose(b.poses_3d, predict(model, [lifter_input(a.poses_2d, a.image_size)])[0], atol=1e-5)
        summary = json.loads((build / "pool_tiny.json").read_text())
        assert summary[split] == pooled_errors_mm([s.poses_3d for s in written], [s.gt_3d for s in written])
    assert (summary["member"], summary["name"], summary["config"]) == ("tiny", "TinyLifter9", TEMPORAL9.as_dict())
    assert summary["files"] == ["train_tiny.h5", "val_tiny.h5"] and set(summary["fit_seconds"]) == {"fold0", "fold1", "fold2", "full"}
    assert _info(build / "estimators" / "tiny.safetensors")["estimator"] == "TinyLifter9"
    assert "TinyLifter9 val: {" in capsys.readouterr().err

    before = (build / "train_tiny.h5").read_bytes()
    assert estimator_pool.main(["--build", str(build), "--member", "tiny"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train_tiny.h5: exists, pass --overwrite" in " ".join(err.split())
    assert (build / "train_tiny.h5").read_bytes() == before
    assert estimator_pool.main(["--build", str(build), "--member", "tiny", "--skip-existing"]) == 0  # a recipe's rerun
    assert "tiny: " in capsys.readouterr().err and (build / "train_tiny.h5").read_bytes() == before
    with pytest.raises(SystemExit):
        estimator_pool.main(["--build", str(build), "--member", "tiny", "--skip-existing", "--overwrite"])


def test_estimator_pool_needs_folds_and_a_build(tmp_path, tiny_pool, capsys):
    build = _fake_build(tmp_path / "nofold", folds=False)
    assert estimator_pool.main(["--build", str(build), "--member", "tiny"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "train_temporal.h5: key 'provenance': every training sequence needs an integer 'fold'" in err
    assert not list(build.glob("*tiny*")) and not (build / "estimators").exists()
    assert estimator_pool.main(["--build", str(tmp_path / "empty"), "--member", "tiny"]) == 1
    assert "train_temporal.h5: no such file" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit):
        estimator_pool.main(["--build", str(build), "--member", "nonesuch"])


def test_an_exact_2d_member_lifts_and_writes_the_fitted_projection(tmp_path, monkeypatch):
    """``two_d="exact"``: the member's lifter input and its files' 2D are the ground truth projected
    by the pinhole fitted to the build's detections; an unknown kind of 2D is refused."""
    monkeypatch.setitem(estimator_pool.POOL, "exact", replace(TINY_MEMBER, name="ExactTiny", two_d="exact"))
    build = _fake_build(tmp_path / "build")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):  # the fake build's 2D is an exact projection: give it a detector's noise
        sequences = load_poses(build / f"{split}_temporal.h5")
        noisy = [replace(s, poses_2d=s.poses_2d + rng.normal(0.0, 3.0, s.poses_2d.shape).astype(np.float32)) for s in sequences]
        save_poses(build / f"{split}_temporal.h5", noisy, overwrite=True)
    assert estimator_pool.main(["--build", str(build), "--member", "exact"]) == 0
    for source, written in zip(load_poses(build / "val_temporal.h5"), load_poses(build / "val_exact.h5")):
        exact = fitted_pinhole_projection(source.gt_3d, source.poses_2d).astype(np.float32)
        np.testing.assert_array_equal(written.poses_2d, exact)
        assert np.abs(written.poses_2d - source.poses_2d).max() > 1.0  # the detections' noise is gone
        model, _ = load_lifter(build / "estimators" / "exact.safetensors")
        np.testing.assert_allclose(written.poses_3d, predict(model, [lifter_input(exact, source.image_size)])[0], atol=1e-5)
    with pytest.raises(ValueError, match="two_d must be one of"):
        replace(TINY_MEMBER, two_d="clean")


def test_a_subject_bones_member_writes_the_lifter_on_the_ground_truth_bone_lengths(tmp_path, monkeypatch):
    """``bones="subject"``: every output bone has the ground truth's median length in the lifter's
    direction (root kept), and the summary's errors are those of the written poses; an unknown
    kind of bones is refused."""
    monkeypatch.setitem(estimator_pool.POOL, "tiny", TINY_MEMBER)
    monkeypatch.setitem(estimator_pool.POOL, "subject", replace(TINY_MEMBER, name="SubjectTiny", bones="subject"))
    build = _fake_build(tmp_path / "build")
    assert estimator_pool.main(["--build", str(build), "--member", "tiny", "--member", "subject"]) == 0
    layout = get_layout("h36m17")
    for lifted, written in zip(load_poses(build / "val_tiny.h5"), load_poses(build / "val_subject.h5")):
        truth = median_bone_lengths(written.gt_3d, layout)
        np.testing.assert_allclose(bone_lengths(written.poses_3d, layout), np.tile(truth[[c for _, c in layout.bones]], (len(written.poses_3d), 1)), atol=1e-5)
        for parent, child in layout.bones:  # the same lifter: the same bone directions
            own, new = (p[:, child] - p[:, parent] for p in (lifted.poses_3d, written.poses_3d))
            np.testing.assert_allclose(new / np.linalg.norm(new, axis=-1, keepdims=True),
                                       own / np.linalg.norm(own, axis=-1, keepdims=True), atol=1e-4)
        np.testing.assert_array_equal(written.poses_3d[:, 0], lifted.poses_3d[:, 0])
    summary = json.loads((build / "pool_subject.json").read_text())
    written = load_poses(build / "val_subject.h5")
    assert summary["val"] == pooled_errors_mm([s.poses_3d for s in written], [s.gt_3d for s in written])
    with pytest.raises(ValueError, match="bones must be one of"):
        replace(TINY_MEMBER, bones="average")
