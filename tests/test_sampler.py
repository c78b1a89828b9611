"""Algorithm 1 with tiny networks: calls per clip, shared noise, seeds, no gradients, measurement consistency."""

from __future__ import annotations

import pytest
import torch

from lvtino.config import load_problem
from lvtino.errors import UserError
from lvtino.models.base import Placement
from lvtino.models.loader import load_models
from lvtino.physics.problems import build_physics
from lvtino.pipeline.priors import ModelOptions, make_prior
from lvtino.runtime import StageTimer
from lvtino.sampling.sampler import sample
from lvtino.sampling.schedule import Schedule
from lvtino.video.convert import frames_to_tensor
from conftest import smooth_frames


@pytest.fixture(scope="module")
def models():
    return load_models("tiny", ["video", "image"], Placement(torch.device("cpu"), torch.float32), StageTimer())


def problem(name, shape):
    cfg = load_problem(name)
    physics = build_physics(cfg.operator, shape)
    x = frames_to_tensor(smooth_frames(*shape))
    y = physics.measure(x, cfg.noise_std, torch.Generator().manual_seed(0))
    return cfg, physics, x, y


class Spy:
    """Wraps an adapter: counts its calls and network invocations, keeps its last output."""

    def __init__(self, model, network: str):
        self.model, self.calls, self.forward_calls, self.last = model, 0, 0, None
        net = getattr(model, network)
        self._restore = (net, net.forward)

        def counted(*args, **kwargs):
            self.forward_calls += 1
            return self._restore[1](*args, **kwargs)
        net.forward = counted

    def denoise(self, x, t, generator, **options):
        self.calls += 1
        self.last = self.model.denoise(x, t, generator, **options)
        return self.last

    def close(self):
        net, forward = self._restore
        net.forward = forward


@pytest.mark.parametrize("name,shape,video_calls,image_calls", [
    ("A", (25, 32, 48), 5, 4), ("B", (25, 32, 48), 5, 4), ("jpeg", (25, 32, 48), 5, 4), ("C", (17, 32, 48), 3, 2)])
