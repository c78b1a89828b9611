"""Total-variation regularised least squares on videos (B, C, T, H, W).

- ``tv_pdhg``: argmin_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1
  by Chambolle-Pock. TV_xy is isotropic (per pixel and channel), D_t the forward
  frame difference. With lam_space = 0 it is the method's temporal-TV step.
- ``tv3d_adam``: argmin_u 0.5 ||A u - y||^2 + lam sum sqrt(|grad_xyt u|^2 + eps^2),
  the smoothed 3-D TV step, by Adam with autograd through A only.
"""

from __future__ import annotations

import functools

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


def difference_norm2(spatial: bool, temporal: bool) -> float:
    """A bound on ||D||^2 for the differences in use: 8 for the spatial pair (H, W), 4 for time. PDHG converges
    when tau * sigma * this < 1 (the presets are checked against it when loaded)."""
    return 8.0 * spatial + 4.0 * temporal


def _steps(lam: float, tau: float, sigma: float) -> tuple[float, float] | None:
    """For a term of weight lam (None when it is off): the dual step on P = p / lam, sigma / lam, and the primal
    step on D^T P, tau * lam."""
    return (sigma / lam, tau * lam) if lam > 0 else None


class _Iteration:
    r"""One Chambolle-Pock iteration's passes over memory, on buffers allocated once.

    The duals are kept divided by their radius (P = p / lam), so that the
    projection onto the lam-balls is a division by max(1, |P|). Per iteration:

    - ``dual``: P += (sigma / lam) D u_bar, then the projection (each difference
      written straight into its dual, no temporaries);
    - ``descent``: z = u - tau D^T p, the divergence accumulated into z;
    - (the data term's prox, by the operator: ``physics.prox_l2(z, y, tau)``);
    - ``extrapolate``: u_bar = u_new + theta (u_new - u) in one ``lerp``.

    Every op is in place and threaded by torch; no tensor the size of the video is
    allocated inside the loop except the prox's result. ``_Fused`` is the same
    iteration written for ``torch.compile``.
    """

    def __init__(self, init: Tensor, lam_space: float, lam_time: float, tau: float, sigma: float, theta: float):
        self.u = init.clone()
        self.u_bar = self.u.clone()
        self.z = torch.empty_like(self.u)
        self.space, self.time = _steps(lam_space, tau, sigma), _steps(lam_time, tau, sigma)
        self.p_h = torch.zeros_like(self.u) if self.space else None
        self.p_w = torch.zeros_like(self.u) if self.space else None
        self.norm = torch.empty_like(self.u) if self.space else None
        self.p_t = torch.zeros_like(self.u) if self.time else None
        self.theta = theta

    def dual(self) -> None:
        _dual(self.u_bar, self.p_h, self.p_w, self.norm, self.p_t, self.space, self.time)

    def descent(self) -> Tensor:
        _descent(self.u, self.p_h, self.p_w, self.p_t, self.z, self.space, self.time)
        return self.z

    def extrapolate(self, u_new: Tensor) -> None:
        """u_bar = u_new + theta (u_new - u) = u + (1 + theta) (u_new - u); then u = u_new."""
        torch.lerp(self.u, u_new, 1.0 + self.theta, out=self.u_bar)
        self.u = u_new


def _dual(u_bar, p_h, p_w, norm, p_t, space, time) -> None:
    """P += s D u_bar along H, W (jointly projected onto the unit ball) and T (clamped to [-1, 1])."""
    if space is not None:
        s = space[0]
        p_h[:, :, :, :-1].add_(u_bar[:, :, :, 1:], alpha=s).sub_(u_bar[:, :, :, :-1], alpha=s)
        p_w[..., :-1].add_(u_bar[..., 1:], alpha=s).sub_(u_bar[..., :-1], alpha=s)
        torch.hypot(p_h, p_w, out=norm).clamp_min_(1.0)
        p_h.div_(norm)
        p_w.div_(norm)
    if time is not None:
        s = time[0]
        p_t[:, :, :-1].add_(u_bar[:, :, 1:], alpha=s).sub_(u_bar[:, :, :-1], alpha=s).clamp_(-1.0, 1.0)


def _descent(u, p_h, p_w, p_t, z, space, time) -> None:
    """z = u - tau D^T p. The last sample of each dual stays zero (its difference is), so D^T P = P[i] - P[i-1]
    up to sign: z = u + tau lam (P - P shifted by one) summed over the terms."""
    first = True
    for p, a, axis in ((p_h, space, 3), (p_w, space, 4), (p_t, time, 2)):
        if a is None:
            continue
        torch.add(u if first else z, p, alpha=a[1], out=z)
        n = p.shape[axis]
        z.narrow(axis, 1, n - 1).sub_(p.narrow(axis, 0, n - 1), alpha=a[1])
        first = False
    if first:
        z.copy_(u)


