"""Typed problem presets, filled from the YAML files of ``configs/``.

One preset per problem holds the operator chain, the noise level, the settings of
the classical solvers and the sampler's tuned schedule. ``--set key=value``
overrides any entry by its dotted path (``tv.lam_space=0.02``,
``operator.1.downsample.filter=bilinear``) before the dataclasses are filled, so a
mistyped key is caught by name. Every field declares its rule beside its default
(``lvtino.validation``): NaN, infinities, negatives and wrong types are refused
in one line that names the key and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


from lvtino.errors import UserError, arg
from lvtino.validation import (FINITE, WHOLE, Choice, Flag, Number, Text, parse_yaml, read_text_file, rule_of,
                               setting, show, whole)

DATA_STEP_METHODS = ("prox", "tv_time", "tv3d", "normal", "jpeg", "project")
FINAL_STEP_METHODS = ("none", *DATA_STEP_METHODS)
INIT_METHODS = ("prox", "interpolate")
INIT_ORIGINS = ("black", "grey")
SAMPLER_OUTPUTS = ("data", "prior")
CLAMPS = ("lvtino", "published")
START_METHODS = ("motion", "linear")
MAX_ITERATIONS = 100_000
MAX_WINDOW = 10_000  # frames of one window: its operator's temporal matrix is dense
NON_NEGATIVE = Number(ge=0)
POSITIVE = Number(gt=0)
ITERATIONS = whole(0, MAX_ITERATIONS)
TIMESTEP = whole(0, 999)


@dataclass
class PinvConfig:
    """``--prior pinv``: u = A^T (A A^T + eps I)^{-1} y (eps = 0: the pseudo-inverse)."""

    eps: float = setting(1e-4, NON_NEGATIVE)


@dataclass
class TVConfig:
    """``--prior tv``: min 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1 by PDHG."""

    lam_space: float = setting(0.01, NON_NEGATIVE)
    lam_time: float = setting(0.01, NON_NEGATIVE)
    iterations: int = setting(100, ITERATIONS)
    tau: float = setting(0.25, POSITIVE)
    sigma: float = setting(0.25, POSITIVE)
    theta: float = setting(1.0, Number(ge=0, le=1))
    tol: float = setting(1e-4, NON_NEGATIVE)
    start: str = setting("motion", Choice(START_METHODS))  # frames between measured ones: from motion, or blended
    compile: bool = setting(False, Flag())  # fuse the iteration with torch.compile (long videos; needs a compiler)


@dataclass
class GuideConfig:
    """``--guide VIDEO``: the frames nearest the guide that fit the input, where a correction reaches the frames
    between measurements and fades over about ``reach`` frames (``solvers.guide``); fits to ``pinv.eps``."""

    reach: float = setting(12.0, Number(ge=1, le=10_000))


@dataclass
class DataStepConfig:
    """One data-consistency step of the sampler. List values are per outer step.

    - prox: argmin 0.5 ||A u - y||^2 + ||u - x||^2 / (2 gamma)
    - tv_time: temporal-TV by PDHG with weight lam, ``iterations``, tau, sigma
    - tv3d: smoothed 3-D TV by Adam with weight lam, ``iterations``, lr, eps
    - normal: CG on (A^T A + eps I) u = A^T y + eps x, ``iterations`` steps
    - jpeg: ``iterations`` surrogate-gradient steps with weight gamma
    - project: u = x + A^T (A A^T + eps I)^-1 (y - A u), the nearest frames that fit y (exact for separable A)
    """

    method: str = setting("prox", Choice(FINAL_STEP_METHODS))  # "none": only as final_step
    gamma: list[float] = setting(rule=POSITIVE, factory=list)
    lam: list[float] = setting(rule=NON_NEGATIVE, factory=list)
    iterations: int = setting(0, ITERATIONS)
    eps: float = setting(0.0, NON_NEGATIVE)
    lr: float = setting(0.0, NON_NEGATIVE)
    tau: float = setting(0.25, POSITIVE)
    sigma: float = setting(0.25, POSITIVE)


@dataclass
class InitConfig:
    """Where the sampler starts: ``prox`` with weight gamma from ``origin`` (black frames, as the published code's
    zero in [0, 1] units; or grey, zero in [-1, 1]), or ``interpolate`` y (frames between the measured ones from
    ``motion`` or a ``linear`` blend, made measurement-consistent)."""

    method: str = setting("prox", Choice(INIT_METHODS))
    gamma: float = setting(200.0, POSITIVE)
    origin: str = setting("black", Choice(INIT_ORIGINS))
    motion: str = setting("motion", Choice(START_METHODS))


@dataclass
class SamplerConfig:
    """The paper's Algorithm 1 schedule: one entry per outer step."""

    video_timesteps: list[int] = setting(rule=TIMESTEP, factory=list)
    image_timesteps: list[int] = setting(rule=TIMESTEP, factory=list)
    init: InitConfig = field(default_factory=InitConfig)
    data_step_1: DataStepConfig = field(default_factory=DataStepConfig)
    data_step_2: DataStepConfig = field(default_factory=DataStepConfig)
    # what the sampler returns: ``data``, the last data step then ``final_step`` (frames that fit the measurement);
    # ``prior``, the last video-model estimate as the published code does (its last data step is skipped)
    output: str = setting("data", Choice(SAMPLER_OUTPUTS))
    final_step: DataStepConfig = field(default_factory=lambda: DataStepConfig(method="none"))
    # where the iterate is kept in [-1, 1]: ``lvtino``, the start, both data steps' outputs and both networks'
    # decodes; ``published``, as the published code: the video decodes, every prox's output (the start's in its
    # [0, 1] units) and the temporal-TV step's, the tv3d (Adam-TV3) and jpeg iterates after every iteration; the
    # SDXL decodes and the normal equations' output left as they come (``sampling.schedule.PUBLISHED_OUTPUT``)
    clamp: str = setting("lvtino", Choice(CLAMPS))


