"""Every ``--prior``, behind one call: ``prior(physics, y, seed, span) -> (x, facts)`` (the ``Prior`` protocol).

``span`` is the window's output frames [start, end). The classical priors (pinv,
tv) need nothing but the preset; the guide prior reads the guide's frames of the
span. The generative ones (lvtino and its two ablations) load their networks
once, when the prior is made, so that a run over many windows or clips pays for
loading once. What each prior is (its networks, its bar, its help) is in
``pipeline.catalog``; nothing here or elsewhere tells priors apart by name.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Callable, NamedTuple, Protocol

import torch

from lvtino.config import CLAMPS, SAMPLER_OUTPUTS, ProblemConfig
from lvtino.errors import UserError, said
from lvtino.models.base import DTYPES, Placement
from lvtino.models.loader import TINY_NOTE, load_models
from lvtino.models.options import ModelOptions
from lvtino.pipeline.catalog import GUIDE, PRIORS, UPSCALER, PriorEntry, networks_of
from lvtino.runtime import StageTimer, resident_memory
from lvtino.validation import Choice
from lvtino.sampling.sampler import sample
from lvtino.sampling.schedule import Schedule
from lvtino.solvers.baselines import pinv_restore, tv_restore, upscaled_start
from lvtino.solvers.guide import guided_restore
from lvtino.pipeline.job import guide_index
from lvtino.solvers.tv import compile_works

class Solver(NamedTuple):
    """A classical prior's solver: ``run(physics, y, cfg, callback after each iteration) -> (x, facts)``, how
    many iterations it makes (its progress bar's total; None: no bar), and whether the preset asks for it compiled
    (``torch.compile``, refused where it cannot run)."""

    run: Callable
    iterations: Callable[[ProblemConfig], int | None] = lambda cfg: None
    compiled: Callable[[ProblemConfig], bool] = lambda cfg: False


CLASSICAL = {
    "pinv": Solver(lambda physics, y, cfg, callback: pinv_restore(physics, y, cfg.pinv.eps)),
    "tv": Solver(lambda physics, y, cfg, callback: tv_restore(
        physics, y, lam_space=cfg.tv.lam_space, lam_time=cfg.tv.lam_time, iterations=cfg.tv.iterations,
        tau=cfg.tv.tau, sigma=cfg.tv.sigma, theta=cfg.tv.theta, tol=cfg.tv.tol, eps=cfg.pinv.eps,
        motion=cfg.tv.start == "motion", callback=callback, compiled=cfg.tv.compile),
        lambda cfg: cfg.tv.iterations, lambda cfg: cfg.tv.compile),
}
NO_NETWORKS = {"video": 0, "image": 0, "total": 0}
log = logging.getLogger("lvtino")


class Prior(Protocol):
    """What a run asks of a prior (``make_prior`` builds one from its ``pipeline.catalog`` entry)."""

    entry: PriorEntry

    def __call__(self, physics, y: torch.Tensor, seed: int = 0, span: tuple[int, int] | None = None
                 ) -> tuple[torch.Tensor, dict]:
        """The window's restored frames in [-1, 1], same shape as the signal, and the window's facts (e.g. the
        solver's iterations)."""

    def facts(self) -> dict:
        """The run's facts so far: at least ``nfe`` (network evaluations: video, image, total)."""


def network_dtypes(option: str, device: torch.device) -> tuple[torch.dtype, torch.dtype]:
    """(video, image) dtypes for ``--dtype``: ``auto`` is the published code's on CUDA (Wan in bfloat16, SDXL in
    float16 with the fp16-fix VAE) and float32 on the CPU; a named dtype serves both."""
    if option == "auto":
        cuda = device.type == "cuda"
        return (torch.bfloat16, torch.float16) if cuda else (torch.float32, torch.float32)
    if option in DTYPES:
        return DTYPES[option], DTYPES[option]
    raise UserError(f"{said('dtype', option)}: unknown (known: auto, {', '.join(DTYPES)})")


class ClassicalPrior:
    """A solver of ``CLASSICAL`` with the preset's settings."""

    def __init__(self, entry: PriorEntry, cfg: ProblemConfig):
        self.entry, self.name, self.cfg = entry, entry.name, cfg
        self.solver = CLASSICAL[entry.name]
        if self.solver.compiled(cfg) and compile_works() is not None:
            raise UserError(f"tv.compile=true: torch.compile does not run here ({compile_works()}); set it to false")

    def __call__(self, physics, y: torch.Tensor, seed: int = 0, span=None) -> tuple[torch.Tensor, dict]:
        with _window_progress(self.solver.iterations(self.cfg), self.entry.progress) as tick:
            x, info = self.solver.run(physics, y, self.cfg, tick)
        return x.clamp(-1, 1), {"solver_iterations": info.get("iterations")}

    def facts(self) -> dict:
        return {"nfe": dict(NO_NETWORKS)}


class GuidePrior:
    """The guide's frames of each window made consistent with the input (``solvers.guide.guided_restore``)."""

    entry = PriorEntry(GUIDE, "another tool's restoration made consistent with the input")
    name = GUIDE

    def __init__(self, cfg: ProblemConfig, guide, offset: int = 0):
        """``guide``: a ``video.frames.DecodedFrames`` of the guide, already checked against the output; ``offset``:
        the output frame of its first frame (``pipeline.job.check_guide``)."""
        self.cfg, self.guide, self.offset = cfg, guide, offset

    def __call__(self, physics, y: torch.Tensor, seed: int = 0, span=None) -> tuple[torch.Tensor, dict]:
        start, end = span
        index = [guide_index(self.guide.info, self.offset, t) for t in range(start, end)]
        g = self.guide.get(index, keep_from=index[0])
        g = g.to(y.device, torch.float32)
        x = guided_restore(physics, y, g, self.cfg.guide.reach, self.cfg.pinv.eps)
        return x.clamp(-1, 1), {"solver_iterations": 0}

    def facts(self) -> dict:
        return {"nfe": dict(NO_NETWORKS)}


class UpscalerPrior:
    """``--upscaler FILE``: each window's measured frames brought to full size by a single-image model, made
    consistent with their measured frames, carried to the frames between by the motion start
    (``solvers.baselines.upscaled_start``), and the whole made consistent by the guide's data step
    (``solvers.guide.guided_restore``, with its temporal reach): sharp where the model is, faithful where the
    input speaks."""

    entry = PriorEntry(UPSCALER, "a single-image upscaler model's frames made consistent with the input")
    name = UPSCALER

    def __init__(self, cfg: ProblemConfig, upscaler):
        """``upscaler``: a loaded ``models.upscaler.Upscaler`` whose scale is the operator's."""
        self.cfg, self.upscaler = cfg, upscaler

    def __call__(self, physics, y: torch.Tensor, seed: int = 0, span=None) -> tuple[torch.Tensor, dict]:
        start = upscaled_start(physics, y, self.cfg.pinv.eps, self.upscaler)
        x = guided_restore(physics, y, start, self.cfg.guide.reach, self.cfg.pinv.eps)
        return x.clamp(-1, 1), {"solver_iterations": 0}

    def facts(self) -> dict:
        return {"nfe": dict(NO_NETWORKS), "upscaler": self.upscaler.facts()}


class Networks:
    """Loaded networks, kept by whoever restores more than once (a ``Restorer``, a batch) so that they load once.

    Holds one set at a time: asking for other networks (other kinds, models file,
    device, dtypes, offload or tiling) lets the previous set go first. The set's
    timer (``timer``) sums the networks' stages over every run that used them;
    a prior reports the part of its own run.
    """

    def __init__(self):
        self._key, self._models, self.timer = None, None, None
        self.held_before = None  # bytes this process held before the set loaded (the memory plan's CPU part)

    @property
    def loaded(self) -> bool:
        return self._models is not None

    def get(self, kinds: tuple[str, ...], options: ModelOptions, device: torch.device, dtype: torch.dtype,
            image_dtype: torch.dtype):
        key = (options.models, kinds, str(device), dtype, image_dtype, options.offload, options.vae_tiling)
        if key != self._key:
            self._key, self._models = None, None  # free the old set before loading the new one
            self.held_before = resident_memory()
            placement = Placement(device, dtype, options.offload, options.vae_tiling)
            self.timer = StageTimer(device)
            self._models = load_models(options.models, list(kinds), placement, self.timer,
                                       image_placement=placement.with_dtype(image_dtype))
            self._key = key
        return self._models


class GenerativePrior:
    """The sampler with the networks its entry names; the schedule is checked before any loading."""

    def __init__(self, entry: PriorEntry, cfg: ProblemConfig, options: ModelOptions, device: torch.device,
                 networks: "Networks | None" = None, upscaler=None):
        """``upscaler``: the sampler starts from its consistent frames (``UpscalerPrior``'s output) instead of
        the schedule's start."""
        self.entry, self.name = entry, entry.name
        self.start = UpscalerPrior(cfg, upscaler) if upscaler is not None else None
        if options.output is not None:
            cfg = replace(cfg, sampler=replace(cfg.sampler, output=Choice(SAMPLER_OUTPUTS).parse(options.output,
                                                                                                "sampler.output")))
        if options.clamp is not None:
            cfg = replace(cfg, sampler=replace(cfg.sampler, clamp=Choice(CLAMPS).parse(options.clamp, "sampler.clamp")))
        self.schedule = Schedule.from_config(cfg.sampler)
        dtype, image_dtype = network_dtypes(options.dtype, device)
        if options.models == "tiny":
            log.warning("%s: %s", said("models", "tiny"), TINY_NOTE)
        self.timer = StageTimer(device)  # this run's data steps; the networks' stages are timed by their set's
        networks = networks or Networks()
        self.models = networks.get(entry.networks, options, device, dtype, image_dtype)
        self.network_timer, self.seconds_before = networks.timer, dict(networks.timer.seconds)
        self.calls_before = {k: getattr(self.models, k).calls if getattr(self.models, k) else 0
                             for k in ("video", "image")}
        self.dtype, self.image_dtype = dtype, image_dtype

    def __call__(self, physics, y: torch.Tensor, seed: int = 0, span=None) -> tuple[torch.Tensor, dict]:
        generator = torch.Generator().manual_seed(seed)
        start = None
        if self.start is not None:
            with self.timer("upscaler"):
                start = self.start(physics, y, seed, span)[0]
        with _window_progress(len(self.schedule.steps), self.entry.progress) as tick:
            x = sample(physics, y, self.schedule, self.models.video, self.models.image, generator, self.timer,
                       callback=tick, start=start)
        return x, {}

    def parameters(self) -> dict[str, int]:
        """Parameters of each network built (what a models file's folders really held)."""
        nets = {}
        if self.models.video is not None:
            nets.update(video_transformer=self.models.video.transformer, video_vae=self.models.video.vae)
        if self.models.image is not None:
            nets.update(image_unet=self.models.image.unet, image_vae=self.models.image.vae)
        return {name: sum(p.numel() for p in net.parameters()) for name, net in nets.items()}

    def seconds(self) -> dict[str, float]:
        """Seconds per stage of this prior's run: its data steps, and the networks' time since it began."""
        networks = {k: v - self.seconds_before.get(k, 0.0) for k, v in self.network_timer.seconds.items()}
        return {k: round(v, 3) for k, v in {**self.timer.seconds, **networks}.items()}

    def facts(self) -> dict:
        video = self.models.video.calls - self.calls_before["video"] if self.models.video else 0
        image = self.models.image.calls - self.calls_before["image"] if self.models.image else 0
        facts = {"nfe": {"video": video, "image": image, "total": video + image},
                 "models": self.models.label, "dtype": str(self.dtype).removeprefix("torch."),
                 "image_dtype": str(self.image_dtype).removeprefix("torch."),
                 "vae_tiled_calls": sum(m.tiled for m in (self.models.video, self.models.image) if m is not None),
                 "parameters": self.parameters(), "seconds_per_stage": self.seconds()}
        if self.models.note:
            facts["models_note"] = self.models.note
        if self.start is not None:
            facts["upscaler"] = self.start.upscaler.facts()
        return facts


@contextlib.contextmanager
def _window_progress(total: int | None, unit: str | None):
    """A callback that ticks a bar of a window's solver iterations or sampler steps, below the frame bar in a
    terminal once the window has taken more than two seconds (None elsewhere, with -q, and for a prior without a
    bar); cleared at the end."""
    import sys

    if unit is None or not sys.stderr.isatty() or log.getEffectiveLevel() > logging.INFO:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, desc="  window", leave=False, delay=2)
    try:
        yield lambda *_: bar.update(1)
    finally:
        bar.close()


def describe_models(name: str, options: ModelOptions | None) -> dict:
    """What the output's metadata says of the networks behind ``name`` (nothing for a classical prior)."""
    if not networks_of(name):
        return {}
    models = (options or ModelOptions()).models
    if models == "tiny":
        return {"models": "tiny", "models_note": TINY_NOTE}
    return {"models": models or "models.yaml"}


def make_prior(name: str, cfg: ProblemConfig, options: ModelOptions | None = None,
               device: torch.device = torch.device("cpu"), networks: Networks | None = None, guide=None,
               guide_offset: int = 0, upscaler=None) -> Prior:
    """The prior ``name`` names in ``pipeline.catalog`` (the guide's with ``guide``, the upscaler's with
    ``upscaler``: a loaded ``models.upscaler.Upscaler``)."""
    if guide is not None:
        return GuidePrior(cfg, guide, guide_offset)
    if upscaler is not None and name == UPSCALER:
        return UpscalerPrior(cfg, upscaler)
    entry = PRIORS.get(name)
    if entry is None:
        raise UserError(f"{said('prior', name)}: unknown prior (known: {', '.join(PRIORS)})")
    if entry.generative:
        return GenerativePrior(entry, cfg, options or ModelOptions(), device, networks, upscaler)
    return ClassicalPrior(entry, cfg)
