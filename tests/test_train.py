"""Training: the loss goes down, checkpoints resume exactly, configs reject unknown modes."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from d3prefine.checkpoint import load_denoiser
from d3prefine.model import DenoiserConfig
from d3prefine.noise import NoiseModel
from d3prefine.preprocess import error_triple
from d3prefine.skeleton import H36M_17
from d3prefine.train import TrainConfig, Trainer, WindowSampler
from tests.conftest import build_sequence

TINY = DenoiserConfig(window=9, dim=16, depth=1, heads=2)


def _setup(config: TrainConfig, sequences, init: dict[str, torch.Tensor] | None = None, noise: NoiseModel | None = None):
    noise = noise if noise is not None else NoiseModel.fit(
        [error_triple(s.poses_2d, s.poses_3d, s.gt_3d, s.image_size, 0) for s in sequences], layout="h36m17"
    )
    data = WindowSampler(sequences, TINY.window, root=0)
    return Trainer(TINY, config, noise, data, data, torch.device("cpu"), init=init)


@pytest.fixture(scope="module")
def biased():
    """One sequence whose estimator error has a structured part the network can learn."""
    seq = build_sequence(120, seed=3, noise_m=0.005)
    seq.poses_3d[:, 1:, 2] += 0.05 * np.sign(seq.gt_3d[:, 1:, 0] - seq.gt_3d[:, :1, 0])  # depth error tied to the pose
    return [seq]


def test_a_few_hundred_steps_reduce_the_training_loss(biased):
    torch.manual_seed(0)
    config = TrainConfig(steps=200, batch_size=16, lr=3e-3, warmup=20, eval_every=200, val_windows=16, objective="regression")
    trainer = _setup(config, biased)
    losses = [trainer.train_step() for _ in range(200)]
    assert np.mean(losses[-20:]) < 0.9 * np.mean(losses[:20])
    scores = trainer.validate()
    assert scores["val_mpjpe"] < scores["val_input_mpjpe"]


def test_the_seed_fixes_the_initial_weights_and_leaves_the_global_rng_alone(biased):
    config = TrainConfig(steps=1, batch_size=4, warmup=1, val_windows=4, seed=5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = _setup(config, biased)
    assert torch.equal(torch.rand(3), expected)  # building a Trainer did not reseed or advance it
    again, other = _setup(config, biased), _setup(TrainConfig(steps=1, batch_size=4, warmup=1, val_windows=4, seed=6), biased)
    weights = [dict(t.state.model.named_parameters())["blocks.0.proj.weight"] for t in (first, again, other)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    for name, value in first.state.ema.state_dict().items():  # the EMA starts as a copy of the model
        assert torch.equal(value, first.state.model.state_dict()[name]), name


def test_short_sequences_are_padded_to_one_window():
    data = WindowSampler([build_sequence(4)], window=9, root=0)
    assert data.starts.tolist() == [0] and data.p.shape == (9, 17, 2)
    p, y, x = data.batch(torch.tensor([0]), torch.device("cpu"))
    assert torch.equal(x[0, 0], x[0, 2]) and torch.equal(x[0, -1], x[0, -3])  # edge frames repeated


def test_resuming_from_a_checkpoint_continues_exactly(tmp_path, biased):
    config = TrainConfig(steps=12, batch_size=4, warmup=2, eval_every=6, val_windows=4, forward_errors="mixed", keep="last")
    straight = _setup(config, biased)
    straight.fit(tmp_path / "a.safetensors")
    first = _setup(config, biased)
    for _ in range(6):
        first.train_step()
    first.save_checkpoint(tmp_path / "ckpt.safetensors")
    resumed = _setup(config, biased)
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    assert resumed.state.step == 6
    resumed.fit(tmp_path / "b.safetensors")
    a, b = load_denoiser(tmp_path / "a.safetensors"), load_denoiser(tmp_path / "b.safetensors")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, msg=name)


class _Crash(Exception):
    """Stands in for a job killed after a checkpoint."""


def _crash_at_4(step: int, loss: float) -> None:
    if step == 4:
        raise _Crash


def test_keep_best_writes_the_weights_of_the_lowest_validation_even_after_a_resume(tmp_path, biased):
    """Fine-tuning is validated at step 0: when training only makes the validation worse (a
    learning rate of 5 wrecks the network), ``keep=best`` writes the weights it started from, also
    when the run was resumed from a checkpoint (which holds them), and ``keep=last`` the final ones."""
    start = _setup(TrainConfig(steps=1, batch_size=4, warmup=1), biased).state.model.state_dict()
    config = TrainConfig(steps=6, batch_size=4, lr=5.0, warmup=1, eval_every=3, val_windows=8)
    best = _setup(config, biased, init=start)
    history = best.fit(tmp_path / "best.safetensors")
    assert [r["step"] for r in history] == [0, 3, 6] and "train_loss_mm" not in history[0]
    assert min(r["val_mpjpe"] for r in history[1:]) > history[0]["val_mpjpe"]  # the premise: training only hurt
    assert best.kept_step == 0
    crashed = _setup(config, biased, init=start)
    with pytest.raises(_Crash):
        crashed.fit(tmp_path / "never.safetensors", checkpoint=tmp_path / "ckpt.safetensors", on_step=_crash_at_4)
    resumed = _setup(config, biased, init=start)
    resumed.load_checkpoint(tmp_path / "ckpt.safetensors")
    assert resumed.state.best_step == 0
    resumed.fit(tmp_path / "resumed.safetensors")
    last = _setup(replace(config, keep="last"), biased, init=start)
    last.fit(tmp_path / "last.safetensors")
    assert last.kept_step == 6
    for name, value in start.items():
        assert torch.equal(load_denoiser(tmp_path / "best.safetensors").state_dict()[name], value), name
        assert torch.equal(load_denoiser(tmp_path / "resumed.safetensors").state_dict()[name], value), name
    assert not all(torch.equal(load_denoiser(tmp_path / "last.safetensors").state_dict()[k], v) for k, v in start.items())


def test_the_anchor_takes_back_lr_times_anchor_of_the_first_steps_drift(biased):
    """The first step starts from the init weights, so with and without the anchor it computes the
    same gradient and AdamW update; the anchor then moves every weight back by ``lr * anchor`` of
    that drift (here 2e-3 x 100 = 0.2), and all of it when ``lr * anchor`` reaches 1."""
    start = _setup(TrainConfig(steps=1, batch_size=4, warmup=1), biased).state.model.state_dict()
    after = {}
    for anchor in (0.0, 100.0, 600.0):
        trainer = _setup(TrainConfig(steps=10, batch_size=4, lr=2e-3, warmup=1, weight_decay=0.0, anchor=anchor), biased, init=start)
        trainer.train_step()
        after[anchor] = trainer.state.model.state_dict()
    assert not torch.equal(after[0.0]["head.weight"], start["head.weight"])  # (the zero head stops the gradient before it)
    for name, value in start.items():
        torch.testing.assert_close(after[100.0][name] - value, 0.8 * (after[0.0][name] - value), rtol=1e-4, atol=1e-7)
        assert torch.equal(after[600.0][name], value), name


def test_an_anchor_needs_init_weights_and_is_never_negative(biased):
    with pytest.raises(ValueError, match="needs init"):
        _setup(TrainConfig(steps=1, batch_size=4, warmup=1, anchor=1.0), biased)
    with pytest.raises(ValueError, match="anchor must be >= 0"):
        TrainConfig(anchor=-1.0)


def test_unknown_modes_raise():
    with pytest.raises(ValueError):
        TrainConfig(objective="gan")
    with pytest.raises(ValueError):
        TrainConfig(forward_errors="uniform")
    with pytest.raises(ValueError):
        TrainConfig(intermediate_states="backward")
    with pytest.raises(ValueError):
        TrainConfig(keep="first")


def test_sampler_states_replace_the_real_error_by_the_networks_estimate_below_T(biased):
    trainer = _setup(TrainConfig(intermediate_states="sampler", forward_errors="real"), biased)
    p, y, x = trainer.train_data.batch(torch.tensor([0, 5, 9]), torch.device("cpu"))
    mean = trainer.noise.mean(p, y)
    t = torch.tensor([100, 50, 20])
    forward = trainer.schedule.add_noise(x, y - x, t)
    states = trainer._sampler_states(forward, y, p, mean, t)
    torch.testing.assert_close(states[0], y[0])  # t = T: the estimator output either way
    with torch.no_grad():
        e_T = trainer.noise.denormalize(trainer.state.model(y, p, torch.full((3,), 100)), mean)
    torch.testing.assert_close(states[1], y[1] - 0.5 * e_T[1])
    torch.testing.assert_close(states[2], y[2] - 0.8 * e_T[2])
    assert not torch.allclose(states[1], forward[1])  # the untrained estimate is not the real error


def test_sequences_without_ground_truth_are_refused():
    seq = build_sequence(20)
    seq.gt_3d = None
    with pytest.raises(ValueError, match="gt_3d"):
        WindowSampler([seq], window=9, root=0)


def test_mirror_trains_on_the_mirror_images_of_the_windows(biased):
    """A step with mirror=1 on the data equals one with mirror=0 on its mirror image (the mirror draw is the step's last;
    pixel x negated: the mirror about x = 0, the same as about the image centre once the poses are root-relative)."""
    mirrored = [replace(s, poses_2d=H36M_17.mirror(s.poses_2d), poses_3d=H36M_17.mirror(s.poses_3d), gt_3d=H36M_17.mirror(s.gt_3d))
                for s in biased]
    config = TrainConfig(steps=1, batch_size=8, warmup=1, val_windows=4, seed=2)
    flipped = _setup(replace(config, mirror=1.0), biased)
    direct, plain = _setup(config, mirrored, noise=flipped.noise), _setup(config, biased)
    losses = [t.train_step() for t in (flipped, direct, plain)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert losses[0] != pytest.approx(losses[2], rel=1e-3)  # the data are not mirror-symmetric
    with pytest.raises(ValueError, match="mirror"):
        TrainConfig(mirror=1.5)