@dataclass
class WindowConfig:
    """Long videos are restored in windows of ``frames`` signal frames overlapping by ``overlap``.

    ``frames`` is rounded down and ``overlap`` up to multiples of the operator's
    temporal factor (whole measured frames per window); the overlap is raised to
    what the operator's reach needs (6 frames for a 7-frame blur).
    """

    frames: int = setting(25, whole(1, MAX_WINDOW))
    overlap: int = setting(8, whole(0, MAX_WINDOW))


@dataclass
class ProblemConfig:
    name: str = setting(rule=Text())
    description: str = setting("", Text())
    operator: list[dict[str, Any]] = field(default_factory=list)
    noise_std: float = setting(0.001, Number(ge=0, le=1))
    pinv: PinvConfig = field(default_factory=PinvConfig)
    tv: TVConfig = field(default_factory=TVConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    window: WindowConfig = field(default_factory=WindowConfig)

    def validate(self) -> "ProblemConfig":
        """Checks that involve more than one field (each field's own rule was applied when it was filled)."""
        from lvtino.physics.problems import validate_chain
        from lvtino.solvers.tv import difference_norm2

        self.operator = validate_chain(self.operator, "operator")
        _check_pdhg_steps("tv", self.tv.tau, self.tv.sigma,
                          difference_norm2(self.tv.lam_space > 0, self.tv.lam_time > 0))
        for key in ("data_step_1", "data_step_2"):
            step = getattr(self.sampler, key)
            if step.method == "tv_time":
                _check_pdhg_steps(f"sampler.{key}", step.tau, step.sigma, difference_norm2(False, True))
            if step.method == "tv3d" and step.lr <= 0:
                raise UserError(f"sampler.{key}.lr={step.lr:g}: the tv3d step needs a learning rate > 0")
        return self


def _check_pdhg_steps(key: str, tau: float, sigma: float, norm2: float) -> None:
    """PDHG converges when tau sigma ||D||^2 < 1 (``solvers.tv.difference_norm2``)."""
    if tau * sigma * norm2 >= 1:
        raise UserError(f"{key}.tau={tau:g}, {key}.sigma={sigma:g}: need tau * sigma < {1 / norm2:g} "
                        "for the TV solver to converge")


# -- presets ------------------------------------------------------------------

def _preset_dir():
    return resources.files("lvtino.configs")


def known_problems() -> list[str]:
    names = [p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".yaml")]
    return sorted(n for n in names if n != "models")


