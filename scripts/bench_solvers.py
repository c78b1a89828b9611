"""Time the data-consistency steps of Problems A and B against the same solves on deepinv's operators.

One run, side by side, on the same random clip (25 frames of 384 x 640 by default):

- Problem B, step 1: prox_l2 with gamma = 3539. lvtino: closed form through the
  eigenvectors of A A^T. deepinv: its CG prox_l2 on a composition of deepinv
  operators (Downsampling per frame, and a circular temporal blur written on
  deepinv's LinearPhysics).
- Problem A, step 1: temporal-TV by PDHG (lam 2.874e-4), whose data step is a prox.
  The same PDHG loop (lvtino.solvers.tv.tv_pdhg) runs on both operators, so the
  ratio is the operators' and proxes' alone.
- Problem A, step 2: 19 CG iterations on the normal equations (eps 1e-6). lvtino:
  the same iterates computed in the measurement space (lvtino.solvers.cg.normal_equations).
  deepinv: its conjugate_gradient on A^T A + eps I with deepinv's operators.

Prints seconds, the ratio deepinv / lvtino and the relative difference of the
solutions. Needs deepinv (the test extras). Usage:

    python scripts/bench_solvers.py [--frames 25] [--height 384] [--width 640] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from lvtino.config import load_problem
from lvtino.physics.problems import build_physics
from lvtino.runtime import tune_cpu_allocator
from lvtino.solvers.cg import normal_equations
from lvtino.solvers.tv import tv_pdhg

warnings.filterwarnings("ignore")
import deepinv as dinv  # noqa: E402


class FramewiseDownsampling(dinv.physics.LinearPhysics):
    """deepinv's Downsampling applied to every frame of a (B, C, T, H, W) video."""

    def __init__(self, size, factor, device):
        super().__init__()
        self.down = dinv.physics.Downsampling(img_size=(3, *size), filter="bicubic", factor=factor,
                                              padding="reflect", device=device)

    def _framewise(self, fn, v):
        B, C, T, H, W = v.shape
        out = fn(v.permute(0, 2, 1, 3, 4).reshape(B * T, C, H, W))
        return out.reshape(B, T, C, *out.shape[-2:]).permute(0, 2, 1, 3, 4)

    def A(self, x, **kw):
        return self._framewise(self.down.A, x)

    def A_adjoint(self, y, **kw):
        return self._framewise(self.down.A_adjoint, y)


class TemporalPool(dinv.physics.LinearPhysics):
    """Average every k frames (tail replicate-padded), written on deepinv's LinearPhysics."""

    def __init__(self, frames, k):
        super().__init__()
        self.frames, self.k = frames, k

    def A(self, x, **kw):
        pad = (-self.frames) % self.k
        x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad, -1, -1)], 2) if pad else x
        return x.unflatten(2, (-1, self.k)).mean(3)

    def A_adjoint(self, y, **kw):
        up = y.repeat_interleave(self.k, 2) / self.k
        up[:, :, self.frames - 1] += up[:, :, self.frames:].sum(2)
        return up[:, :, : self.frames]


