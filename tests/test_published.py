"""``sampler.clamp: published`` step by step against the published code's steps (``tests/published.py``, written
from its formulas with deepinv's operator and torchvision's JPEG), on the same inputs, for every problem.

The inputs are a synthetic clip measured with noise and a "network estimate" that overshoots [-1, 1], so that
every clamp the published code has (or lacks) changes the result: a clamp too many or too few fails.
"""

from __future__ import annotations

import pytest
import torch

import published as P
from lvtino.config import load_problem
from lvtino.physics.problems import build_physics
from lvtino.sampling.schedule import Schedule
from lvtino.video.convert import frames_to_tensor
from lvtino.video.synthetic import synthetic_clip

pytest.importorskip("deepinv")
T = P.to_tchw


def db(mine, reference) -> float:
    """PSNR of lvtino's step (B, C, T, H, W) against the reference's (T, C, H, W), on the [-1, 1] range."""
    mse = float(((T(mine) - reference) ** 2).mean())
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


def setup(name: str, shape: tuple[int, int, int]):
    cfg = load_problem(name, overrides=["sampler.clamp=published"])
    physics = build_physics(cfg.operator, shape)
    x = frames_to_tensor(synthetic_clip(*shape))
    y = physics.measure(x, cfg.noise_std, torch.Generator().manual_seed(0))
    estimate = 1.15 * x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    return cfg, physics, Schedule.from_config(cfg.sampler), y, estimate


def test_problem_a_start_and_steps_are_the_published_ones():
    cfg, physics, schedule, y, est = setup("A", (9, 64, 64))
    op = P.Operator("pool", 4, 4, (9, 64, 64))
    start = schedule.init(physics, y, torch.zeros_like(est))
    free = physics.prox_l2(-torch.ones_like(est), y, cfg.sampler.init.gamma)
    assert float(free.max()) > 1 and float(start.max()) == 1.0  # the published start stops at +1 ...
    assert float(start.min()) > -3  # ... and at -3 (its [-1, 1] in [0, 1] units), which this clip never reaches
    assert db(start, P.start(op, T(y))) > 100
    step = schedule.steps[0]
    assert db(step.data_step_1(physics, y, est), P.time_tv(op, T(est), T(y), cfg.sampler.data_step_1.lam[0])) > 75
    second = step.data_step_2(physics, y, est)
    reference = P.normal_cg(op, T(est), T(y), cfg.sampler.data_step_2.iterations, cfg.sampler.data_step_2.eps)
    assert float(reference.max()) > 1.2  # the normal equations' output is left as it comes there
    assert db(second, reference) > 100


def test_problem_b_start_and_both_proxes_are_the_published_ones():
    cfg, physics, schedule, y, est = setup("B", (9, 64, 64))
    op = P.Operator("blur", 7, 8, (9, 64, 64))
    assert db(schedule.init(physics, y, torch.zeros_like(est)), P.start(op, T(y))) > 100
    for k in (0, 2):  # both gammas of each step
        step = schedule.steps[k]
        g1, g2 = cfg.sampler.data_step_1.gamma[k], cfg.sampler.data_step_2.gamma[k]
        assert db(step.data_step_1(physics, y, est), P.prox(op, T(est), T(y), g1)) > 95
        second = step.data_step_2(physics, y, est)
        assert float(physics.prox_l2(est, y, g2).max()) > 1 and float(second.max()) == 1.0  # clamped there
        assert db(second, P.prox(op, T(est), T(y), g2)) > 95


def test_problem_c_steps_are_the_published_ones():
    cfg, physics, schedule, y, est = setup("C", (17, 64, 64))
    op = P.Operator("pool", 8, 8, (17, 64, 64))
    s = cfg.sampler
    for k in (0, 1):  # both lambdas
        step = schedule.steps[k]
        first = step.data_step_1(physics, y, est)
        assert float(first.abs().max()) <= 1  # projected after every Adam step
        assert db(first, P.adam_tv3(op, T(est), T(y), s.data_step_1.lam[k], s.data_step_1.iterations,
                                    s.data_step_1.lr, s.data_step_1.eps)) > 100
    reference = P.normal_cg(op, T(est), T(y), s.data_step_2.iterations, s.data_step_2.eps)
    assert float(reference.max()) > 1.1
    assert db(schedule.steps[0].data_step_2(physics, y, est), reference) > 95
    start = schedule.init(physics, y, torch.zeros_like(est))  # the published start is a network's frames
    assert float(start.abs().max()) <= 1


def test_jpeg_steps_are_the_published_ones():
    assert P.jpeg_pil_equals_libjpeg() == 0  # Pillow's JPEG is torchvision's (libjpeg, 4:2:0, quality 10)
    cfg, physics, schedule, y, est = setup("jpeg", (3, 32, 48))
    for step, gamma in ((schedule.steps[0].data_step_1, cfg.sampler.data_step_1.gamma[0]),
                        (schedule.steps[0].data_step_2, cfg.sampler.data_step_2.gamma[0])):
        assert db(step(physics, y, est), P.jpeg_prox(T(est), T(y), gamma, cfg.sampler.data_step_1.iterations)) > 120


def test_lvtino_clamps_keep_every_step_in_range():
    """The default: the start and every data step's output in [-1, 1], whatever the published code does."""
    for name, shape in (("A", (9, 32, 32)), ("B", (9, 64, 64)), ("C", (17, 64, 64))):
        cfg = load_problem(name)
        physics = build_physics(cfg.operator, shape)
        y = physics.measure(frames_to_tensor(synthetic_clip(*shape)), 0.001, torch.Generator().manual_seed(0))
        est = 1.5 * physics.A_adjoint(y) / physics.A_adjoint(torch.ones_like(y)).clamp_min(1e-6)
        schedule = Schedule.from_config(cfg.sampler)
        outs = [schedule.init(physics, y, torch.zeros_like(est)), schedule.steps[0].data_step_1(physics, y, est),
                schedule.steps[0].data_step_2(physics, y, est)]
        assert all(float(o.abs().max()) <= 1 for o in outs), name
