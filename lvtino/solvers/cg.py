"""Conjugate gradients for symmetric positive (semi-)definite systems, batched."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner products, shaped to broadcast against a and b."""
    return (a * b).flatten(1).sum(1).reshape((-1,) + (1,) * (a.dim() - 1))


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    init: Tensor | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    return_info: bool = False,
    inner: Callable[[Tensor, Tensor], Tensor] | None = None,
):
    r"""Solve M x = b for a symmetric positive semi-definite M given as ``matvec``.

    Batched over the first dimension: each sample has its own step sizes and stops
    contributing once ||b_i - M x_i|| <= tol * ||b_i||; the loop ends when all
    samples have converged or after ``max_iter`` iterations (``tol=0`` runs all of
    them, which is how early stopping is used as a regulariser).

    ``inner(a, b)`` replaces the per-sample dot product (M must be self-adjoint
    and positive in it); norms and the tolerance are then measured in it too.

    Returns x, or (x, {"iterations": k, "relative_residual": max_i ||r_i||/||b_i||})
    when ``return_info``.
    """
    dot = _dot if inner is None else inner
    x = torch.zeros_like(b) if init is None else init.clone()
    r = b - matvec(x) if init is not None else b.clone()
    p = r.clone()
    rs = dot(r, r)
    b_norm2 = dot(b, b).clamp_min(torch.finfo(b.dtype).tiny)
    k = 0
    for k in range(1, max_iter + 1):
        if bool((rs <= tol**2 * b_norm2).all()):
            k -= 1
            break
        Mp = matvec(p)
        pMp = dot(p, Mp)
        active = rs > tol**2 * b_norm2
        alpha = torch.where(active & (pMp > 0), rs / torch.where(pMp > 0, pMp, torch.ones_like(pMp)), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * Mp
        rs_new = dot(r, r)
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    if not return_info:
        return x
    rel = (rs / b_norm2).sqrt().max().item()
    return x, {"iterations": k, "relative_residual": rel}


def normal_equations(physics, y: Tensor, x0: Tensor, eps: float, max_iter: int, tol: float = 0.0,
                     return_info: bool = False):
    r"""Least squares near x0: (A^T A + eps I) u = A^T y + eps x0, by CG started at x0.

    With a fixed small ``max_iter`` (and ``tol=0``) the early stop is the
    regulariser: CG moves x0 only along the directions the measurement sees best.

    The iterates are those of CG on the normal equations, computed in the
    measurement space: every CG vector lies in A^T(measurements), so writing
    u = x0 + A^T w turns the recurrences into ones on w that need only
    K = A A^T and the inner product <a, b>_K = <A^T a, A^T b>. For separable
    operators K is three small matrices, so an iteration costs almost nothing and
    the whole solve one A and one A^T. ``tol`` is relative to the first residual.
    """
    K = physics.A_A_adjoint
    s = y - physics.A(x0)
    w, info = conjugate_gradient(lambda v: K(v) + eps * v, s, max_iter=max_iter, tol=tol, return_info=True,
                                 inner=lambda a, b: _dot(a, K(b)))
    u = x0 + physics.A_adjoint(w)
    return (u, info) if return_info else u
