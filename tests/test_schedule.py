"""The error schedule: forward process, timestep subsequences and DDIM steps."""

import pytest
import torch

from d3prefine.schedule import ErrorSchedule


def test_scale_runs_from_clean_to_estimator_like():
    s = ErrorSchedule(100)
    assert float(s.scale(0)) == 0.0 and float(s.scale(100)) == 1.0 and float(s.scale(25)) == 0.25


def test_add_noise_is_linear_in_the_step():
    s = ErrorSchedule(10)
    x0, e = torch.zeros(3, 2, 17, 3), torch.ones(3, 2, 17, 3)
    x_t = s.add_noise(x0, e, torch.tensor([0, 5, 10]))
    assert x_t[0].abs().max() == 0 and torch.allclose(x_t[1], 0.5 * e[1]) and torch.equal(x_t[2], e[2])


@pytest.mark.parametrize(("k", "expected"), [(1, [100]), (2, [100, 50]), (4, [100, 75, 50, 25]), (3, [100, 67, 34])])
def test_set_timesteps(k, expected):
    s = ErrorSchedule(100)
    s.set_timesteps(k)
    assert s.timesteps.tolist() == expected


def test_set_timesteps_rejects_out_of_range():
    s = ErrorSchedule(10)
    for k in (0, 11):
        with pytest.raises(ValueError):
            s.set_timesteps(k)


def test_one_step_is_residual_correction():
    s = ErrorSchedule(100)
    s.set_timesteps(1)
    y, e_hat = torch.randn(2, 5, 17, 3), torch.randn(2, 5, 17, 3)
    out = s.step(e_hat, 100, y)
    torch.testing.assert_close(out.prev_sample, y - e_hat)
    torch.testing.assert_close(out.pred_original_sample, y - e_hat)


def test_deterministic_steps_with_exact_error_recover_the_clean_pose():
    s = ErrorSchedule(100)
    s.set_timesteps(5)
    x0, e = torch.randn(4, 17, 3), torch.randn(4, 17, 3)
    x = s.add_noise(x0.unsqueeze(0), e.unsqueeze(0), torch.tensor([100]))[0]
    for t in s.timesteps.tolist():
        out = s.step(e, t, x)
        torch.testing.assert_close(out.pred_original_sample, x0)
        x = out.prev_sample
        torch.testing.assert_close(x, x0 + float(s.scale(s.previous_timestep(t))) * e)
    torch.testing.assert_close(x, x0)


def test_stochastic_step_mixes_in_fresh_noise():
    s = ErrorSchedule(10)
    s.set_timesteps(2)
    x, e_hat, mean, n = (torch.full((1, 3), v) for v in (1.0, 0.4, 0.1, 2.0))
    out = s.step(e_hat, 10, x, eta=0.6, error_mean=mean, variance_noise=n)
    direction = 0.1 + 0.8 * (0.4 - 0.1) + 0.6 * 2.0
    torch.testing.assert_close(out.prev_sample, torch.full((1, 3), 1.0 - 0.4 + 0.5 * direction))
    with pytest.raises(ValueError):
        s.step(e_hat, 10, x, eta=0.5)
    with pytest.raises(ValueError):
        s.step(e_hat, 10, x, eta=1.5, error_mean=mean, variance_noise=n)
