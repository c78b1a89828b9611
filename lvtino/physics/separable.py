"""Separable linear operators: one matrix per axis (time, height, width).

Every degradation of the paper's problems (temporal pooling, temporal blur,
filtered spatial subsampling, and their compositions) acts on each axis
independently, so it is a Kronecker product

    A = M_t (x) M_h (x) M_w     applied to every channel,

where each M_a is a small dense matrix that holds the filter, the stride and the
boundary rule of its axis. Three consequences make this module worth its name:

- A and A^T are three small matrix products each, and the adjoint is exact
  (it is the transposed matrix, boundary folding included);
- A A^T = K_t (x) K_h (x) K_w with K_a = M_a M_a^T, so its eigenvectors are the
  Kronecker products of the eigenvectors of three matrices the size of the
  measurement's axes;
- hence ``prox_l2`` and ``A_dagger`` have closed forms that cost about one A and
  one A^T (Woodbury identity), whatever the operator's conditioning.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from lvtino.physics.base import LinearPhysics, Shape

PADDINGS = ("reflect", "replicate", "circular", "zeros")


def pad_index(i: int, n: int, mode: str) -> int | None:
    """The sample of a length-n signal that padded position i reads (None: a zero)."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    if mode == "reflect":  # mirror without repeating the edge sample, as torch's "reflect"
        if n == 1:
            return 0
        period = 2 * (n - 1)
        i %= period
        return i if i < n else period - i
    raise ValueError(f"padding={mode!r} is not one of {PADDINGS}")


def conv_matrix(n: int, kernel: Tensor, stride: int, pad_left: int, mode: str) -> Tensor:
    """Matrix (ceil(n / stride), n) of a padded 1-D convolution followed by subsampling.

    Row j computes sum_k kernel[L-1-k] * x[pad(j * stride + k - pad_left)], i.e. a
    true convolution (flipped kernel) of the padded signal, sampled every
    ``stride`` samples starting at 0; padding reads through ``pad_index``.
    """
    if mode not in PADDINGS:
        raise ValueError(f"padding={mode!r} is not one of {PADDINGS}")
    flipped = kernel.to(torch.float64).flip(0)
    m = math.ceil(n / stride)
    M = torch.zeros(m, n, dtype=torch.float64)
    for j in range(m):
        for k, w in enumerate(flipped.tolist()):
            src = pad_index(j * stride + k - pad_left, n, mode)
            if src is not None:
                M[j, src] += w
    return M


def _along(x: Tensor, M: Tensor, axis: int) -> Tensor:
    """Multiply axis ``axis`` (2=T, 3=H, 4=W) of a (B, C, T, H, W) tensor by M."""
    if axis == 4:
        return x @ M.transpose(0, 1)
    if axis == 3:
        return M @ x
    B, C, T, H, W = x.shape
    return (M @ x.reshape(B * C, T, H * W)).reshape(B, C, M.shape[0], H, W)


def _apply_axes(x: Tensor, mats: tuple) -> Tensor:
    """Multiply each axis (T, H, W) of x by its matrix, in the order that costs fewest products.

    Applying M_a (m x n) along axis a costs (elements of x) * m multiply-adds and
    scales the element count by m / n, so the order matters: for Problem A on
    384 x 640 frames, height first saves a quarter of the work.
    """
    todo = [(axis, M) for axis, M in zip((2, 3, 4), mats) if M is not None]
    best, best_cost = None, None
    for order in itertools.permutations(todo):
        size, cost = x[0, 0].numel(), 0
        for _, M in order:
            cost += size * M.shape[0]
            size = size // M.shape[1] * M.shape[0]
        if best_cost is None or cost < best_cost:
            best, best_cost = order, cost
    if not best:
        return x.clone()  # the identity still returns a tensor of its own
    for axis, M in best:
        x = _along(x, M, axis)
    return x