def test_calls_per_clip(models, name, shape, video_calls, image_calls):
    cfg, physics, _, y = problem(name, shape)
    video, image = Spy(models.video, "transformer"), Spy(models.image, "unet")
    try:
        out = sample(physics, y, Schedule.from_config(cfg.sampler), video, image, torch.Generator().manual_seed(0))
    finally:
        video.close(), image.close()
    assert out.shape == (1, 3) + shape
    assert (video.calls, image.calls) == (video_calls, image_calls)
    assert video.forward_calls == video_calls  # one transformer call on the whole clip per outer step
    batches = -(-shape[0] // models.image.batch_size)
    assert image.forward_calls == image_calls * batches  # a sweep over all frames counts once


@pytest.mark.parametrize("shape", [(10, 24, 40), (13, 40, 56), (1, 16, 16)])
def test_any_size_and_frame_count_round_trips(models, shape):
    cfg, physics, _, y = problem("B", shape)
    out = sample(physics, y, Schedule.from_config(cfg.sampler), models.video, models.image,
                 torch.Generator().manual_seed(0))
    assert out.shape == (1, 3) + shape and out.abs().max() <= 1


def test_same_seed_same_output_other_seed_other_output(models):
    cfg, physics, _, y = problem("B", (9, 32, 48))
    run = lambda seed: sample(physics, y, Schedule.from_config(cfg.sampler), models.video, models.image,
                              torch.Generator().manual_seed(seed))
    a, b, c = run(4), run(4), run(5)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4


def test_no_gradient_flows_through_a_network(models):
    cfg, physics, _, y = problem("A", (9, 32, 48))
    with torch.enable_grad():
        out = sample(physics, y, Schedule.from_config(cfg.sampler), models.video, models.image,
                     torch.Generator().manual_seed(0))
    assert not out.requires_grad
    for net in (models.video.transformer, models.video.vae, models.image.unet, models.image.vae):
        assert all(not p.requires_grad and p.grad is None for p in net.parameters())


def test_output_is_the_last_data_step_of_the_last_video_estimate(models):
    """Problem B ends with a prox: x = argmin 0.5||Au - y||^2 + ||u - x1||^2 / (2 gamma), x1 the last VCM output;
    in data mode the final projection then makes it fit y."""
    cfg, physics, _, y = problem("B", (25, 32, 48))
    cfg = load_problem("B", overrides=["sampler.final_step.method=none"])
    schedule = Schedule.from_config(cfg.sampler)
    video = Spy(models.video, "transformer")
    try:
        out = sample(physics, y, schedule, video, models.image, torch.Generator().manual_seed(0))
    finally:
        video.close()
    x1, gamma = video.last, cfg.sampler.data_step_1.gamma[-1]
    u = physics.prox_l2(x1, y, gamma)
    assert torch.allclose(out, u.clamp(-1, 1), atol=1e-6)  # the output is that prox, clamped to the range
    grad = (u - x1) + gamma * physics.A_adjoint(physics.A(u) - y)  # its optimality condition
    assert grad.abs().max() < 1e-4 * (u - x1).abs().max()
    residual = lambda u: float((physics.A(u) - y).norm() / y.norm())
    assert residual(out) < 0.25 * residual(x1)
    final = sample(physics, y, Schedule.from_config(load_problem("B").sampler), models.video, models.image,
                   torch.Generator().manual_seed(0))
    eps = load_problem("B").sampler.final_step.eps
    assert torch.allclose(final, (out + physics.A_dagger(y - physics.A(out), eps=eps)).clamp(-1, 1), atol=1e-5)


@pytest.mark.parametrize("name,shape", [("A", (25, 32, 48)), ("B", (25, 32, 48)), ("C", (17, 32, 48)),
                                        ("jpeg", (9, 32, 48))])
def test_data_output_fits_the_measurement_to_its_noise(models, name, shape):
    """Data mode: ||A x - y|| / ||y|| at the noise level (that of the clean frames: Gaussian noise, and for JPEG
    the quantisation too), where the last scheduled data step alone leaves A at ~0.5."""
    cfg, physics, x, y = problem(name, shape)
    out = sample(physics, y, Schedule.from_config(cfg.sampler), models.video, models.image,
                 torch.Generator().manual_seed(0))
    residual = lambda u: float((physics.A(u) - y).norm() / y.norm())
    noise = residual(x)  # the clean frames' misfit: the noise the measurement carries
    assert residual(out) <= 1.5 * noise, (residual(out), noise)


def test_prior_output_is_the_last_video_estimate_as_published(models):
    """``sampler.output=prior``: the decode of the last video-model call, the last data step skipped; NFE 9."""
    cfg, physics, _, y = problem("A", (9, 32, 48))
    cfg = load_problem("A", overrides=["sampler.output=prior"])
    video, image = Spy(models.video, "transformer"), Spy(models.image, "unet")
    steps = []
    try:
        out = sample(physics, y, Schedule.from_config(cfg.sampler), video, image, torch.Generator().manual_seed(0),
                     callback=lambda k, x: steps.append(k))
    finally:
        video.close()
        image.close()
    assert torch.equal(out, video.last)
    assert (video.calls, image.calls, video.forward_calls) == (5, 4, 5)  # NFE 9: an image sweep counts once
    residual = lambda u: float((physics.A(u) - y).norm() / y.norm())
    data = sample(physics, y, Schedule.from_config(load_problem("A").sampler), models.video, models.image,
                  torch.Generator().manual_seed(0))
    assert residual(data) < 0.05 * residual(out)


def test_start_from_black_is_the_published_prox_in_unit_range():
    """The published start: prox from zero with gamma 200 on frames in [0, 1]; lvtino's, mapped back, equals it
    (kept in the range by lvtino's clamps)."""
    cfg, physics, _, y = problem("A", (8, 16, 16))
    schedule = Schedule.from_config(cfg.sampler)
    zero = torch.zeros_like(physics.A_adjoint(y))
    mine = schedule.init(physics, y, zero)
    y01 = (y + 1) / 2
    published = physics.prox_l2(torch.zeros_like(zero), y01, cfg.sampler.init.gamma)  # in [0, 1]
    assert torch.allclose((mine + 1) / 2, published.clamp(0, 1), atol=1e-6)
    grey = Schedule.from_config(load_problem("A", overrides=["sampler.init.origin=grey"]).sampler)
    assert torch.allclose(grey.init(physics, y, zero), physics.prox_l2(zero, y, cfg.sampler.init.gamma).clamp(-1, 1))
    assert (published.mean() - 0.5).abs() > 0.01  # black and grey starts differ on this example


def test_the_network_is_given_the_schedules_integer_timestep(models):
    cfg, physics, _, y = problem("B", (9, 32, 48))
    seen = []
    net = models.video.transformer
    forward = net.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["timestep"].tolist())
        return forward(*args, **kwargs)
    net.forward = spy
    try:
        sample(physics, y, Schedule.from_config(cfg.sampler), models.video, None, torch.Generator().manual_seed(0))
    finally:
        net.forward = forward
    assert seen == [[float(t)] for t in cfg.sampler.video_timesteps]  # the sigma it pairs with: test_models


