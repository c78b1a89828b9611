"""Total-variation regularised least squares on videos (B, C, T, H, W).

- ``tv_pdhg``: argmin_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1
  by Chambolle-Pock. TV_xy is isotropic (per pixel and channel), D_t the forward
  frame difference. With lam_space = 0 it is the method's temporal-TV step.
- ``tv3d_adam``: argmin_u 0.5 ||A u - y||^2 + lam sum sqrt(|grad_xyt u|^2 + eps^2),
  the smoothed 3-D TV step, by Adam with autograd through A only.
"""

from __future__ import annotations

import torch
from torch import Tensor


def grad(u: Tensor, axis: int) -> Tensor:
    """Forward difference along ``axis`` (2=T, 3=H, 4=W), zero at the last sample."""
    d = torch.zeros_like(u)
    n = u.shape[axis]
    d.narrow(axis, 0, n - 1).copy_(u.narrow(axis, 1, n - 1) - u.narrow(axis, 0, n - 1))
    return d


def grad_adjoint(p: Tensor, axis: int) -> Tensor:
    """Adjoint of ``grad`` (minus the backward-difference divergence)."""
    n = p.shape[axis]
    out = torch.zeros_like(p)
    q = p.narrow(axis, 0, n - 1)
    out.narrow(axis, 0, n - 1).sub_(q)
    out.narrow(axis, 1, n - 1).add_(q)
    return out


def _add_grad(out: Tensor, u: Tensor, axis: int, alpha: float) -> None:
    """out += alpha * grad(u, axis), in place (the last sample's difference is zero)."""
    n = u.shape[axis]
    out.narrow(axis, 0, n - 1).add_(u.narrow(axis, 1, n - 1) - u.narrow(axis, 0, n - 1), alpha=alpha)


def _add_grad_adjoint(out: Tensor, p: Tensor, axis: int) -> None:
    """out += grad_adjoint(p, axis), in place."""
    n = p.shape[axis]
    q = p.narrow(axis, 0, n - 1)
    out.narrow(axis, 0, n - 1).sub_(q)
    out.narrow(axis, 1, n - 1).add_(q)


def tv_pdhg(physics, y: Tensor, init: Tensor, lam_space: float, lam_time: float, iterations: int,
            tau: float, sigma: float, theta: float = 1.0, tol: float = 0.0, return_info: bool = False,
            callback=None):
    r"""Chambolle-Pock for min_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1.

    The data term enters through ``physics.prox_l2`` (exact for separable
    operators), the TV terms through projections of the dual variables onto
    balls of radius lam. Converges when tau * sigma * ||D||^2 < 1, with
    ||D||^2 <= 8 for the spatial and 4 for the temporal differences. Stops after
    ``iterations`` or when ||u_k+1 - u_k|| <= tol ||u_k||; ``callback(k)`` after
    each iteration (a progress bar). Works in place on a
    few buffers the size of the video: the loop is bound by memory traffic.
    """
    norm2 = 8.0 * (lam_space > 0) + 4.0 * (lam_time > 0)
    if tau * sigma * norm2 >= 1:
        raise ValueError(f"tau={tau}, sigma={sigma}: tau * sigma * ||D||^2 = {tau * sigma * norm2:g} must be < 1")
    u = init.clone()
    u_bar = u.clone()
    div = torch.empty_like(u)
    spatial = lam_space > 0
    p_h = torch.zeros_like(u) if spatial else None
    p_w = torch.zeros_like(u) if spatial else None
    p_t = torch.zeros_like(u) if lam_time > 0 else None
    k = 0
    for k in range(1, iterations + 1):
        # 1. dual ascent, projection onto the lam-balls, and the divergence
        div.zero_()
        if spatial:
            _add_grad(p_h, u_bar, 3, sigma)
            _add_grad(p_w, u_bar, 4, sigma)
            scale = torch.mul(p_h, p_h).addcmul_(p_w, p_w).sqrt_().div_(lam_space).clamp_min_(1.0)
            p_h.div_(scale)
            p_w.div_(scale)
            del scale
            _add_grad_adjoint(div, p_h, 3)
            _add_grad_adjoint(div, p_w, 4)
        if p_t is not None:
            _add_grad(p_t, u_bar, 2, sigma)
            p_t.clamp_(-lam_time, lam_time)
            _add_grad_adjoint(div, p_t, 2)
        # 2. primal descent through the data prox, then extrapolation
        u_new = physics.prox_l2(torch.add(u, div, alpha=-tau), y, tau)
        torch.sub(u_new, u, out=u_bar)
        change = u_bar.norm() / u.norm().clamp_min(1e-12)
        u_bar.mul_(theta).add_(u_new)
        u = u_new
        if callback is not None:
            callback(k)
        if change <= tol:
            break
    if return_info:
        return u, {"iterations": k}
    return u


def tv3d_adam(physics, y: Tensor, init: Tensor, lam: float, iterations: int, lr: float, eps: float = 1e-2,
              return_info: bool = False, box: tuple[float, float] | None = None):
    r"""Adam on 0.5 ||A u - y||^2 + lam sum sqrt(|grad_xyt u|^2 + eps^2), started at init; with ``box`` = (lo,
    hi), u is projected onto it after every step (projected Adam, as the published code's Adam-TV3).

    Gradients flow through the operator A only; nothing else is differentiated.
    """
    with torch.inference_mode(False), torch.enable_grad():
        u = init.detach().clone().requires_grad_(True)
        y = y.detach().clone()
        opt = torch.optim.Adam([u], lr=lr)
        for _ in range(iterations):
            opt.zero_grad(set_to_none=True)
            tv = torch.sqrt(grad(u, 2) ** 2 + grad(u, 3) ** 2 + grad(u, 4) ** 2 + eps**2).sum()
            loss = 0.5 * (physics.A(u) - y).pow(2).sum() + lam * tv
            loss.backward()
            opt.step()
            if box is not None:
                with torch.no_grad():
                    u.clamp_(*box)
    u = u.detach()
    if return_info:
        return u, {"iterations": iterations}
    return u
