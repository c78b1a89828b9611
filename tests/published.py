"""The published code's measurement-consistency steps, written again here from its formulas, as a reference.

Frames are (T, C, H, W) as there; the spatial part is deepinv's ``Downsampling`` (the published code's own
choice), the temporal part is written out: average pooling by ``factor`` with the tail padded by its last frame,
or a uniform blur that wraps around in time (FFT). Each function states which published step it stands for, with
its stopping rule and its clamps; nothing here is lvtino's code.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F


class Operator:
    """A = S M_t: M_t in time (``pool`` or ``blur``), S deepinv's bicubic downsampling with reflect padding."""

    def __init__(self, time: str, t_factor: int, s_factor: int, shape: tuple[int, int, int]):
        import deepinv

        self.time, self.ft, (self.T, H, W) = time, t_factor, shape
        self.signal = (self.T, 3, H, W)
        self.S = deepinv.physics.Downsampling(img_size=(3, H, W), filter="bicubic", factor=s_factor,
                                              padding="reflect")

    def _pool(self, x):
        lr = -(-x.shape[0] // self.ft)
        pad = lr * self.ft - x.shape[0]
        x = torch.cat([x, x[-1:].expand(pad, -1, -1, -1)]) if pad else x
        pooled = F.avg_pool3d(x.float().permute(1, 0, 2, 3).unsqueeze(0), (self.ft, 1, 1))  # (the CPU has no
        return pooled.squeeze(0).permute(1, 0, 2, 3).to(x.dtype)  # bfloat16 pooling; CUDA's sums in float32)

    def _pool_adjoint(self, u):
        z = F.interpolate(u.permute(1, 0, 2, 3).unsqueeze(0), scale_factor=(self.ft, 1, 1), mode="nearest")
        z = z.squeeze(0).permute(1, 0, 2, 3) / self.ft
        out = z[:self.T].clone()
        out[-1] += z[self.T:].sum(0)  # the padded tail folds back onto the last frame
        return out

    def _blur(self, x, flip: bool = False):
        k = torch.ones(self.ft, dtype=x.dtype) / self.ft
        k = k.flip(0) if flip else k
        h = torch.zeros(x.shape[0], dtype=x.dtype)
        for i in range(self.ft):
            h[(i - self.ft // 2) % x.shape[0]] = k[i]
        X = torch.fft.rfft(x.permute(1, 2, 3, 0), dim=-1) * torch.fft.rfft(h)
        return torch.fft.irfft(X, n=x.shape[0], dim=-1).permute(3, 0, 1, 2)

    def A(self, x):
        """In the frames' dtype; the spatial part in float32, as there."""
        t = self._pool(x) if self.time == "pool" else self._blur(x)
        return self.S.A(t.float()).to(x.dtype)

    def At(self, u):
        v = self.S.A_adjoint(u.float()).to(u.dtype)
        return self._pool_adjoint(v) if self.time == "pool" else self._blur(v, flip=True)


def prox(op: Operator, x0, y, gamma: float, max_iter: int = 100, tol: float = 1e-6):
    """``prox_l2`` of the published operators: CG on (I + gamma A^T A) x = x0 + gamma A^T y from x0, stopped when
    the residual's norm falls under ``tol`` (absolute) or after ``max_iter``; the result projected onto [-1, 1]."""
    M = lambda z: z + gamma * op.At(op.A(z))  # noqa: E731
    x = x0.clone()
    r = x0 + gamma * op.At(y) - M(x)
    p, rs = r.clone(), (r * r).sum()
    for _ in range(max_iter):
        Mp = M(p)
        a = rs / ((p * Mp).sum() + 1e-20)
        x, r = x + a * p, r - a * Mp
        rs_new = (r * r).sum()
        if rs_new.sqrt() < tol:
            break
        p, rs = r + (rs_new / rs) * p, rs_new
    return x.clamp(-1, 1)


def start(op: Operator, y, gamma: float = 200.0, dtype=torch.float32):
    """The published start for Problems A and B: ``prox`` from zero on frames in [0, 1] (y mapped there), then
    mapped to [-1, 1]. Problem A's ran in bfloat16 there (its operator had no dtype of its own): ``dtype``."""
    y01 = ((y + 1) / 2).to(dtype)
    return 2 * prox(op, torch.zeros(op.signal, dtype=dtype), y01, gamma).float() - 1


def time_tv(op: Operator, x0, y, lam: float, iters: int = 200, tau: float = 0.25, sigma: float = 0.25):
    """``solve_l2_tv`` (Problem A's first step): PDHG with a dual for the data term and one for the frame
    differences, theta 1, from x0; the result projected onto [-1, 1]."""
    x, x_bar = x0.clone(), x0.clone()
    p = torch.zeros_like(y)
    q = torch.zeros_like(x0[1:])
    for _ in range(iters):
        p = (p + sigma * op.A(x_bar) - sigma * y) / (1 + sigma)
        q = (q + sigma * (x_bar[1:] - x_bar[:-1])).clamp(-lam, lam)
        div = torch.zeros_like(x)
        div[0], div[1:-1], div[-1] = -q[0], q[:-1] - q[1:], q[-1]
        x_new = x - tau * (op.At(p) + div)
        x_bar, x = 2 * x_new - x, x_new
    return x.clamp(-1, 1)


def normal_cg(op: Operator, x0, y, iters: int, eps: float):
    """``CG_safe`` on (A^T A + eps I) x = A^T y + eps x0 from x0 (the second step of A and C), stopped under an
    absolute residual of 1e-6; the result as it comes. As there, the products run in float32 and the inner
    products in float64, whose step sizes (shaped (1, 1, 1, 1)) carry the iterates into float64."""
    def M(z):
        out = op.At(op.A(z.float()))
        return (out + eps * z if eps else out).float()

    dot = lambda a, b: (a.double() * b.double()).sum().reshape(1, 1, 1, 1)  # noqa: E731
    x = x0.float()
    r = op.At(y.float()) + eps * x - M(x)
    p, rs = r.clone(), dot(r, r)
    for _ in range(iters):
        Mp = M(p)
        alpha = rs / dot(p, Mp)
        x, r = x + alpha * p, r - alpha * Mp
        rs_new = dot(r, r)
        if rs_new.sqrt() < 1e-6:
            break
        p, rs = r + (rs_new / rs) * p, rs_new
    return x.float()


def adam_tv3(op: Operator, x0, y, lam: float, iters: int = 55, lr: float = 0.019848, eps: float = 1e-2):
    """``solve_l2_tv3_adam_autograd`` (Problem C's first step): Adam on 0.5 ||A x - y||^2 + lam sum sqrt(d_t^2 +
    d_y^2 + d_x^2 + eps^2) (forward differences, zero at the last sample), x projected onto [-1, 1] after every
    step."""
    x = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        d = [torch.zeros_like(x) for _ in range(3)]
        d[0][:-1] = x[1:] - x[:-1]
        d[1][:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
        d[2][:, :, :, :-1] = x[:, :, :, 1:] - x[:, :, :, :-1]
        tv = torch.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2 + eps ** 2).sum()
        (0.5 * ((op.A(x) - y) ** 2).sum() + lam * tv).backward()
        opt.step()
        x.data.clamp_(-1, 1)
    return x.detach()


def jpeg_frames(x, quality: int = 10):
    """Frames in [-1, 1] through libjpeg as the published code calls it (torchvision's encode and decode)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    u8 = ((x.clamp(-1, 1) + 1) * 0.5 * 255).round().to(torch.uint8)
    return torch.stack([decode_jpeg(encode_jpeg(f, quality=quality)) for f in u8]).float() / 255 * 2 - 1


def jpeg_prox(x0, y, gamma: float, iters: int = 10, quality: int = 10):
    """The JPEG operator's ``prox_l2``: ``iters`` steps x <- x - ((x - x0) + gamma (JPEG(x) - y)) / (1 + gamma),
    each projected onto [-1, 1]."""
    x = x0.clone()
    for _ in range(iters):
        x = (x - ((x - x0) + gamma * (jpeg_frames(x, quality) - y)) / (1 + gamma)).clamp(-1, 1)
    return x


def to_tchw(x):
    """lvtino's (1, C, T, H, W) as the published code's (T, C, H, W)."""
    return x[0].permute(1, 0, 2, 3).contiguous()


def jpeg_pil_equals_libjpeg() -> float:
    """How far Pillow's JPEG is from torchvision's on a test picture (max grey levels), for the record."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    frame = (torch.rand(3, 32, 48, generator=g) * 255).round().to(torch.uint8)
    buf = io.BytesIO()
    Image.fromarray(frame.permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=10)
    pil = np.asarray(Image.open(buf).convert("RGB")).astype(int)
    ref = jpeg_frames(frame.unsqueeze(0).float() / 127.5 - 1)[0]
    return float(np.abs(pil - ((ref + 1) * 127.5).round().permute(1, 2, 0).numpy()).max())
