"""The registry: operator names in a problem preset -> operator classes.

A preset's ``operator`` entry is a list applied in order, first to last, e.g.
``[{temporal_pool: {factor: 4}}, {downsample: {factor: 4, filter: bicubic}}]``
for Problem A. The signal's own sizes (frames, height, width) are not part of the
preset: ``build_physics`` threads them through the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lvtino.errors import UserError
from lvtino.physics.base import Physics, Shape
from lvtino.physics.jpeg import JPEG
from lvtino.physics.separable import PADDINGS
from lvtino.physics.resamplers import RESAMPLERS
from lvtino.physics.spatial import FILTERS, Downsampling, Resize
from lvtino.physics.temporal import BOUNDARIES, COUNTS, KERNELS, TemporalAveragePool, TemporalBlur, TemporalSample
from lvtino.validation import MAX_FACTOR, Choice, Number, Optional, whole

MAX_KERNEL = 255   # taps of a temporal blur


@dataclass(frozen=True)
class OperatorSpec:
    cls: type
    sized_by: str | None        # how the class is told the signal's size: "frames", "size" or nothing
    params: dict[str, Any]      # parameter -> its rule (lvtino.validation)
    scales: str | None = None   # which factors its "factor" parameter sets: "time", "space" or none

    def factors(self, params: dict) -> Shape:
        f = params.get("factor", 1)
        return (f, 1, 1) if self.scales == "time" else (1, f, f) if self.scales == "space" else (1, 1, 1)


OPERATORS: dict[str, OperatorSpec] = {
    "temporal_pool": OperatorSpec(TemporalAveragePool, "frames", {"factor": whole(1, MAX_FACTOR)}, "time"),
    "temporal_blur": OperatorSpec(TemporalBlur, "frames", {
        "size": whole(1, MAX_KERNEL, odd=True), "kernel": Choice(KERNELS),
        "sigma": Optional(Number(gt=0, le=MAX_KERNEL)), "boundary": Choice(BOUNDARIES)}),
    "temporal_sample": OperatorSpec(TemporalSample, "frames", {
        "factor": whole(1, MAX_FACTOR), "exposure": Number(ge=0, le=1), "phase": whole(0, MAX_FACTOR - 1),
        "count": Choice(COUNTS)}, "time"),
    "downsample": OperatorSpec(Downsampling, "size", {
        "factor": whole(1, MAX_FACTOR), "filter": Choice(FILTERS), "padding": Choice(PADDINGS)}, "space"),
    "resize": OperatorSpec(Resize, "size", {"factor": whole(1, MAX_FACTOR), "resampler": Choice(tuple(RESAMPLERS))},
                           "space"),
    "jpeg": OperatorSpec(JPEG, None, {"quality": whole(1, 95)}),
}


def validate_chain(chain: Any, key: str = "operator") -> list[dict[str, dict]]:
    """The chain with every name and parameter checked and typed, or one line naming the entry at fault.

    A preset, a ``--set`` override and the operator a measurement file records all
    pass through here before any operator is built.
    """
    if not isinstance(chain, list) or not chain:
        raise UserError(f"{key}: expected a list of one or more operators, e.g. [{{downsample: {{factor: 4}}}}]")
    out = []
    for i, entry in enumerate(chain):
        where = f"{key}.{i}"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise UserError(f"{where}: expected one '{{name: {{params}}}}' entry, got {_short(entry)}")
        (name, params), = entry.items()
        if name not in OPERATORS:
            raise UserError(f"{where}: unknown operator {_short(name)} (known: {', '.join(OPERATORS)})")
        spec = OPERATORS[name]
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise UserError(f"{where}.{name}: expected a mapping of parameters, got {_short(params)}")
        unknown = sorted(str(p) for p in params if p not in spec.params)
        if unknown:
            raise UserError(f"{where}.{name}: unknown parameter {unknown[0]!r} (allowed: {', '.join(spec.params)})")
        if out and not OPERATORS[next(iter(out[-1]))].cls.linear:
            raise UserError(f"{where}.{name}: nothing may follow the non-linear {next(iter(out[-1]))}")
        out.append({name: {p: spec.params[p].parse(v, f"{where}.{name}.{p}") for p, v in params.items()}})
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build_physics(chain: list[dict[str, Any]], shape: Shape) -> Physics:
    """Compose the operators of ``chain`` for a signal of shape (T, H, W); a bad chain is one ``UserError``."""
    physics = None
    for entry in validate_chain(chain):
        (name, params), = entry.items()
        spec = OPERATORS[name]
        params = dict(params)
        if spec.sized_by == "frames":
            params["frames"] = shape[0]
        elif spec.sized_by == "size":
            params["size"] = shape[1:]
        op = spec.cls(**params)
        shape = op.output_shape(shape)
        physics = op if physics is None else op * physics
    return physics


def chain_factors(chain: list[dict[str, Any]]) -> Shape:
    """(temporal, height, width) factors of a chain, which do not depend on the signal's size."""
    factors = (1, 1, 1)
    for entry in validate_chain(chain):
        (name, params), = entry.items()
        factors = tuple(a * b for a, b in zip(factors, OPERATORS[name].factors(params)))
    return factors
