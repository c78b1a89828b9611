"""Separable linear operators: one matrix per axis (time, height, width).

Every degradation of the paper's problems (temporal pooling, temporal blur,
filtered spatial subsampling, and their compositions) acts on each axis
independently, so it is a Kronecker product

    A = M_t (x) M_h (x) M_w     applied to every channel,

where each M_a holds the filter, the stride and the boundary rule of its axis:
a small dense matrix for height and width, a band (``physics.band``) for time,
so that an operator over an hour of video costs megabytes, not gigabytes.
Three consequences make this module worth its name:

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

import torch
from torch import Tensor

from lvtino.physics.band import DENSE_LIMIT, PADDINGS, Band, Blocked, along  # noqa: F401  (PADDINGS: re-exported)
from lvtino.physics.base import LinearPhysics, Shape

def conv_matrix(n: int, kernel: Tensor, stride: int, pad_left: int, mode: str) -> Tensor:
    """Dense matrix (ceil(n / stride), n) of a padded 1-D convolution followed by subsampling (``Band.conv``)."""
    return Band.conv(n, kernel, stride, pad_left, mode).dense().clone()


def _along(x: Tensor, M, axis: int) -> Tensor:
    """Multiply axis ``axis`` (2=T, 3=H, 4=W) of a (B, C, T, H, W) tensor by M (a matrix or a band)."""
    return M.apply(x, axis) if isinstance(M, Band) else along(x, M, axis)


class _Transposed:
    """A band used transposed, without building its transpose."""

    def __init__(self, band: Band):
        self.band = band
        self.shape = (band.cols, band.rows)

    def apply(self, x: Tensor, axis: int) -> Tensor:
        return self.band.apply_transpose(x, axis)


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
        x = M.apply(x, axis) if isinstance(M, (Band, _Transposed, Blocked)) else _along(x, M, axis)
    return x


class SeparableLinear(LinearPhysics):
    """A = M_t (x) M_h (x) M_w; an axis whose matrix is None is left unchanged.

    The time axis is a ``Band`` (a dense matrix given here is converted), height
    and width dense float64 matrices on the CPU, cast once per (dtype, device).
    The operators made from this one for windows of time (``restrict_time``,
    ``with_time``, ...) keep its spatial matrices and share their eigenvectors
    (``spatial_eig``): found once for a whole run.
    """

    def __init__(self, mt: Band | Tensor | None, mh: Tensor | None, mw: Tensor | None, factors: Shape = (1, 1, 1),
                 spatial_eig: dict | None = None):
        if mt is not None and not isinstance(mt, Band):
            mt = Band.from_dense(mt)
        self.matrices = (mt, mh, mw)
        self.factors = factors
        self._cast: dict = {}
        self._eig: dict = {}
        # (axis, dtype, device) -> (the spatial matrix, its Gram's eigenvalues, eigenvectors): shared with the
        # operators derived from this one, each entry checked against the matrix it was found for
        self._spatial_eig = {} if spatial_eig is None else spatial_eig

    def with_time(self, mt: Band | Tensor | None, factors: Shape | None = None) -> "SeparableLinear":
        """This operator's spatial part under another time matrix (sharing its spatial eigenvectors)."""
        return SeparableLinear(mt, self.matrices[1], self.matrices[2], factors or self.factors, self._spatial_eig)

    @property
    def time(self) -> Band | None:
        return self.matrices[0]

    # -- shapes ---------------------------------------------------------------
    def output_shape(self, shape: Shape) -> Shape:
        self._check(shape, "signal", col=True)
        return tuple(n if M is None else M.shape[0] for n, M in zip(shape, self.matrices))

    # -- windows in time --------------------------------------------------------
    def time_supports(self, frames: int) -> list[tuple[int, int] | None]:
        if self.time is None:
            return [(t, t + 1) for t in range(frames)]
        return self.time.supports()

    def time_rows(self, start: int, end: int, within: tuple[int, int] | None = None) -> Tensor:
        """The measured frames that depend on no frame outside ``within`` (default [start, end)) and on some
        frame of [start, end): a vectorised comparison of each row's extent, never a scan of the matrix."""
        lo, hi = within or (start, end)
        first, last, count = self.time.extents()
        return torch.nonzero((count > 0) & (first >= lo) & (last < hi) & (first < end) & (last >= start)).flatten()

    def restrict_time(self, start: int, end: int, within: tuple[int, int] | None = None):
        mt = self.time
        if mt is None:
            return self.with_time(None), list(range(start, end))
        rows = self.time_rows(start, end, within)
        part = mt.restrict(rows, start, end)
        touching = (part.weight != 0).any(1)  # a row may touch [lo, hi) outside [start, end) only
        return self.with_time(part.subset(torch.nonzero(touching).flatten())), rows[touching].tolist()

    def split_time(self) -> tuple[Band | None, "SeparableLinear"]:
        """(M_t, the per-frame operator M_h (x) M_w): A x = M_t applied to the frames' per-frame measurements."""
        return self.time, self.with_time(None, (1, *self.factors[1:]))

    def time_columns(self, rows: Tensor) -> Tensor:
        if self.time is None:
            return torch.as_tensor(rows, dtype=torch.long)
        band = self.time
        rows = torch.as_tensor(rows, dtype=torch.long)
        return torch.unique(band.index[rows][band.weight[rows] != 0])

    def restrict_columns(self, rows: Tensor, cols: Tensor) -> "SeparableLinear":
        """The operator from the signal frames ``cols`` (in that order) to the measured frames ``rows``."""
        if self.time is None:
            return self
        return self.with_time(self.time.take(rows, cols))

    def _check(self, shape: Shape, what: str, col: bool) -> None:
        for name, n, M in zip("THW", shape, self.matrices):
            want = None if M is None else M.shape[1 if col else 0]
            if want is not None and n != want:
                raise ValueError(f"{type(self).__name__} expects a {what} with {name}={want}, got {name}={n}")

    def _mats(self, like: Tensor) -> tuple:
        key = (like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = tuple(M if M is None or isinstance(M, Band) else M.to(like.device, like.dtype)
                                    for M in self.matrices)
        return self._cast[key]

    def _products(self, kind: str, like: Tensor) -> tuple:
        """Per axis, what ``_apply_axes`` multiplies by for A (``"A"``), A^T (``"AT"``) or A A^T (``"gram"``):
        the time band (transposed without being built), the dense spatial matrices in blocks of rows where
        their taps are few (``Blocked``), cast once per (dtype, device)."""
        key = (kind, like.dtype, like.device)
        if key not in self._cast:
            out = []
            for M in self._mats(like):
                if M is None or (isinstance(M, Band) and kind == "A"):
                    out.append(M)
                elif isinstance(M, Band):
                    out.append(_Transposed(M) if kind == "AT" else M.gram())
                else:
                    dense = {"A": M, "AT": M.transpose(0, 1), "gram": M @ M.transpose(0, 1)}[kind]
                    out.append(Blocked.of(dense.contiguous()))
            self._cast[key] = tuple(out)
        return self._cast[key]

    # -- the operator ---------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        self._check(tuple(x.shape[2:]), "signal", col=True)
        return _apply_axes(x, self._products("A", x))

    def A_adjoint(self, y: Tensor) -> Tensor:
        self._check(tuple(y.shape[2:]), "measurement", col=False)
        return _apply_axes(y, self._products("AT", y))

    def A_A_adjoint(self, y: Tensor) -> Tensor:
        """A A^T y = (K_t (x) K_h (x) K_w) y with the small Gram matrices K_a = M_a M_a^T (a band for time)."""
        self._check(tuple(y.shape[2:]), "measurement", col=False)
        return _apply_axes(y, self._products("gram", y))

    def __mul__(self, other: LinearPhysics) -> LinearPhysics:
        if not isinstance(other, SeparableLinear):
            return super().__mul__(other)
        mats = []
        for name, outer, inner in zip("THW", self.matrices, other.matrices):
            if outer is not None and inner is not None and outer.shape[1] != inner.shape[0]:
                raise ValueError(
                    f"cannot compose along {name}: inner gives {inner.shape[0]} samples, outer expects {outer.shape[1]}"
                )
            if outer is None or inner is None:
                mats.append(inner if outer is None else outer)
            else:
                mats.append(outer.compose(inner) if isinstance(outer, Band) else outer @ inner)
        factors = tuple(a * b for a, b in zip(self.factors, other.factors))
        # an axis left as it was keeps its eigenvectors (JPEG's identity surrogate around a resize, per window)
        same = lambda op: all(a is b for a, b in zip(mats[1:], op.matrices[1:]))  # noqa: E731
        shared = self._spatial_eig if same(self) else other._spatial_eig if same(other) else None
        composed = SeparableLinear(*mats, factors=factors, spatial_eig=shared)
        composed.parts = (self, other)
        return composed

    def __repr__(self) -> str:
        if hasattr(self, "parts"):
            return f"{self.parts[0]!r} * {self.parts[1]!r}"
        return f"{type(self).__name__}()"

    # -- closed forms through the eigenvectors of A A^T -------------------------
    def _gram_eig(self, like: Tensor):
        """Per axis: (eigenvalues, eigenvectors) of K_a = M_a M_a^T, or None.

        The spatial matrices are shared by every window's operator, so their
        eigenvectors are found once per run (``with_time``).
        """
        key = (like.dtype, like.device)
        if key not in self._eig:
            out = []
            for axis, M in enumerate(self.matrices):
                if M is None:
                    out.append(None)
                elif isinstance(M, Band):
                    if M.rows * M.rows > 4 * DENSE_LIMIT:
                        raise ValueError(f"a closed-form solve over {M.rows} measured frames at once is too large; "
                                         "restore long videos in windows")
                    out.append(_eig(M.dense(), like))
                else:
                    out.append(self._spatial(axis, M, like))
            self._eig[key] = tuple(out)
        return self._eig[key]

    def _spatial(self, axis: int, M: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        key = (axis, like.dtype, like.device)
        hit = self._spatial_eig.get(key)
        if hit is None or hit[0] is not M:
            hit = self._spatial_eig[key] = (M, *_eig(M, like))
        return hit[1:]

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
        r = self._spectral(y - self.A(z), lambda lam: gamma / (1.0 + gamma * lam))
        return self.A_adjoint(r).add_(z)  # gamma applied in measurement space: one pass less over the signal

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


def _eig(M: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
    lam, V = torch.linalg.eigh(M @ M.transpose(0, 1))
    return lam.clamp_min(0).to(like.device, like.dtype), V.to(like.device, like.dtype)


class Identity(SeparableLinear):
    """x -> x. Its prox is (z + gamma y) / (1 + gamma)."""

    def __init__(self):
        super().__init__(None, None, None)

    def __repr__(self) -> str:
        return "Identity()"
