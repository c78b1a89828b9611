"""Forward operators y = A(x) on videos shaped (B, C, T, H, W) with values in [-1, 1].

The verbs follow deepinv: ``A``, ``A_adjoint``, ``A_adjoint_A``, ``A_A_adjoint``,
``A_dagger`` and ``prox_l2``. A concrete linear operator writes ``A`` and
``A_adjoint``; the base class supplies a conjugate-gradient ``prox_l2`` and
``A_dagger``, which subclasses replace by closed forms where one exists.
Composition reads like the math: ``(p2 * p1).A(x) == p2.A(p1.A(x))``.

Restoring a long video in windows of time needs four more verbs
(``TimeWindows``); an operator implements them (``FrameByFrame`` for one that
acts on each frame alone) and the pipeline checks for them before it plans.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lvtino.solvers.cg import conjugate_gradient

Shape = tuple[int, int, int]  # (T, H, W)


class Physics:
    """A measurement operator, possibly non-linear.

    ``factors`` is (temporal, height, width): how many signal samples one
    measurement sample stands for along each axis. It fixes the output size of a
    restoration: signal frames = temporal factor x measured frames, and so on.
    """

    factors: Shape = (1, 1, 1)
    linear = False  # True for operators with an exact adjoint

    def A(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.A(x)

    def output_shape(self, shape: Shape) -> Shape:
        """(T, H, W) of A(x) for a signal of shape (T, H, W)."""
        return shape

    def measure(self, x: Tensor, noise_std: float, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> Tensor:
        """Simulate y = A(x) + n, n Gaussian with std ``noise_std`` in [0, 1] units.

        Signals live in [-1, 1], twice the [0, 1] range, so the std is doubled here.
        ``noise`` (standard normal, shaped like y) replaces a draw from ``generator``.
        """
        y = self.A(x)
        if noise_std > 0:
            y = y + (2.0 * noise_std) * (_randn_like(y, generator) if noise is None else noise.to(y))
        return y

    def linear_surrogate(self) -> "LinearPhysics":
        """The linear operator that linear solvers (pinv, TV) use in place of this one."""
        raise NotImplementedError(f"{type(self).__name__} has no linear surrogate")

    def __mul__(self, inner: "LinearPhysics") -> "Physics":
        """``(self * inner).A(x) == self.A(inner.A(x))``."""
        return ComposedPhysics(self, inner)


@runtime_checkable
class TimeWindows(Protocol):
    """The verbs that let the pipeline restore an operator in windows of time (``pipeline.windows``) and
    measure a video a few frames at a time (``pipeline.degrade``)."""

    def time_supports(self, frames: int) -> list[tuple[int, int] | None]:
        """For each measured frame, the signal frames [lo, hi) it depends on (None: not contiguous)."""

    def restrict_time(self, start: int, end: int,
                      within: tuple[int, int] | None = None) -> tuple["Physics", list[int]]:
        """The operator on signal frames [start, end), and the measured frames that depend on them only.

        Those measured frames are exactly ``A`` of the window: y[rows] = A_w(x[start:end]).
        With ``within=(lo, hi)`` around [start, end), the rows are the measured
        frames that depend on some frame of [start, end) and on no frame outside
        [lo, hi), and A_w is their part that acts on [start, end).
        """

    def time_columns(self, rows: Tensor) -> Tensor:
        """The signal frames, ascending, that measured frames ``rows`` depend on."""

    def restrict_columns(self, rows: Tensor, cols: Tensor) -> "Physics":
        """The operator from signal frames ``cols`` (in that order) to measured frames ``rows``."""


class FrameByFrame:
    """``TimeWindows`` of an operator that acts on each frame alone: measured frame t is signal frame t."""

    def time_supports(self, frames: int) -> list[tuple[int, int] | None]:
        return [(t, t + 1) for t in range(frames)]

    def restrict_time(self, start: int, end: int,
                      within: tuple[int, int] | None = None) -> tuple["Physics", list[int]]:
        return self, list(range(start, end))

    def time_columns(self, rows: Tensor) -> Tensor:
        return torch.as_tensor(rows, dtype=torch.long)

    def restrict_columns(self, rows: Tensor, cols: Tensor) -> "Physics":
        return self


def frame_noise(seed: int, rows, shape: tuple[int, ...], dtype: torch.dtype = torch.float64) -> Tensor:
    """Standard normal noise (1, C, len(rows), H, W), drawn per measured frame from (seed, frame): the same
    numbers whether a video is measured whole or a few frames at a time. ``shape`` is (C, H, W)."""
    parts = [torch.randn((1, shape[0], 1, *shape[1:]), dtype=dtype,
                         generator=torch.Generator().manual_seed((seed * 1_000_003 + int(r)) % 2**63))
             for r in rows]
    return torch.cat(parts, dim=2)


class LinearPhysics(Physics):
    """A linear operator with an exact adjoint."""

    linear = True

    def A_adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def A_adjoint_A(self, x: Tensor) -> Tensor:
        return self.A_adjoint(self.A(x))

    def A_A_adjoint(self, y: Tensor) -> Tensor:
        return self.A(self.A_adjoint(y))

    def linear_surrogate(self) -> "LinearPhysics":
        return self

    def split_time(self) -> tuple[object, "LinearPhysics"] | None:
        """(M_t, the per-frame operator) when A applies a band M_t in time to per-frame measurements
        (``SeparableLinear``); None when no such split is known (the solvers then take A whole)."""
        return None

    def prox_l2(self, z: Tensor, y: Tensor, gamma: float, tol: float = 1e-6, max_iter: int = 100) -> Tensor:
        r"""argmin_u 0.5 * ||A u - y||^2 + ||u - z||^2 / (2 * gamma).

        Solves (I + gamma A^T A) u = z + gamma A^T y by conjugate gradients,
        started at z.
        """
        b = z + gamma * self.A_adjoint(y)
        return conjugate_gradient(
            lambda u: u + gamma * self.A_adjoint_A(u), b, init=z, max_iter=max_iter, tol=tol
        )

    def A_dagger(self, y: Tensor, eps: float = 0.0, tol: float = 1e-6, max_iter: int = 100) -> Tensor:
        r"""Regularised pseudo-inverse A^T (A A^T + eps I)^{-1} y.

        With eps = 0 this is the minimum-norm least-squares solution. The base class
        solves the normal equations (A A^T + eps I) w = y by conjugate gradients.
        """
        w = conjugate_gradient(
            lambda v: self.A_A_adjoint(v) + eps * v, y, max_iter=max_iter, tol=tol
        )
        return self.A_adjoint(w)

    def __mul__(self, other: "LinearPhysics") -> "LinearPhysics":
        """``(self * other).A(x) == self.A(other.A(x))``."""
        return ComposedLinearPhysics(self, other)


class ComposedPhysics(Physics):
    """outer(inner(x)) for a linear ``inner``; ``outer`` may be non-linear (JPEG after downsampling)."""

    def __init__(self, outer: Physics, inner: LinearPhysics):
        self.outer, self.inner = outer, inner
        self.factors = tuple(a * b for a, b in zip(outer.factors, inner.factors))

    def A(self, x: Tensor) -> Tensor:
        return self.outer.A(self.inner.A(x))

    def measure(self, x: Tensor, noise_std: float, generator: torch.Generator | None = None,
                noise: Tensor | None = None) -> Tensor:
        return self.outer.measure(self.inner.A(x), noise_std, generator, noise)

    def time_columns(self, rows: Tensor) -> Tensor:
        self._check_windows()
        return self.inner.time_columns(rows)

    def restrict_columns(self, rows: Tensor, cols: Tensor) -> "Physics":
        self._check_windows()
        return self.outer * self.inner.restrict_columns(rows, cols)

    def output_shape(self, shape: Shape) -> Shape:
        return self.outer.output_shape(self.inner.output_shape(shape))

    def linear_surrogate(self) -> "LinearPhysics":
        return self.outer.linear_surrogate() * self.inner

    def time_supports(self, frames: int) -> list[tuple[int, int] | None]:
        self._check_windows()
        return self.inner.time_supports(frames)

    def restrict_time(self, start: int, end: int,
                      within: tuple[int, int] | None = None) -> tuple["Physics", list[int]]:
        self._check_windows()
        inner, rows = self.inner.restrict_time(start, end, within)
        return self.outer * inner, rows

    def _check_windows(self) -> None:
        per_frame = isinstance(self.outer, TimeWindows) and self.outer.factors[0] == 1 \
            and self.outer.time_supports(2) == [(0, 1), (1, 2)]
        if not per_frame or not isinstance(self.inner, TimeWindows):
            raise NotImplementedError(f"{self!r}: windows need an outer operator that acts frame by frame and an "
                                      "inner one with TimeWindows")

    def __repr__(self) -> str:
        return f"{self.outer!r} * {self.inner!r}"


class ComposedLinearPhysics(ComposedPhysics, LinearPhysics):
    """outer(inner(x)) for linear operators; the adjoint runs the adjoints in reverse order."""

    def A_adjoint(self, y: Tensor) -> Tensor:
        return self.inner.A_adjoint(self.outer.A_adjoint(y))

    def linear_surrogate(self) -> "LinearPhysics":
        return self


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Noise drawn on the generator's device (so a seed gives the same draw anywhere)."""
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