def load_raw(problem: str | None = None, config: str | Path | None = None) -> dict:
    """The preset as a dict: a named problem, or a YAML file given by path."""
    if config is not None:
        path = Path(config)
        text = read_text_file(path, arg("config"))
        source = str(path)
    else:
        if problem not in known_problems():
            raise UserError(f"unknown problem {problem!r} (known: {', '.join(known_problems())})")
        text = (_preset_dir() / f"{problem}.yaml").read_text()
        source = f"{problem}.yaml"
    raw = parse_yaml(text, source)
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping at the top level")
    raw.setdefault("name", problem or path.stem)
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with each ``dotted.key=value`` set (value parsed as YAML)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"{arg('overrides')} {item!r}: expected key=value")
        parts = key.split(".")
        if len(parts) > MAX_KEY_PARTS:
            raise UserError(f"{arg('overrides')} {key[:60]}...: a key of {len(parts)} dotted parts; preset keys "
                            f"have at most {MAX_KEY_PARTS}")
        value = parse_yaml(text, f"{arg('overrides')} {key}") if text else ""
        _set_path(raw, parts, value, key)
    return raw


MAX_KEY_PARTS = 8  # the deepest preset key: operator.0.resize.factor


def _set_path(node: Any, parts: list[str], value: Any, key: str) -> None:
    for k, head in enumerate(parts):
        last = k == len(parts) - 1
        if isinstance(node, list):
            if not head.isdigit() or int(head) >= len(node):
                raise UserError(f"config key unknown: {key} ({head!r} is not an index below {len(node)})")
            head = int(head)
        elif not isinstance(node, dict):
            raise UserError(f"config key unknown: {key} ({head!r} is below a value, not a section)")
        elif not last and head not in node:
            node[head] = {}
        if last:
            node[head] = value
        else:
            node = node[head]


def from_dict(cls, data: Any, path: str = ""):
    """Fill dataclass ``cls`` from ``data``, refusing unknown keys by their dotted path and each value that
    breaks its field's rule."""
    if not isinstance(data, dict):
        raise UserError(f"config {path or 'root'}: expected a mapping, got {show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise UserError(f"config key unknown: {where} (known here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}" if path else name, rule_of(fields[name]))
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"config {path + '.' if path else ''}{missing[0]}: missing")
    return cls(**kwargs)


def _coerce(tp, value, path, rule=None):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        values = value if isinstance(value, list) else [value]
        return [_coerce(item, v, f"{path}[{i}]", rule) for i, v in enumerate(values)]
    if rule is not None:
        return rule.parse(value, path)
    if tp is float:
        return FINITE.parse(value, path)
    if tp is int:
        return WHOLE.parse(value, path)
    if tp is str:
        return Text().parse(value, path)
    if tp is bool:
        return Flag().parse(value, path)
    return value


def load_problem(problem: str | None = None, config: str | Path | None = None,
                 overrides: list[str] | None = None) -> ProblemConfig:
    """The typed preset for ``problem`` (or the file ``config``), with ``--set`` overrides."""
    raw = apply_overrides(load_raw(problem, config), overrides or [])
    return from_dict(ProblemConfig, raw).validate()


def per_step(values: list[float], k: int, what: str) -> float:
    """Entry k of a per-step list; a single value serves every step."""
    if not values:
        raise UserError(f"{what}: no value given")
    if len(values) == 1:
        return values[0]
    if k >= len(values):
        raise UserError(f"{what}: {len(values)} values given, step {k} needs one")
    return values[k]
