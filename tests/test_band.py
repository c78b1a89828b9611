"""The banded time axis against dense matrices: same numbers for every preset, at any length."""

from __future__ import annotations

import random

import pytest
import torch

import lvtino.physics.band as band_module
from lvtino.config import known_problems, load_problem
from lvtino.physics.band import PADDINGS, Band
from lvtino.physics.problems import build_physics
from lvtino.physics.separable import SeparableLinear


def dense_conv(n: int, kernel: torch.Tensor, stride: int, pad_left: int, mode: str) -> torch.Tensor:
    """The reference: the matrix filled entry by entry, as written from the definition."""
    def source(i):
        if 0 <= i < n:
            return i
        if mode == "zeros":
            return None
        if mode == "replicate":
            return min(max(i, 0), n - 1)
        if mode == "circular":
            return i % n
        period = 2 * (n - 1) if n > 1 else 1
        i %= period
        return i if i < n else period - i
    flipped = kernel.flip(0).tolist()
    m = -(-n // stride)
    M = torch.zeros(m, n, dtype=torch.float64)
    for j in range(m):
        for k, w in enumerate(flipped):
            src = source(j * stride + k - pad_left)
            if src is not None:
                M[j, src] += w
    return M


@pytest.mark.parametrize("mode", PADDINGS)
def test_conv_band_equals_the_dense_matrix(mode):
    rng = random.Random(0)
    for _ in range(25):
        n, L, stride = rng.randint(1, 40), rng.choice([1, 2, 3, 4, 7, 8]), rng.choice([1, 2, 4])
        kernel = torch.rand(L, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        pad = rng.randint(0, L)
        b, d = Band.conv(n, kernel, stride, pad, mode), dense_conv(n, kernel, stride, pad, mode)
        assert torch.allclose(b.dense(), d, atol=1e-15), (n, L, stride, pad)
        assert torch.allclose(b.transpose().dense(), d.T) and torch.allclose(b.gram().dense(), d @ d.T)
        assert torch.allclose(Band.from_dense(d).dense(), d)
        rows = torch.arange(b.rows)
        cols = torch.randperm(n, generator=torch.Generator().manual_seed(L))[: max(1, n // 2)]
        assert torch.allclose(b.take(rows, cols), d[:, cols])
        for j, s in enumerate(b.supports()):  # contiguous columns, or None when they wrap
            nz = torch.nonzero(d[j]).flatten().tolist()
            expected = (nz[0], nz[-1] + 1) if nz and nz[-1] - nz[0] + 1 == len(nz) else None
            assert s == expected


def test_compose_equals_the_matrix_product():
    k = torch.ones(7, dtype=torch.float64) / 7
    blur = Band.conv(50, k, 1, 3, "reflect")
    pool = Band.conv(50, torch.ones(4, dtype=torch.float64) / 4, 4, 0, "replicate")
    assert torch.allclose(pool.compose(blur).dense(), pool.dense() @ blur.dense())


def reference_restrict(M: torch.Tensor, start: int, end: int, within=None):
    """Scan the dense matrix: the rows with no non-zero outside [lo, hi) and some inside [start, end)."""
    lo, hi = within or (start, end)
    rows = []
    for j in range(M.shape[0]):
        nz = torch.nonzero(M[j]).flatten()
        if len(nz) and nz.min() >= lo and nz.max() < hi and (M[j, start:end] != 0).any():
            rows.append(j)
    return M[rows, start:end], rows


PRESETS = sorted(known_problems())


def dense_apply(Mt, Mh, Mw, x):
    """A x with every axis's matrix dense (None: the identity), by plain products: the reference."""
    if Mt is not None:
        x = torch.einsum("st,bcthw->bcshw", Mt, x)
    if Mh is not None:
        x = torch.einsum("ih,bcthw->bctiw", Mh, x)
    if Mw is not None:
        x = torch.einsum("jw,bcthw->bcthj", Mw, x)
    return x


def dense_matrices(physics):
    mt, mh, mw = physics.matrices
    return (None if mt is None else mt.dense().clone(), mh, mw)


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_band_equals_dense(name):
    """A, A^T, A A^T, supports, restrict_time (and the within form the seam uses) and prox of the banded operator,
    against plain dense products of the matrix the band stands for (``dense_apply``), and the prox against its
    optimality condition."""
    rng = random.Random(name)
    chain = load_problem(name).operator
    for frames in (rng.randint(9, 60), rng.randint(61, 130)):
        physics = build_physics(chain, (frames, 16, 24)).linear_surrogate()
        if not isinstance(physics, SeparableLinear) or physics.time is None:
            continue
        Mt, Mh, Mw = dense_matrices(physics)
        T = lambda M: None if M is None else M.T  # noqa: E731
        x = torch.randn(1, 3, frames, 16, 24, dtype=torch.float64)
        y = physics.A(x)
        assert torch.allclose(y, dense_apply(Mt, Mh, Mw, x))
        assert torch.allclose(physics.A_adjoint(y), dense_apply(T(Mt), T(Mh), T(Mw), y))
        gram = dense_apply(Mt, Mh, Mw, dense_apply(T(Mt), T(Mh), T(Mw), y))
        assert torch.allclose(physics.A_A_adjoint(y), gram)
        supports = [None if not (nz := torch.nonzero(row).flatten().tolist()) or nz[-1] - nz[0] + 1 != len(nz)
                    else (nz[0], nz[-1] + 1) for row in Mt]
        assert physics.time_supports(frames) == supports
        for _ in range(6):
            start = rng.randint(0, frames - 2)
            end = rng.randint(start + 1, frames)
            lo, hi = max(0, start - rng.randint(0, 6)), min(frames, end + rng.randint(0, 6))
            for within in (None, (lo, hi)):
                op, rows = physics.restrict_time(start, end, within)
                ref, ref_rows = reference_restrict(Mt, start, end, within)
                assert rows == ref_rows
                if rows:
                    assert torch.allclose(op.time.dense(), ref)
                    xs = x[:, :, start:end]
                    assert torch.allclose(op.A(xs), dense_apply(ref, Mh, Mw, xs))
        gamma = 37.0
        u = physics.prox_l2(x, y + 0.1, gamma)  # argmin 0.5 ||A u - y'||^2 + ||u - x||^2 / (2 gamma)
        grad = (u - x) + gamma * dense_apply(T(Mt), T(Mh), T(Mw), dense_apply(Mt, Mh, Mw, u) - (y + 0.1))
        assert grad.abs().max() < 1e-9 * max(1.0, float((u - x).abs().max()))


def test_prox_of_a_band_operator_solves_its_normal_equations():
    physics = build_physics(load_problem("A").operator, (9, 8, 12))
    x0 = torch.randn(1, 1, 9, 8, 12, dtype=torch.float64)
    y = torch.randn(physics.output_shape((9, 8, 12)), dtype=torch.float64).unsqueeze(0).unsqueeze(0)
    gamma = 5.0
    u = physics.prox_l2(x0, y, gamma)
    A = torch.stack([physics.A(e.view(1, 1, 9, 8, 12)).flatten() for e in torch.eye(9 * 8 * 12,
                                                                                    dtype=torch.float64)], 1)
    lhs = torch.eye(A.shape[1], dtype=torch.float64) + gamma * A.T @ A
    expected = torch.linalg.solve(lhs, x0.flatten() + gamma * A.T @ y.flatten())
    assert torch.allclose(u.flatten(), expected, atol=1e-10)


def test_the_sparse_path_of_a_long_band_equals_the_dense_one(monkeypatch):
    """Past the size worth a dense copy, products gather along the band: same numbers."""
    physics = build_physics(load_problem("A").operator, (101, 8, 12))
    x = torch.randn(2, 3, 101, 8, 12, dtype=torch.float64)
    y = physics.A(x)
    back = physics.A_adjoint(y)
    monkeypatch.setattr(band_module, "DENSE_LIMIT", 0)
    sparse = build_physics(load_problem("A").operator, (101, 8, 12))
    assert torch.allclose(sparse.A(x), y) and torch.allclose(sparse.A_adjoint(y), back)
    assert torch.allclose(sparse.A_A_adjoint(y), physics.A_A_adjoint(y))


def test_an_hour_of_video_costs_megabytes():
    """108,000 frames of Problem A: the band holds 27,000 rows of 4 weights; windows are cut out of it."""
    physics = build_physics(load_problem("A").operator, (108_000, 720, 1280))
    band = physics.time
    assert band.shape == (27_000, 108_000) and band.index.numel() == 27_000 * 4
    op, rows = physics.restrict_time(54_000, 54_024)
    assert rows == list(range(13_500, 13_506)) and op.time.shape == (6, 24)
    assert physics.time_supports(108_000)[-1] == (107_996, 108_000)


@pytest.mark.parametrize("name", ["A", "C", "deblur-t7", "fps8", "sr4"])
def test_the_production_seam_step_fits_every_measured_frame_touching_the_seam(name):
    """pipeline.windows.seam_step, as the joiner calls it: the correction of frames [a, b) is the least-squares fit
    of every measured frame that touches them (and no frame outside [lo, hi)): what is left of their residual is
    orthogonal to everything frames [a, b) can change (exactly zero where they can fit it whole: pooling,
    sampling, per-frame; a blur's rows outnumber the frames); the other measured frames are not touched."""
    from lvtino.pipeline.windows import seam_step

    physics = build_physics(load_problem(name).operator, (90, 16, 24))
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(1, 3, 90, 16, 24, dtype=torch.float64, generator=g) * 0.8 - 0.4
    y = physics.A(truth)
    x = truth + 0.1 * torch.randn(truth.shape, dtype=torch.float64, generator=g)  # a window's estimate

    class Measured:
        def get(self, rows):
            return y[:, :, rows]
    a, b, lo, hi = 40, 52, 32, 60
    corrected = x.clone()
    corrected[:, :, a:b] = seam_step(physics, Measured(), 1e-9)(a, b, lo, hi, x[:, :, lo:hi])
    region, rows = physics.restrict_time(a, b, within=(lo, hi))
    assert rows  # the seam is measured
    left = lambda u: region.A_adjoint(physics.A(u)[:, :, rows] - y[:, :, rows])  # noqa: E731 (normal equations)
    assert float(left(corrected).abs().max()) < 1e-6 * float(left(x).abs().max())
    if name != "deblur-t7":
        assert torch.allclose(physics.A(corrected)[:, :, rows], y[:, :, rows], atol=1e-6)
    outside = [r for r in range(y.shape[2]) if r not in rows
               and all(not (a <= c < b) for c in torch.nonzero(physics.time.dense()[r]).flatten().tolist())] \
        if physics.time is not None else [r for r in range(90) if not a <= r < b]
    assert torch.equal(physics.A(corrected)[:, :, outside], physics.A(x)[:, :, outside])


@pytest.mark.parametrize("mode", PADDINGS)
@pytest.mark.parametrize("stride", [1, 3, 4])
def test_blocked_spatial_products_are_the_dense_ones(mode, stride):
    """A filter matrix, its transpose and its Gram applied in blocks of rows, along every axis of a video, equal
    the plain dense product (einsum) to float64 rounding; a matrix whose rows touch most columns stays dense."""
    from lvtino.physics.band import Blocked

    g = torch.Generator().manual_seed(stride)
    n = 37
    m = dense_conv(n, torch.rand(9, generator=g, dtype=torch.float64) + 0.1, stride, 4, mode)
    for matrix in (m, m.T.contiguous(), m @ m.T):
        blocked = Blocked(matrix, block=5)  # 37 rows: the last block is partial
        for axis in (2, 3, 4):
            shape = [2, 3, 4, 5, 6]
            shape[axis] = matrix.shape[1]
            x = torch.randn(shape, generator=g, dtype=torch.float64)
            want = torch.movedim(torch.tensordot(x, matrix, dims=([axis], [1])), -1, axis)  # sum_j M[i, j] x[.., j, ..]
            assert torch.allclose(blocked.apply(x, axis), want, rtol=0, atol=1e-12)
    wide = dense_conv(160, torch.rand(9, generator=g, dtype=torch.float64) + 0.1, 4, 4, mode)
    # 160 -> 40 samples, 9 taps: blocks save most of the work, unless the rows wrap around (circular: the first
    # and last blocks span the whole axis)
    assert isinstance(Blocked.of(wide), Blocked) == (mode != "circular")
    assert isinstance(Blocked.of(wide.T.contiguous()), torch.Tensor)  # widening: dense (faster)
    assert isinstance(Blocked.of(torch.rand(8, 16, dtype=torch.float64) + 0.1), torch.Tensor)  # full rows: dense


def test_transpose_of_a_band_whose_columns_are_in_one_row_is_a_gather_equal_to_the_dense_product():
    """Frames dropped or pooled (every signal frame in one measured frame at most, some in none): M^T y by a
    gather and a scale equals the dense transposed product; a band with a column in two rows (a blur) takes
    the general path."""
    g = torch.Generator().manual_seed(5)
    pooled = Band.conv(23, torch.full((4,), 0.25, dtype=torch.float64), 4, 0, "zeros")  # 6 rows, 23 columns
    dropped = Band(torch.tensor([[1], [5], [9], [13]]), torch.tensor([[1.0], [2.0], [0.5], [1.0]]), 15)
    blur = Band.conv(12, torch.ones(3, dtype=torch.float64) / 3, 1, 1, "reflect")
    for band, single in ((pooled, True), (dropped, True), (blur, False)):
        assert (band._single_rows() is not None) == single
        y = torch.randn(2, 3, band.rows, 5, 4, generator=g, dtype=torch.float64)
        want = torch.einsum("rc,bsrhw->bschw", band.dense(), y)
        assert torch.allclose(band.apply_transpose(y, 2), want, rtol=0, atol=1e-12)
