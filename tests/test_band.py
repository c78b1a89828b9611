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


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_band_equals_dense(name):
    """A, A^T, supports, restrict_time (and the within form the seam uses) and prox, band against dense."""
    rng = random.Random(name)
    chain = load_problem(name).operator
    for frames in (rng.randint(9, 60), rng.randint(61, 130)):
        physics = build_physics(chain, (frames, 16, 24)).linear_surrogate()
        if not isinstance(physics, SeparableLinear) or physics.time is None:
            continue
        dense_t = physics.time.dense()
        twin = SeparableLinear(dense_t.clone(), *physics.matrices[1:], physics.factors)  # the dense path
        x = torch.randn(1, 3, frames, 16, 24, dtype=torch.float64)
        y = physics.A(x)
        assert torch.allclose(y, twin.A(x)) and torch.allclose(physics.A_adjoint(y), twin.A_adjoint(y))
        assert torch.allclose(physics.A_A_adjoint(y), twin.A_A_adjoint(y))
        assert physics.time_supports(frames) == twin.time_supports(frames)
        for _ in range(6):
            start = rng.randint(0, frames - 2)
            end = rng.randint(start + 1, frames)
            lo, hi = max(0, start - rng.randint(0, 6)), min(frames, end + rng.randint(0, 6))
            for within in (None, (lo, hi)):
                op, rows = physics.restrict_time(start, end, within)
                ref, ref_rows = reference_restrict(dense_t, start, end, within)
                assert rows == ref_rows
                if rows:
                    assert torch.allclose(op.time.dense(), ref)
                    xs = x[:, :, start:end]
                    assert torch.allclose(op.A(xs), SeparableLinear(ref, *physics.matrices[1:]).A(xs))
        gamma = 37.0
        assert torch.allclose(physics.prox_l2(x, y + 0.1, gamma), twin.prox_l2(x, y + 0.1, gamma), atol=1e-10)


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
def test_the_seam_step_is_the_same_on_band_and_dense(name):
    from lvtino.pipeline.windows import seam_step

    physics = build_physics(load_problem(name).operator, (90, 16, 24))
    twin = SeparableLinear(physics.time.dense().clone(), *physics.matrices[1:], physics.factors) \
        if physics.time is not None else physics
    x = torch.rand(1, 3, 90, 16, 24, dtype=torch.float64) * 2 - 1
    y = physics.A(torch.rand_like(x))

    class Measured:
        def get(self, rows):
            return y[:, :, rows]
    a, b, lo, hi = 40, 52, 32, 60
    got = seam_step(physics, Measured(), 1e-4)(a, b, lo, hi, x[:, :, lo:hi])
    ref = seam_step(twin, Measured(), 1e-4)(a, b, lo, hi, x[:, :, lo:hi])
    assert torch.allclose(got, ref, atol=1e-12) and got.shape[2] == b - a
