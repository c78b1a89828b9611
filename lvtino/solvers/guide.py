r"""Another tool's restoration made consistent with the measurement: the data step around a guide.

A guide g is a restoration of the same input made by anything (a learned
upscaler, a frame interpolator, a player). It explains the input only roughly:
A g differs from y. The restoration nearest to the guide that explains y is

    x = g + c,    c = argmin_c  c^T M c   subject to  A c = y - A g   (to the noise: eps),
    M = I / reach^2 + D_t^T D_t   along time,

the LVTINO data step with the guide in place of the network's estimate, in a
norm that also charges the correction's change from frame to frame. With the
identity alone (the plain prox), the correction of a measured frame would stay
on that frame and pulse once every K frames where frames were dropped; with
D_t^T D_t the correction of each measured frame reaches the frames between
measurements (linearly, between two measured frames), fading over about
``reach`` frames where no measurement follows.

Writing c = L z with L = M^{-1/2} (symmetric, a window's frames a side) turns it
into the least-norm solution of (A L) z = r, and A L is still separable: its time
matrix is M_t L, its spatial matrices A's. So the closed-form ``A_dagger`` of a
separable operator solves it in about one A and one A^T.
"""

from __future__ import annotations

import torch
from torch import Tensor



def temporal_sqrt_inverse(frames: int, reach: float) -> Tensor:
    """L = M^{-1/2} for M = I / reach^2 + D^T D on ``frames`` frames (D: first differences), float64."""
    d = torch.zeros(max(frames - 1, 0), frames, dtype=torch.float64)
    idx = torch.arange(frames - 1)
    d[idx, idx], d[idx, idx + 1] = -1.0, 1.0
    m = torch.eye(frames, dtype=torch.float64) / reach**2 + d.T @ d
    values, vectors = torch.linalg.eigh(m)
    return (vectors * values.rsqrt()) @ vectors.T


def guided_restore(physics, y: Tensor, guide: Tensor, reach: float, eps: float) -> Tensor:
    r"""x = g + L (A L)^+_eps (y - A g): the frames nearest to ``guide`` in the norm of M that fit ``y``
    (exactly for eps = 0). A non-linear operator is replaced by its linear surrogate."""
    linear = physics.linear_surrogate()
    residual = y - linear.A(guide)
    band = (linear.split_time() or (None, None))[0]
    if band is None:  # a per-frame operator: every frame is measured, nothing to carry in time
        return guide + linear.A_dagger(residual, eps=eps)
    root = temporal_sqrt_inverse(band.cols, reach)
    z = linear.with_time(band.dense() @ root).A_dagger(residual, eps=eps)
    return guide + torch.einsum("st,bcthw->bcshw", root.to(z), z)
