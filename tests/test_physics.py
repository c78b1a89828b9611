"""Operators: exact adjoints over the whole registry, deepinv agreement, closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvtino.config import known_problems, load_problem
from lvtino.physics.base import ComposedLinearPhysics, LinearPhysics
from lvtino.physics.jpeg import JPEG
from lvtino.physics.problems import build_physics, chain_factors
from lvtino.physics.separable import Identity
from lvtino.physics.spatial import FILTERS, Downsampling
from lvtino.physics.temporal import TemporalAveragePool, TemporalBlur

SHAPE = (9, 37, 29)  # odd frame count and sizes: tails, padding and ceil all exercised
SMALL = (9, 17, 13)   # small enough for A's dense matrix, column by column

# values for the registry's numeric parameters (its Choice parameters take every option it lists); an operator
# registered with a parameter not named here fails test_every_registered_operator_is_covered
VALUES = {"factor": (2, 3, 4, 8), "size": (5, 7), "sigma": (1.2,), "exposure": (0.0, 0.5, 1.0), "phase": (0, 1)}


def _registry_cases() -> dict:
    """Every linear operator of ``physics.problems.OPERATORS`` over the grid of its parameters, as chains."""
    import itertools

    from lvtino.physics.problems import OPERATORS as REGISTRY
    from lvtino.validation import Choice, Optional

    cases = {}
    for name, spec in REGISTRY.items():
        if not spec.cls.linear:
            continue
        grids = {}
        for param, rule in spec.params.items():
            inner = rule.rule if isinstance(rule, Optional) else rule
            grids[param] = inner.options if isinstance(inner, Choice) else VALUES.get(param, ())
        for values in itertools.product(*grids.values()):
            params = dict(zip(grids, values))
            if params.get("kernel") == "uniform":
                params.pop("sigma", None)
            if "phase" in params and params["phase"] >= params.get("factor", 1):
                continue
            if spec.sized_by == "size" and params.get("factor", 1) == 8 and params.get("padding") == "reflect":
                continue  # an 8x reflect-padded filter does not fit SMALL's 13 pixels (refused, as it should be)
            key = f"{name}-" + "-".join(f"{v}" for v in params.values())
            cases[key] = [{name: params}]
    return cases


REGISTRY_CASES = _registry_cases()
OPERATORS = {
    **{name: (lambda s, chain=chain: build_physics(chain, s)) for name, chain in REGISTRY_CASES.items()},
    "identity": lambda s: Identity(),
    "generic-composition": lambda s: ComposedLinearPhysics(Downsampling(s[1:], 2), TemporalAveragePool(s[0], 4)),
    **{f"problem-{name}": (lambda s, name=name: build_physics(load_problem(name).operator, s).linear_surrogate())
       for name in known_problems()},
}


def test_every_registered_operator_is_covered():
    from lvtino.physics.problems import OPERATORS as REGISTRY

    linear = {name for name, spec in REGISTRY.items() if spec.cls.linear}
    assert {chain[0] and next(iter(chain[0])) for chain in REGISTRY_CASES.values()} == linear
    assert len(REGISTRY_CASES) > 150


def _buildable(name: str, shape) -> LinearPhysics:
    try:
        return OPERATORS[name](shape)
    except ValueError as err:  # a filter larger than the frame: refused in one line, nothing to test
        pytest.skip(f"{name} on {shape}: {err}")


@pytest.mark.parametrize("name", sorted(OPERATORS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_adjointness(name, dtype, tol):
    op = _buildable(name, SHAPE)
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2, 3) + SHAPE, generator=g, dtype=dtype)
    Ax = op.A(x)
    y = torch.randn(Ax.shape, generator=g, dtype=dtype)
    # summed in float64, so the test measures the operator, not the summation; relative to
    # ||Ax|| ||y||, the size <Ax, y> would have without cancellation (Cauchy-Schwarz)
    lhs = (Ax.double() * y.double()).sum()
    rhs = (x.double() * op.A_adjoint(y).double()).sum()
    assert abs(lhs - rhs) / (Ax.double().norm() * y.double().norm()) < tol
    assert tuple(Ax.shape[2:]) == op.output_shape(SHAPE)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_adjoint_is_the_transpose_of_the_dense_matrix(name):
    """A's dense matrix, built column by column from A of every unit vector (a reference that shares no code with
    the adjoint), transposed and applied, is A^T: to float64 rounding."""
    op = _buildable(name, SMALL)
    n = SMALL[0] * SMALL[1] * SMALL[2]
    basis = torch.eye(n, dtype=torch.float64).view(n, 1, *SMALL)
    columns = op.A(basis)  # (n, 1, t, h, w): column j of A is A e_j
    dense = columns.reshape(n, -1).T  # (m, n)
    y = torch.randn(1, 1, *columns.shape[2:], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = (dense.T @ y.reshape(-1)).view(1, 1, *SMALL)
    assert torch.allclose(op.A_adjoint(y), want, atol=1e-12)


def test_temporal_pool_adjoint_folds_the_tail():
    """A^T y: nearest-upsample by k, divide by k, fold the padded tail onto the last frame."""
    op = TemporalAveragePool(frames=10, factor=4)  # 10 -> 3 groups, 2 padded frames
    y = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64)
    expected = y.repeat_interleave(4, dim=2) / 4
    expected[:, :, 9] += expected[:, :, 10] + expected[:, :, 11]
    assert torch.allclose(op.A_adjoint(y), expected[:, :, :10])
    x = torch.randn(1, 2, 10, 4, 5, dtype=torch.float64)
    padded = torch.cat([x, x[:, :, -1:].repeat(1, 1, 2, 1, 1)], 2)
    assert torch.allclose(op.A(x), padded.unflatten(2, (3, 4)).mean(3))


def test_circular_blur_matches_fft_and_adjoint_is_flipped_kernel():
    T = 11
    op = TemporalBlur(T, 7, kernel="uniform", boundary="circular")
    x = torch.randn(1, 1, T, 3, 2, dtype=torch.float64)
    k = torch.zeros(T, dtype=torch.float64)
    k[:4] = 1 / 7
    k[-3:] = 1 / 7  # centred kernel laid out circularly
    fft = torch.fft.ifft(torch.fft.fft(x, dim=2) * torch.fft.fft(k).view(1, 1, T, 1, 1), dim=2).real
    assert torch.allclose(op.A(x), fft)
    flipped = torch.fft.ifft(torch.fft.fft(x, dim=2) * torch.fft.fft(k).conj().view(1, 1, T, 1, 1), dim=2).real
    assert torch.allclose(op.A_adjoint(x), flipped)


@pytest.mark.parametrize("filt", FILTERS)
@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("padding", ["reflect", "circular", "replicate"])
def test_downsampling_matches_deepinv(filt, factor, padding):
    """An extra check where deepinv is installed (the test extras install it): the same numbers as its operator."""
    deepinv = pytest.importorskip("deepinv")
    H, W = (64, 72) if filt == "gaussian" else (48, 40)  # deepinv's reflect needs the filter to fit
    x = torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(1))
    if filt == "box":
        ref = deepinv.physics.Downsampling(img_size=(3, H, W), filter=torch.ones(1, 1, factor, factor) / factor**2,
                                           factor=factor, padding=padding)
    else:
        ref = deepinv.physics.Downsampling(img_size=(3, H, W), filter=filt, factor=factor, padding=padding)
    ours = Downsampling((H, W), factor, filt, padding)
    y_ref = ref.A(x)
    y = ours.A(x.unsqueeze(2)).squeeze(2)
    assert y.shape == y_ref.shape
    assert torch.allclose(y, y_ref, atol=2e-6)
    if not (filt == "box" and padding == "circular"):  # deepinv's own adjoint fails on that case
        z = torch.randn_like(y_ref)
        assert torch.allclose(ours.A_adjoint(z.unsqueeze(2)).squeeze(2), ref.A_adjoint(z), atol=2e-6)


def test_problem_factors_and_shapes():
    assert chain_factors(load_problem("A").operator) == (4, 4, 4)
    assert chain_factors(load_problem("B").operator) == (1, 8, 8)
    assert chain_factors(load_problem("C").operator) == (8, 8, 8)
    assert build_physics(load_problem("A").operator, (25, 768, 1280)).output_shape((25, 768, 1280)) == (7, 192, 320)
    assert build_physics(load_problem("C").operator, (81, 768, 1280)).output_shape((81, 768, 1280)) == (11, 96, 160)


def test_separable_composition_equals_sequential_application():
    s = (8, 32, 24)
    pool, down = TemporalAveragePool(s[0], 4), Downsampling(s[1:], 4)
    x = torch.randn((1, 3) + s, dtype=torch.float64)
    assert torch.allclose((down * pool).A(x), down.A(pool.A(x)))


def test_jpeg_measure_adds_noise_before_compression():
    op = JPEG(quality=10)
    x = torch.rand(1, 3, 2, 32, 48) * 2 - 1
    y = op.A(x)
    assert y.shape == x.shape
    assert (y - x).abs().mean() > 0.005  # quality 10 loses detail
    import cv2  # an independent JPEG codec at the same quality: the same picture to a grey level or two
    frame = ((x[0, :, 0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 10])
    ref = torch.from_numpy(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()).permute(2, 0, 1).double()
    ours = (y[0, :, 0].double() + 1) * 127.5
    assert ok and (ours - ref).abs().mean() < 2.0
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(op.measure(x, 0.01, g1), op.A(x + 0.02 * torch.randn(x.shape, generator=g2)))
    assert isinstance(op.linear_surrogate(), LinearPhysics)


@pytest.mark.parametrize("chain,message", [
    ([{"warp": {}}], "unknown operator 'warp'"),
    ([{"downsample": {"factor": 2, "filtr": "box"}}], "unknown parameter 'filtr'"),
    ([{"jpeg": {}}, {"downsample": {"factor": 2}}], "nothing may follow"),
    ([{"downsample": {"factor": 2, "filter": "lanczos"}}], "filter=lanczos: expected one of bicubic"),
    ([{"temporal_pool": {"factor": "abc"}}], r"operator.0.temporal_pool.factor=abc: expected a whole number"),
    ([{"temporal_blur": {"size": 10**6}}], "size=1000000: expected an odd whole number from 1 to 255"),
    ([], "one or more operators"),
])
def test_registry_refuses_bad_chains(chain, message):
    with pytest.raises(ValueError, match=message):
        build_physics(chain, (4, 16, 16))


def test_every_registered_chain_streams_in_windows_and_other_operators_are_refused():
    """The pipeline's check for ``TimeWindows``: every preset's operator has the verbs; an operator without them
    is refused before any plan, and a composition whose outer part mixes frames refuses windows."""
    from lvtino.physics.base import ComposedPhysics, Physics, TimeWindows
    from lvtino.pipeline.common import build_checked_physics

    for name in known_problems():
        cfg = load_problem(name)
        assert isinstance(build_physics(cfg.operator, (16, 64, 64)), TimeWindows), name

    class Plain(Physics):
        def A(self, x):
            return x

    assert not isinstance(Plain(), TimeWindows)
    cfg = load_problem("A")
    import lvtino.pipeline.common as common

    original = common.build_physics
    common.build_physics = lambda chain, shape: Plain()
    try:
        with pytest.raises(TypeError, match="TimeWindows"):
            build_checked_physics(cfg, (16, 64, 64))
    finally:
        common.build_physics = original
    jpeg_after_resize = JPEG(20) * Downsampling((16, 16), 2)
    assert jpeg_after_resize.restrict_time(2, 5)[1] == [2, 3, 4]
    mixing = ComposedPhysics(TemporalBlur(8, 3), Downsampling((16, 16), 2))
    with pytest.raises(NotImplementedError, match="frame by frame"):
        mixing.restrict_time(0, 4)


def test_windows_share_the_spatial_eigenvectors_found_once():
    """Every window's operator (and the JPEG surrogate's composition) reuses the run operator's spatial
    eigenvectors: the eigen-decomposition runs once per axis, however many windows are solved."""
    import lvtino.physics.separable as separable

    calls = []
    original = separable._eig
    separable._eig = lambda M, like: calls.append(M.shape) or original(M, like)
    try:
        physics = build_physics([{"temporal_pool": {"factor": 2}}, {"downsample": {"factor": 2}}], (24, 16, 12))
        y = torch.randn(1, 3, 4, 8, 6, dtype=torch.float64)
        for start in range(0, 24, 8):
            op, rows = physics.restrict_time(start, start + 8)
            op.A_dagger(y, eps=1e-3)
        spatial = [s for s in calls if s != (4, 8)]  # the per-window time bands are their own
        assert sorted(spatial) == [(6, 12), (8, 16)]
        calls.clear()
        surrogate = (JPEG(20) * Downsampling((16, 12), 2)).linear_surrogate()
        surrogate.A_dagger(y[:, :, :1], eps=1e-3)
        surrogate.restrict_time(0, 1)[0].A_dagger(y[:, :, :1], eps=1e-3)
        assert sorted(calls) == [(6, 12), (8, 16)]
    finally:
        separable._eig = original
