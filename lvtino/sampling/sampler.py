"""Algorithm 1 of the paper: alternate a video-model call, a data step, an image sweep, a data step.

Each line of the loop is one line of the algorithm. The priors are optional so
that the ablations run through the same loop: without the video model its call
is skipped (x1 = x), without the image model the image sweep and the data step
that conditions it are skipped (x = x2).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lvtino.models.base import ConsistencyModel
from lvtino.runtime import StageTimer
from lvtino.sampling.schedule import Schedule


def sample(physics, y: Tensor, schedule: Schedule, video: ConsistencyModel | None,
           image: ConsistencyModel | None, generator: torch.Generator, timer: StageTimer | None = None,
           callback: Callable[[int, Tensor], None] | None = None, start: Tensor | None = None) -> Tensor:
    """The restored clip (B, 3, T, H, W) in [-1, 1].

    ``schedule.output`` "data": the last data step's result, then the schedule's
    final solve if it has one (frames that fit y). "prior": the last network
    estimate (the video model's, or the image model's without it), as the
    published code returns; the last data step, whose result it would discard,
    is skipped. ``callback(k, x)`` sees the estimate after each outer step (for
    previews or debugging); nothing is written from inside the loop. Where the
    iterate is kept in [-1, 1] is the schedule's (``schedule.clamp``): each of its
    steps projects its own output. ``start``: where the sampler starts instead of the schedule's own start
    (``--upscaler``'s consistent frames).
    """
    if video is None and image is None:
        raise ValueError("sample needs at least one prior")
    timer = timer or StageTimer()
    with timer("data_steps"):
        if start is not None:
            x = start
        else:
            zero = torch.zeros_like(physics.linear_surrogate().A_adjoint(y))  # the signal's shape
            x = schedule.init(physics, y, zero)
    estimate = x
    for step in schedule.steps:
        last = step is schedule.steps[-1]
        x1 = video.denoise(x, step.video_timestep, generator) if video is not None else x
        if video is not None:
            estimate = x1
        if last and schedule.output == "prior":
            x = estimate
        else:
            with timer("data_steps"):
                x2 = step.data_step_1(physics, y, x1)
            if step.image_timestep is not None and image is not None:
                x3 = image.denoise(x2, step.image_timestep, generator, clamp=schedule.clamps_decodes)
                estimate = x3 if video is None else estimate
                with timer("data_steps"):
                    x = step.data_step_2(physics, y, x3)
            else:
                x = x2
        if callback is not None:
            callback(step.k, x)
    if schedule.output == "data" and schedule.final is not None:
        with timer("data_steps"):
            x = schedule.final(physics, y, x)
    return x