class CircularTemporalBlur(dinv.physics.LinearPhysics):
    """Uniform blur over ``size`` frames, circular, by FFT along time."""

    def __init__(self, frames, size, device):
        super().__init__()
        kernel = torch.zeros(frames, device=device)
        kernel[: size // 2 + 1] = 1 / size
        kernel[frames - size // 2:] = 1 / size
        self.fk = torch.fft.fft(kernel).view(1, 1, -1, 1, 1)

    def A(self, x, **kw):
        return torch.fft.ifft(torch.fft.fft(x, dim=2) * self.fk, dim=2).real

    def A_adjoint(self, y, **kw):
        return torch.fft.ifft(torch.fft.fft(y, dim=2) * self.fk.conj(), dim=2).real


class DeepinvProxAdapter:
    """Gives a deepinv physics the verbs tv_pdhg and normal_equations call."""

    def __init__(self, physics, max_iter, tol):
        self.physics, self.max_iter, self.tol = physics, max_iter, tol

    def A(self, x):
        return self.physics.A(x)

    def A_adjoint(self, y):
        return self.physics.A_adjoint(y)

    def A_adjoint_A(self, x):
        return self.physics.A_adjoint(self.physics.A(x))

    def prox_l2(self, z, y, gamma):
        return self.physics.prox_l2(z, y, gamma, max_iter=self.max_iter, tol=self.tol)


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--height", type=int, default=384)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--device", default="cpu")
    p.add_argument("--pdhg-iterations", type=int, default=50,
                   help="PDHG iterations (the preset runs 200; fewer keep the deepinv side short)")
    args = p.parse_args()
    tune_cpu_allocator()
    dev = args.device
    shape = (args.frames, args.height, args.width)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((1, 3) + shape, generator=g) * 2 - 1).to(dev)
    print(f"clip: {shape[0]} frames of {shape[2]}x{shape[1]}, device {dev}, {torch.get_num_threads()} threads")
    print(f"{'step':44s} {'lvtino s':>9s} {'deepinv s':>10s} {'ratio':>7s} {'rel. diff':>10s}")
    rows = []

    def row(name, ours, theirs):
        (u, t_u), (v, t_v) = ours, theirs
        rows.append((name, t_u, t_v))
        print(f"{name:44s} {t_u:9.3f} {t_v:10.3f} {t_v / t_u:6.1f}x {rel(u, v):10.2e}", flush=True)

    # Problem B, step 1: prox with gamma 3539
    cfg_b = load_problem("B")
    ours_b = build_physics(cfg_b.operator, shape)
    theirs_b = FramewiseDownsampling(shape[1:], 8, dev) * CircularTemporalBlur(shape[0], 7, dev)
    y = ours_b.A(x) + 0.002 * torch.randn(ours_b.A(x).shape, generator=g).to(dev)
    z = x + 0.1 * torch.randn(x.shape, generator=g).to(dev)
    gamma = cfg_b.sampler.data_step_1.gamma[0]
    ours_b.prox_l2(z, y, gamma)  # warm-up: the eigenvectors are computed once per shape
    ours, theirs = (timed(lambda: ours_b.prox_l2(z, y, gamma), dev),
                    timed(lambda: theirs_b.prox_l2(z, y, gamma, max_iter=200, tol=1e-7), dev))
    row("B step 1: prox_l2, gamma 3539", ours, theirs)
    for name, (u, _) in (("lvtino", ours), ("deepinv", theirs)):
        g_obj = ours_b.A_adjoint(ours_b.A(u) - y) + (u - z) / gamma
        print(f"    optimality of the {name} prox: ||grad|| / ||z / gamma|| = {(g_obj.norm() * gamma / z.norm()):.1e}")

    # Problem A, step 1: temporal TV by PDHG; step 2: normal equations by CG
    cfg_a = load_problem("A")
    ours_a = build_physics(cfg_a.operator, shape)
    theirs_a = DeepinvProxAdapter(FramewiseDownsampling(shape[1:], 4, dev) * TemporalPool(shape[0], 4),
                                  max_iter=100, tol=1e-7)
    y = ours_a.A(x) + 0.002 * torch.randn(ours_a.A(x).shape, generator=g).to(dev)
    step1, step2 = cfg_a.sampler.data_step_1, cfg_a.sampler.data_step_2
    n = args.pdhg_iterations

    def pdhg(physics):
        return tv_pdhg(physics, y, z, lam_space=0.0, lam_time=step1.lam[0], iterations=n, tau=step1.tau,
                       sigma=step1.sigma)
    ours_a.prox_l2(z, y, step1.tau)
    row(f"A step 1: temporal-TV PDHG, {n} iterations", timed(lambda: pdhg(ours_a), dev),
        timed(lambda: pdhg(theirs_a), dev))

    def normal_deepinv():
        op = theirs_a.physics
        return dinv.optim.linear.conjugate_gradient(lambda u: op.A_adjoint(op.A(u)) + step2.eps * u,
                                                    op.A_adjoint(y) + step2.eps * z, max_iter=step2.iterations,
                                                    tol=0.0, init=z)
    row("A step 2: normal equations, CG 19 iterations",
        timed(lambda: normal_equations(ours_a, y, z, eps=step2.eps, max_iter=step2.iterations), dev),
        timed(normal_deepinv, dev))

    total_u, total_v = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'all three':44s} {total_u:9.3f} {total_v:10.3f} {total_v / total_u:6.1f}x")


if __name__ == "__main__":
    main()