class SeparableLinear(LinearPhysics):
    """A = M_t (x) M_h (x) M_w; an axis whose matrix is None is left unchanged.

    Matrices are kept in float64 on the CPU and cast once per (dtype, device).
    """

    def __init__(self, mt: Tensor | None, mh: Tensor | None, mw: Tensor | None, factors: Shape = (1, 1, 1)):
        self.matrices = (mt, mh, mw)
        self.factors = factors
        self._cast: dict = {}
        self._eig: dict = {}
        self._rows = None  # see _time_rows

    # -- shapes ---------------------------------------------------------------
    def output_shape(self, shape: Shape) -> Shape:
        self._check(shape, "signal", col=True)
        return tuple(n if M is None else M.shape[0] for n, M in zip(shape, self.matrices))

    def input_shape(self, shape: Shape) -> Shape:
        """(T, H, W) of A^T y for a measurement of shape (T, H, W)."""
        self._check(shape, "measurement", col=False)
        return tuple(n if M is None else M.shape[1] for n, M in zip(shape, self.matrices))

    # -- windows in time --------------------------------------------------------
    def _time_rows(self) -> tuple[Tensor, Tensor, Tensor]:
        """Per row of M_t: its first and last non-zero column and its count of non-zeros (found once).

        Restricting a long video's operator to a window then compares these
        vectors instead of scanning the whole matrix for every window.
        """
        if self._rows is None:
            mt = self.matrices[0]
            row, col = torch.nonzero(mt, as_tuple=True)
            m = mt.shape[0]
            first = torch.full((m,), mt.shape[1], dtype=torch.long).scatter_reduce(0, row, col, "amin")
            last = torch.full((m,), -1, dtype=torch.long).scatter_reduce(0, row, col, "amax")
            self._rows = (first, last, torch.bincount(row, minlength=m))
        return self._rows

    def time_supports(self, frames: int) -> list[tuple[int, int] | None]:
        if self.matrices[0] is None:
            return [(t, t + 1) for t in range(frames)]
        first, last, count = self._time_rows()
        return [(lo, hi + 1) if n and hi - lo + 1 == n else None
                for lo, hi, n in zip(first.tolist(), last.tolist(), count.tolist())]

    def restrict_time(self, start: int, end: int, within: tuple[int, int] | None = None):
        mt, mh, mw = self.matrices
        if mt is None:
            return SeparableLinear(None, mh, mw, self.factors), list(range(start, end))
        lo, hi = within or (start, end)
        first, last, count = self._time_rows()
        # no non-zero outside [lo, hi), and possibly one in [start, end)
        candidates = torch.nonzero((count > 0) & (first >= lo) & (last < hi) & (first < end) & (last >= start))
        candidates = candidates.flatten()
        inside = mt[candidates, start:end]
        touching = inside.abs().sum(1) > 0
        return (SeparableLinear(inside[touching], mh, mw, self.factors),
                candidates[touching].tolist())

    def _check(self, shape: Shape, what: str, col: bool) -> None:
        for name, n, M in zip("THW", shape, self.matrices):
            want = None if M is None else M.shape[1 if col else 0]
            if want is not None and n != want:
                raise ValueError(f"{type(self).__name__} expects a {what} with {name}={want}, got {name}={n}")

    def _mats(self, like: Tensor) -> tuple:
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = tuple(None if M is None else M.to(like.device, like.dtype) for M in self.matrices)
        return self._cast[key]

    # -- the operator ---------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        self._check(tuple(x.shape[2:]), "signal", col=True)
        return _apply_axes(x, self._mats(x))

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(tuple(y.shape[2:]), "measurement", col=False)
        return _apply_axes(y, tuple(None if M is None else M.transpose(0, 1) for M in self._mats(y)))

    def A_A_adjoint(self, y: Tensor) -> Tensor:
        """A A^T y = (K_t (x) K_h (x) K_w) y with the small Gram matrices K_a = M_a M_a^T."""
        self._check(tuple(y.shape[2:]), "measurement", col=False)
        key = ("gram", y.dtype, y.device)
        if key not in self._cast:
            self._cast[key] = tuple(None if M is None else M @ M.transpose(0, 1) for M in self._mats(y))
        return _apply_axes(y, self._cast[key])

    def __mul__(self, other: LinearPhysics) -> LinearPhysics:
        if not isinstance(other, SeparableLinear):
            return super().__mul__(other)
        mats = []
        for name, outer, inner in zip("THW", self.matrices, other.matrices):
            if outer is not None and inner is not None and outer.shape[1] != inner.shape[0]:
                raise ValueError(
                    f"cannot compose along {name}: inner gives {inner.shape[0]} samples, outer expects {outer.shape[1]}"
                )
            mats.append(inner if outer is None else outer if inner is None else outer @ inner)
        factors = tuple(a * b for a, b in zip(self.factors, other.factors))
        composed = SeparableLinear(*mats, factors=factors)
        composed.parts = (self, other)
        return composed

    def __repr__(self) -> str:
        if hasattr(self, "parts"):
            return f"{self.parts[0]!r} * {self.parts[1]!r}"
        return f"{type(self).__name__}()"

    # -- closed forms through the eigenvectors of A A^T -------------------------
    def _gram_eig(self, like: Tensor):
        """Per axis: (eigenvalues, eigenvectors) of K_a = M_a M_a^T, or None."""
        key = (like.dtype, like.device)
        if key not in self._eig:
            out = []
            for M in self.matrices:
                if M is None:
                    out.append(None)
                    continue
                lam, V = torch.linalg.eigh(M @ M.transpose(0, 1))
                out.append((lam.clamp_min(0).to(like.device, like.dtype), V.to(like.device, like.dtype)))
            self._eig[key] = tuple(out)
        return self._eig[key]

    def _spectral(self, r: Tensor, fn) -> Tensor:
        """V diag(fn(lambda)) V^T r in measurement space, lambda the eigenvalues of A A^T."""
        eig = self._gram_eig(r)
        lam = torch.ones((), dtype=r.dtype, device=r.device)
        for axis, e in zip((2, 3, 4), eig):
            if e is None:
                continue
            r = _along(r, e[1].transpose(0, 1), axis)
            shape = [1, 1, 1]
            shape[axis - 2] = -1
            lam = lam * e[0].reshape(shape)
        r = r * fn(lam)
        for axis, e in zip((2, 3, 4), eig):
            if e is not None:
                r = _along(r, e[1], axis)
        return r

    def prox_l2(self, z: Tensor, y: Tensor, gamma: float, tol: float = 0.0, max_iter: int = 0) -> Tensor:
        r"""argmin_u 0.5 * ||A u - y||^2 + ||u - z||^2 / (2 * gamma), exactly:

        u = z + gamma A^T (I + gamma A A^T)^{-1} (y - A z).

        (``tol`` and ``max_iter`` are accepted for the common signature; nothing iterates.)
        """
        r = self._spectral(y - self.A(z), lambda lam: 1.0 / (1.0 + gamma * lam))
        return self.A_adjoint(r).mul_(gamma).add_(z)

    def A_dagger(self, y: Tensor, eps: float = 0.0, tol: float = 0.0, max_iter: int = 0) -> Tensor:
        r"""A^T (A A^T + eps I)^{-1} y, exactly; with eps = 0 the pseudo-inverse A^+ y.

        For eps = 0, eigenvalues below 1e-6 x the largest count as zero.
        """
        if eps > 0:
            fn = lambda lam: 1.0 / (lam + eps)  # noqa: E731
        else:
            def fn(lam):
                keep = lam > 1e-6 * lam.max()
                return torch.where(keep, 1.0 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))
        return self.A_adjoint(self._spectral(y, fn))


class Identity(SeparableLinear):
    """x -> x. Its prox is (z + gamma y) / (1 + gamma)."""

    def __init__(self):
        super().__init__(None, None, None)

    def __repr__(self) -> str:
        return "Identity()"
