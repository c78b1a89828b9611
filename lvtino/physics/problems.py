"""The registry: operator names in a problem preset -> operator classes.

A preset's ``operator`` entry is a list applied in order, first to last, e.g.
``[{temporal_pool: {factor: 4}}, {downsample: {factor: 4, filter: bicubic}}]``
for Problem A. The signal's own sizes (frames, height, width) are not part of the
preset: ``build_physics`` threads them through the chain.
"""

from __future__ import annotations

import inspect
from typing import Any

from lvtino.physics.base import Physics, Shape
from lvtino.physics.jpeg import JPEG
from lvtino.physics.spatial import Downsampling
from lvtino.physics.temporal import TemporalAveragePool, TemporalBlur

# name -> (class, how the class is told the signal's size)
OPERATORS: dict[str, tuple[type, str | None]] = {
    "temporal_pool": (TemporalAveragePool, "frames"),
    "temporal_blur": (TemporalBlur, "frames"),
    "downsample": (Downsampling, "size"),
    "jpeg": (JPEG, None),
}


def _operator_params(cls: type, sized_by: str | None) -> list[str]:
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    return [p for p in params if p != sized_by]


def build_physics(chain: list[dict[str, Any]], shape: Shape) -> Physics:
    """Compose the operators of ``chain`` for a signal of shape (T, H, W)."""
    if not chain:
        raise ValueError("operator: the chain is empty; name at least one operator")
    physics = None
    for i, entry in enumerate(chain):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"operator[{i}]: expected one '{{name: {{params}}}}' entry, got {entry!r}")
        (name, params), = entry.items()
        if name not in OPERATORS:
            raise ValueError(f"operator[{i}]: unknown operator {name!r} (known: {', '.join(OPERATORS)})")
        cls, sized_by = OPERATORS[name]
        params = dict(params or {})
        allowed = _operator_params(cls, sized_by)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"operator[{i}] {name}: unknown parameter {unknown[0]!r} (allowed: {', '.join(allowed)})")
        if physics is not None and not hasattr(physics, "A_adjoint"):
            raise ValueError(f"operator[{i}] {name}: nothing may follow the non-linear {chain[i - 1]}")
        if sized_by == "frames":
            params["frames"] = shape[0]
        elif sized_by == "size":
            params["size"] = shape[1:]
        op = cls(**params)
        shape = op.output_shape(shape)
        physics = op if physics is None else op * physics
    return physics


def chain_factors(chain: list[dict[str, Any]]) -> Shape:
    """(temporal, height, width) factors of a chain, which do not depend on the signal's size."""
    return build_physics(chain, (1, 1, 1)).factors