def test_callback_sees_every_outer_step(models):
    cfg, physics, _, y = problem("B", (9, 32, 48))
    seen = []
    sample(physics, y, Schedule.from_config(cfg.sampler), models.video, models.image,
           torch.Generator().manual_seed(0), callback=lambda k, x: seen.append((k, tuple(x.shape))))
    assert seen == [(k, (1, 3, 9, 32, 48)) for k in range(5)]


@pytest.mark.parametrize("prior,nfe", [("lvtino", (5, 4)), ("lvtino-video", (5, 0)), ("lvtino-image", (0, 4))])
def test_ablations_run_through_the_same_sampler(prior, nfe):
    cfg, physics, _, y = problem("B", (9, 32, 48))
    restorer = make_prior(prior, cfg, ModelOptions(models="tiny"))
    out, _ = restorer(physics, y, seed=0)
    facts = restorer.facts()
    assert (facts["nfe"]["video"], facts["nfe"]["image"]) == nfe
    assert facts["nfe"]["total"] == sum(nfe) and "meaningless" in facts["models_note"]
    assert out.shape == (1, 3, 9, 32, 48)
    assert "video_model" in facts["seconds_per_stage"] or nfe[0] == 0


def test_schedule_mistakes_are_caught_before_loading():
    cfg = load_problem("B", overrides=["sampler.image_timesteps=[374, 249]"])
    with pytest.raises(UserError, match="image_timesteps: 2 given, the 5 outer steps need 4"):
        Schedule.from_config(cfg.sampler)
    cfg = load_problem("B", overrides=["sampler.data_step_1.gamma=[1.0, 2.0]"])
    with pytest.raises(UserError, match="data_step_1.gamma: 2 values given, step 2 needs one"):
        make_prior("lvtino", cfg, ModelOptions(models="tiny"))
    with pytest.raises(UserError, match=r"sampler.video_timesteps\[0\]=1200: expected a whole number from 0 to 999"):
        load_problem("B", overrides=["sampler.video_timesteps=[1200, 522, 375, 255, 125]"])


def test_the_published_clamps_are_a_setting():
    """sampler.clamp=published: the SDXL decodes are left as they come, and the tv3d and jpeg solvers project
    their iterates onto the box after every iteration (each step against the published code: test_published)."""
    from lvtino.solvers.gradient import surrogate_gradient_steps
    from lvtino.solvers.tv import tv3d_adam

    cfg, physics, _, y = problem("A", (8, 16, 16))
    published = Schedule.from_config(load_problem("A", overrides=["sampler.clamp=published"]).sampler)
    ours = Schedule.from_config(cfg.sampler)
    assert (published.clamps_decodes, ours.clamps_decodes) == (False, True)
    x0 = torch.linspace(-3, 3, 3 * 8 * 16 * 16).view(1, 3, 8, 16, 16)
    boxed = tv3d_adam(physics, y, x0, lam=1e-6, iterations=3, lr=0.02, box=(-1, 1))
    free = tv3d_adam(physics, y, x0, lam=1e-6, iterations=3, lr=0.02)
    assert float(boxed.abs().max()) <= 1 and float(free.abs().max()) > 2
    from lvtino.physics.jpeg import JPEG
    jpeg = JPEG(10)
    yj = jpeg.A(torch.rand(1, 3, 2, 16, 16) * 2 - 1)
    stepped = surrogate_gradient_steps(jpeg, yj, 1.5 * torch.ones(1, 3, 2, 16, 16), 0.6, 5, box=(-1, 1))
    assert float(stepped.max()) <= 1 and float(surrogate_gradient_steps(jpeg, yj, 1.5 * torch.ones_like(
        stepped), 0.6, 5).max()) > 1


def test_priors_sharing_networks_report_their_own_seconds_and_calls():
    """Two runs on one set of loaded networks (a Restorer's, a batch's): each prior's facts hold its own network
    time and calls, not the sum since loading; the networks keep their own timer."""
    from lvtino.pipeline.priors import Networks

    cfg, physics, _, y = problem("B", (9, 32, 48))
    networks = Networks()
    first = make_prior("lvtino-video", cfg, ModelOptions(models="tiny"), networks=networks)
    first(physics, y, seed=0)
    one = first.facts()["seconds_per_stage"]["video_model"]
    second = make_prior("lvtino-video", cfg, ModelOptions(models="tiny"), networks=networks)
    assert second.models is first.models
    assert second.facts()["seconds_per_stage"].get("video_model", 0.0) == 0.0 and second.facts()["nfe"]["total"] == 0
    second(physics, y, seed=0)
    two = second.facts()["seconds_per_stage"]["video_model"]
    assert two > 0
    assert networks.timer.seconds["video_model"] == pytest.approx(one + two, abs=2e-3)
