"""The sampler's schedule, resolved from a preset before any network is loaded.

Each data-consistency method is a function of (physics, y, x) with its
parameters for one outer step already looked up, so the sampler's loop never
sees a method name, an operator class or a tuned number.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

from torch import Tensor

from lvtino.config import DataStepConfig, InitConfig, SamplerConfig, per_step
from lvtino.errors import UserError
from lvtino.solvers.baselines import interpolation_start, project
from lvtino.solvers.cg import normal_equations
from lvtino.solvers.gradient import surrogate_gradient_steps
from lvtino.solvers.tv import tv3d_adam, tv_pdhg

DataStep = Callable[[object, Tensor, Tensor], Tensor]  # (physics, y, x) -> x


def _prox(physics, y, x, gamma):
    return physics.linear_surrogate().prox_l2(x, y, gamma)


def _tv_time(physics, y, x, lam, iterations, tau, sigma):
    return tv_pdhg(physics.linear_surrogate(), y, x, lam_space=0.0, lam_time=lam, iterations=iterations,
                   tau=tau, sigma=sigma)


def _tv3d(physics, y, x, lam, iterations, lr, eps, box):
    return tv3d_adam(physics.linear_surrogate(), y, x, lam=lam, iterations=iterations, lr=lr, eps=eps, box=box)


def _normal(physics, y, x, eps, iterations):
    return normal_equations(physics.linear_surrogate(), y, x, eps=eps, max_iter=iterations)


def _jpeg(physics, y, x, gamma, iterations, box):
    return surrogate_gradient_steps(physics, y, x, gamma=gamma, iterations=iterations, box=box)


PIXELS = (-1.0, 1.0)
# The published code projects a prox's output (and its temporal-TV step's) onto [-1, 1], keeps the Adam-TV3 and JPEG
# iterates there after every iteration, and leaves the normal equations' output as it comes.
PUBLISHED_OUTPUT = {"prox": PIXELS, "tv_time": PIXELS, "tv3d": None, "jpeg": None, "normal": None, "project": PIXELS}
# Its start from black is its prox on frames in [0, 1], projected onto [-1, 1] in those units: [-3, 1] in lvtino's
BLACK_START_BOX = (-3.0, 1.0)


def _within(step: DataStep, box: tuple[float, float] | None) -> DataStep:
    """``step`` with its output projected onto ``box`` (None: as it comes)."""
    if box is None:
        return step
    lo, hi = box
    return lambda physics, y, x: step(physics, y, x).clamp(lo, hi)


def _bind(cfg: DataStepConfig, k: int, what: str, published: bool = False) -> DataStep:
    """The data step ``cfg`` with its parameters for outer step k and its clamps: lvtino's (its output in [-1, 1],
    the iterations free) or, with ``published``, the published code's (``PUBLISHED_OUTPUT``; the Adam-TV3 and
    JPEG iterates projected after every iteration)."""
    m = cfg.method
    box = PIXELS if published else None  # the iterative steps' projection
    if m == "none":
        raise UserError(f"{what}.method=none: only sampler.final_step may be none")
    if m == "prox":
        step = partial(_prox, gamma=per_step(cfg.gamma, k, f"{what}.gamma"))
    elif m == "tv_time":
        step = partial(_tv_time, lam=per_step(cfg.lam, k, f"{what}.lam"), iterations=cfg.iterations,
                       tau=cfg.tau, sigma=cfg.sigma)
    elif m == "tv3d":
        step = partial(_tv3d, lam=per_step(cfg.lam, k, f"{what}.lam"), iterations=cfg.iterations, lr=cfg.lr,
                       eps=cfg.eps, box=box)
    elif m == "normal":
        step = partial(_normal, eps=cfg.eps, iterations=cfg.iterations)
    elif m == "jpeg":
        step = partial(_jpeg, gamma=per_step(cfg.gamma, k, f"{what}.gamma"), iterations=cfg.iterations, box=box)
    elif m == "project":
        step = partial(project, eps=cfg.eps)
    else:
        raise UserError(f"{what}.method={m!r} is not a data step")
    return _within(step, PUBLISHED_OUTPUT[m] if published else PIXELS)


def _init(cfg: InitConfig, published: bool = False) -> DataStep:
    r"""The start: the prox (gamma) from black or grey frames, or the measurement-consistent interpolation.

    The published code takes the prox from zero on frames in [0, 1]: black. For an
    operator that keeps constants (every row of A sums to one, as averaging,
    resampling and the JPEG surrogate do), argmin 0.5 ||A u' - y'||^2 + ||u'||^2 /
    (2 gamma) over u' = (u + 1) / 2, y' = (y + 1) / 2 is the same problem in [-1, 1]
    units, scaled by 1/4, with the origin at u = -1: the prox from -1 with the same gamma.
    lvtino keeps the start in [-1, 1]; the published code projects that prox onto [-1, 1] in its [0, 1] units
    (``BLACK_START_BOX``: nothing below -3, nothing above 1 in lvtino's), and its Problem C start (a network's
    frames) lies in [-1, 1].
    """
    if cfg.method == "prox":
        origin = -1.0 if cfg.origin == "black" else 0.0
        start = lambda physics, y, x: physics.linear_surrogate().prox_l2(x + origin, y, cfg.gamma)  # noqa: E731
    else:
        start = lambda physics, y, x: interpolation_start(physics, y, eps=1e-4,  # noqa: E731
                                                          motion=cfg.motion == "motion")
    published_box = BLACK_START_BOX if cfg.method == "prox" and cfg.origin == "black" else PIXELS
    return _within(start, published_box if published else PIXELS)


@dataclass(frozen=True)
class OuterStep:
    k: int
    video_timestep: float
    data_step_1: DataStep
    image_timestep: float | None  # None on the last step: no image sweep
    data_step_2: DataStep | None


@dataclass(frozen=True)
class Schedule:
    init: DataStep
    steps: tuple[OuterStep, ...]
    output: str = "data"            # "data": the last data step (then ``final``); "prior": the last model estimate
    final: DataStep | None = None   # in "data" mode, after the last data step: a solve that fits y
    clamp: str = "lvtino"           # where the iterate is kept in [-1, 1] (``SamplerConfig.clamp``)

    @property
    def clamps_decodes(self) -> bool:
        """Whether the image model's decodes are kept in [-1, 1] (lvtino's); the published code leaves them."""
        return self.clamp == "lvtino"

    @classmethod
    def from_config(cls, cfg: SamplerConfig) -> "Schedule":
        n = len(cfg.video_timesteps)
        if n == 0:
            raise UserError("sampler.video_timesteps: at least one outer step is needed")
        if len(cfg.image_timesteps) != n - 1:
            raise UserError(f"sampler.image_timesteps: {len(cfg.image_timesteps)} given, the {n} outer steps "
                            f"need {n - 1} (one per step but the last)")
        for t in [*cfg.video_timesteps, *cfg.image_timesteps]:
            if not 0 <= t < 1000:
                raise UserError(f"sampler timestep {t}: must lie in [0, 1000)")
        published = cfg.clamp == "published"
        steps = []
        for k, tv in enumerate(cfg.video_timesteps):
            last = k == n - 1
            steps.append(OuterStep(
                k=k, video_timestep=float(tv),
                data_step_1=_bind(cfg.data_step_1, k, "sampler.data_step_1", published),
                image_timestep=None if last else float(cfg.image_timesteps[k]),
                data_step_2=None if last else _bind(cfg.data_step_2, k, "sampler.data_step_2", published)))
        final = None
        if cfg.output == "data" and cfg.final_step.method != "none":
            final = _bind(cfg.final_step, n - 1, "sampler.final_step")
        return cls(_init(cfg.init, published), tuple(steps), cfg.output, final, cfg.clamp)
