"""Data consistency for operators without an adjoint (JPEG)."""

from __future__ import annotations

from torch import Tensor


def surrogate_gradient_steps(physics, y: Tensor, x0: Tensor, gamma: float, iterations: int,
                             box: tuple[float, float] | None = None) -> Tensor:
    r"""x <- P(x - (1 / (1 + gamma)) * ((x - x0) + gamma * (A(x) - y))), started at x0.

    Gradient steps on ||x - x0||^2 / 2 + gamma ||A(x) - y||^2 / 2 with the Jacobian
    of A taken as the identity; for a linear A = I they converge in one step to
    the prox (x0 + gamma y) / (1 + gamma). P projects onto ``box`` = (lo, hi) after
    every step (projected gradient), or is the identity (None).
    """
    x = x0.clone()
    step = 1.0 / (1.0 + gamma)
    for _ in range(iterations):
        x = x - step * ((x - x0) + gamma * (physics.A(x) - y))
        if box is not None:
            x = x.clamp(*box)
    return x
