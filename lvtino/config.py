"""Typed problem presets, filled from the YAML files of ``configs/``.

One preset per problem holds the operator chain, the noise level, the settings of
the classical solvers and the sampler's tuned schedule. ``--set key=value``
overrides any entry by its dotted path (``tv.lam_space=0.02``,
``operator.1.downsample.filter=bilinear``) before the dataclasses are filled, so a
mistyped key is caught by name.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from lvtino.errors import UserError

DATA_STEP_METHODS = ("prox", "tv_time", "tv3d", "normal", "jpeg")
INIT_METHODS = ("prox", "interpolate")


@dataclass
class PinvConfig:
    """``--prior pinv``: u = A^T (A A^T + eps I)^{-1} y (eps = 0: the pseudo-inverse)."""

    eps: float = 1e-4


@dataclass
class TVConfig:
    """``--prior tv``: min 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1 by PDHG."""

    lam_space: float = 0.01
    lam_time: float = 0.01
    iterations: int = 100
    tau: float = 0.25
    sigma: float = 0.25
    theta: float = 1.0
    tol: float = 1e-4


@dataclass
class DataStepConfig:
    """One data-consistency step of the sampler. List values are per outer step.

    - prox: argmin 0.5 ||A u - y||^2 + ||u - x||^2 / (2 gamma)
    - tv_time: temporal-TV by PDHG with weight lam, ``iterations``, tau, sigma
    - tv3d: smoothed 3-D TV by Adam with weight lam, ``iterations``, lr, eps
    - normal: CG on (A^T A + eps I) u = A^T y + eps x, ``iterations`` steps
    - jpeg: ``iterations`` surrogate-gradient steps with weight gamma
    """

    method: str = "prox"
    gamma: list[float] = field(default_factory=list)
    lam: list[float] = field(default_factory=list)
    iterations: int = 0
    eps: float = 0.0
    lr: float = 0.0
    tau: float = 0.25
    sigma: float = 0.25


@dataclass
class InitConfig:
    """Where the sampler starts: ``prox`` from zero with weight gamma, or ``interpolate`` y."""

    method: str = "prox"
    gamma: float = 200.0


@dataclass
class SamplerConfig:
    """The paper's Algorithm 1 schedule: one entry per outer step."""

    video_timesteps: list[int] = field(default_factory=list)
    image_timesteps: list[int] = field(default_factory=list)
    init: InitConfig = field(default_factory=InitConfig)
    data_step_1: DataStepConfig = field(default_factory=DataStepConfig)
    data_step_2: DataStepConfig = field(default_factory=DataStepConfig)


@dataclass
class WindowConfig:
    """Long videos are restored in windows of ``frames`` signal frames overlapping by ``overlap``.

    ``frames`` is rounded down and ``overlap`` up to multiples of the operator's
    temporal factor (whole measured frames per window); the overlap is raised to
    what the operator's reach needs (6 frames for a 7-frame blur).
    """

    frames: int = 25
    overlap: int = 8


@dataclass
class ProblemConfig:
    name: str
    description: str = ""
    operator: list[dict[str, Any]] = field(default_factory=list)
    noise_std: float = 0.001
    pinv: PinvConfig = field(default_factory=PinvConfig)
    tv: TVConfig = field(default_factory=TVConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    window: WindowConfig = field(default_factory=WindowConfig)

    def validate(self) -> "ProblemConfig":
        if self.noise_std < 0:
            raise UserError(f"noise_std={self.noise_std} must be >= 0")
        for key in ("data_step_1", "data_step_2"):
            method = getattr(self.sampler, key).method
            if method not in DATA_STEP_METHODS:
                raise UserError(f"sampler.{key}.method={method!r} is not one of {', '.join(DATA_STEP_METHODS)}")
        if self.sampler.init.method not in INIT_METHODS:
            raise UserError(f"sampler.init.method={self.sampler.init.method!r} is not one of {', '.join(INIT_METHODS)}")
        if self.window.frames < 1 or self.window.overlap < 0:
            raise UserError(f"window.frames={self.window.frames}, window.overlap={self.window.overlap}: "
                            "need frames >= 1 and overlap >= 0")
        if self.tv.iterations < 0:
            raise UserError(f"tv.iterations={self.tv.iterations} must be >= 0")
        return self


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
        if not path.is_file():
            raise UserError(f"--config {config}: no such file")
        text = path.read_text()
        source = str(path)
    else:
        if problem not in known_problems():
            raise UserError(f"unknown problem {problem!r} (known: {', '.join(known_problems())})")
        text = (_preset_dir() / f"{problem}.yaml").read_text()
        source = f"{problem}.yaml"
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
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
            raise UserError(f"--set {item!r}: expected key=value")
        value = yaml.safe_load(text) if text else ""
        _set_path(raw, key.split("."), value, key)
    return raw


def _set_path(node: Any, parts: list[str], value: Any, key: str) -> None:
    head, rest = parts[0], parts[1:]
    if isinstance(node, list):
        if not head.isdigit() or int(head) >= len(node):
            raise UserError(f"config key unknown: {key} ({head!r} is not an index below {len(node)})")
        idx = int(head)
        if rest:
            _set_path(node[idx], rest, value, key)
        else:
            node[idx] = value
        return
    if not isinstance(node, dict):
        raise UserError(f"config key unknown: {key} ({head!r} is below a value, not a section)")
    if rest:
        if head not in node:
            node[head] = {}
        _set_path(node[head], rest, value, key)
    else:
        node[head] = value


def from_dict(cls, data: Any, path: str = ""):
    """Fill dataclass ``cls`` from ``data``, refusing unknown keys by their dotted path."""
    if not isinstance(data, dict):
        raise UserError(f"config {path or 'root'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise UserError(f"config key unknown: {where} (known here: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{path}.{name}" if path else name)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise UserError(f"config {path or cls.__name__}: {err}") from None


def _coerce(tp, value, path):
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    if origin is list:
        (item,) = typing.get_args(tp)
        values = value if isinstance(value, list) else [value]
        return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(values)]
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UserError(f"config {path}={value!r}: expected a number") from None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise UserError(f"config {path}={value!r}: expected a whole number")
        return int(value)
    if tp is str and not isinstance(value, str):
        raise UserError(f"config {path}={value!r}: expected text")
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