class _Fused:
    r"""The iteration of ``_Iteration`` as two pure functions that ``torch.compile`` fuses into a few loops
    (the dual step with its projection and the extrapolation in one pass, the divergence and the descent in
    another): about 1.3x the memory traffic they need on a CPU, against 3x for the in-place ops, after a
    compilation of several seconds per window shape (cached on disk by torch for later runs). The same
    iterates as ``_Iteration``'s to float rounding (tests/test_solvers.py).
    """

    def __init__(self, init: Tensor, lam_space: float, lam_time: float, tau: float, sigma: float, theta: float):
        self.u, self.u_prev = init, init  # u_bar = u + theta (u - u_prev): u itself at the start
        self.space, self.time = _steps(lam_space, tau, sigma), _steps(lam_time, tau, sigma)
        zeros = torch.zeros_like(init)
        self.p_h = zeros if self.space else None
        self.p_w = zeros if self.space else None
        self.p_t = zeros if self.time else None
        self.theta = theta

    def dual(self) -> None:
        self.p_h, self.p_w, self.p_t = _compiled()[0](self.u, self.u_prev, self.p_h, self.p_w, self.p_t,
                                                      self.space, self.time, self.theta)

    def descent(self) -> Tensor:
        return _compiled()[1](self.u, self.p_h, self.p_w, self.p_t, self.space, self.time)

    def extrapolate(self, u_new: Tensor) -> None:
        self.u_prev, self.u = self.u, u_new


def _dual_step(u, u_prev, p_h, p_w, p_t, space, time, theta):
    u_bar = u + theta * (u - u_prev)
    if space is not None:
        q_h, q_w = p_h + space[0] * grad(u_bar, 3), p_w + space[0] * grad(u_bar, 4)
        norm = torch.sqrt(q_h * q_h + q_w * q_w).clamp_min(1.0)
        p_h, p_w = q_h / norm, q_w / norm
    if time is not None:
        p_t = (p_t + time[0] * grad(u_bar, 2)).clamp(-1.0, 1.0)
    return p_h, p_w, p_t


def _descent_step(u, p_h, p_w, p_t, space, time):
    """z = u - tau D^T p = u - tau lam D^T P."""
    z = u
    if space is not None:
        z = z - space[1] * (grad_adjoint(p_h, 3) + grad_adjoint(p_w, 4))
    if time is not None:
        z = z - time[1] * grad_adjoint(p_t, 2)
    return z


@functools.cache
def _compiled() -> tuple:
    """The two steps under ``torch.compile`` (made on first use: importing the compiler takes seconds, which a
    run that does not compile should not pay); each compiles once per shape, dtype and device, and torch keeps
    the kernels on disk for later runs."""
    return torch.compile(_dual_step, dynamic=False), torch.compile(_descent_step, dynamic=False)


@functools.cache
def compile_works() -> str | None:
    """None where ``torch.compile`` runs in this process, else why not (tried once, on a tiny tensor)."""
    try:
        x = torch.zeros(1, 1, 2, 2, 2)
        _compiled()[1](x, x, x, x, (1.0, 1.0), (1.0, 1.0))
    except Exception as e:  # no C++ compiler, a platform inductor does not support, ...
        lines = str(e).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}"
    return None


def tv_pdhg(physics, y: Tensor, init: Tensor, lam_space: float, lam_time: float, iterations: int,
            tau: float, sigma: float, theta: float = 1.0, tol: float = 0.0, return_info: bool = False,
            callback=None, compiled: bool = False):
    r"""Chambolle-Pock for min_u 0.5 ||A u - y||^2 + lam_space TV_xy(u) + lam_time ||D_t u||_1.

    The data term enters through ``physics.prox_l2`` (exact for separable
    operators), the TV terms through projections of the dual variables onto
    balls of radius lam. Converges when tau * sigma * ||D||^2 < 1, with
    ||D||^2 <= 8 for the spatial and 4 for the temporal differences. Stops after
    ``iterations`` or when ||u_k+1 - u_k|| <= tol ||u_k||; ``callback(k)`` after
    each iteration (a progress bar). The iteration (``_Iteration``) works in place
    on buffers allocated once; ``compiled``: fused by ``torch.compile`` (``_Fused``),
    where it runs (``compile_works``; else a ValueError says why).
    """
    norm2 = difference_norm2(lam_space > 0, lam_time > 0)
    if tau * sigma * norm2 >= 1:
        raise ValueError(f"tau={tau}, sigma={sigma}: tau * sigma * ||D||^2 = {tau * sigma * norm2:g} must be < 1")
    if compiled and compile_works() is not None:
        raise ValueError(f"torch.compile does not run here ({compile_works()})")
    it = (_Fused if compiled else _Iteration)(init, lam_space, lam_time, tau, sigma, theta)
    k = 0
    for k in range(1, iterations + 1):
        it.dual()
        u_new = physics.prox_l2(it.descent(), y, tau)
        change = torch.dist(u_new, it.u) / it.u.norm().clamp_min(1e-12) if tol > 0 else None
        it.extrapolate(u_new)
        if callback is not None:
            callback(k)
        if change is not None and change <= tol:
            break
    if return_info:
        return it.u, {"iterations": k}
    return it.u


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
