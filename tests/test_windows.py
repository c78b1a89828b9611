"""Window planning and joining: coverage, alignment, weights, seams, restriction of operators in time."""

from __future__ import annotations

import pytest
import torch

from lvtino.config import load_problem
from lvtino.errors import UserError
from lvtino.physics.problems import build_physics
from lvtino.pipeline.windows import Joiner, fade_weights, plan_windows, seam_step


REPLICATE = ["operator.0.temporal_blur.boundary=replicate"]


def physics_for(problem, frames, h=16, w=24):
    """``B-rep``: Problem B with a replicate boundary in time (a circular one restores in one window only)."""
    if problem == "B-rep":
        return build_physics(load_problem("B", overrides=REPLICATE).operator, (frames, h, w))
    return build_physics(load_problem(problem).operator, (frames, h, w))


def plan_for(problem, frames, length, overlap):
    p = physics_for(problem, frames)
    return p, plan_windows(p.time_supports(frames), frames, p.factors[0], length, overlap)


@pytest.mark.parametrize("problem,frames,length,overlap", [
    ("A", 200, 25, 8), ("A", 101, 25, 8), ("B-rep", 200, 33, 10), ("C", 300, 81, 8), ("jpeg", 60, 25, 8),
    ("deblur-t7", 97, 33, 10), ("fps2", 51, 25, 8)])
def test_plan_covers_every_frame_and_every_measured_frame_whole(problem, frames, length, overlap):
    physics, plan = plan_for(problem, frames, length, overlap)
    f = physics.factors[0]
    covered = torch.zeros(frames, dtype=torch.int64)
    for w in plan.windows:
        covered[w.start:w.end] += 1
        assert w.start % f == 0  # every window starts on a measured frame's first signal frame
    assert covered.min() >= 1 and covered.max() <= 2
    assert plan.windows[0].start == 0 and plan.windows[-1].end == frames
    for row, s in enumerate(physics.time_supports(frames)):
        if s is not None:
            assert any(w.start <= s[0] and s[1] <= w.end for w in plan.windows), row
    for a, b in zip(plan.windows, plan.windows[1:]):
        assert (a.end - b.start) % f == 0 and a.end - b.start >= overlap  # overlaps aligned, at least as asked


def test_lengths_round_to_the_temporal_factor():
    _, plan = plan_for("A", 200, 25, 6)  # 25 -> 24 frames (6 measured), overlap 6 -> 8
    assert [w.frames for w in plan.windows[:-1]] == [24] * (len(plan.windows) - 1)
    assert plan.windows[0].end - plan.windows[1].start == 8


def test_last_window_may_be_shorter_and_a_short_video_is_one_window():
    _, plan = plan_for("A", 70, 24, 8)
    assert [(w.start, w.end) for w in plan.windows] == [(0, 24), (16, 40), (32, 56), (48, 70)]
    _, plan = plan_for("A", 73, 24, 8)
    assert plan.windows[-1].end == 73 and plan.windows[-1].frames < 24 + 4
    _, plan = plan_for("B", 20, 33, 10)
    assert [(w.start, w.end) for w in plan.windows] == [(0, 20)]


def test_overlap_grows_to_the_operators_reach():
    _, plan = plan_for("B-rep", 200, 33, 2)  # a 7-frame blur reaches 6 frames past its own frame
    assert plan.margin == 6
    assert all(a.end - b.start >= 6 for a, b in zip(plan.windows, plan.windows[1:]))


def test_a_circular_boundary_is_restored_in_one_window_only():
    _, plan = plan_for("B", 33, 33, 10)
    assert [(w.start, w.end) for w in plan.windows] == [(0, 33)]
    with pytest.raises(UserError, match="temporal boundary is circular: measured frame 0 mixes the first and last"
                                        " frames .* use window.frames 40"):
        plan_for("B", 40, 33, 10)


def test_plan_of_an_hour():
    _, plan = plan_for("A", 108_000, 25, 8)  # (its time: scripts/bench_streaming.py)
    assert plan.windows[-1].end == 108_000 and plan.first_needed(108_000) == len(plan.windows)
    for frame in (0, 15, 16, 17, 5000, 107_999):
        need = plan.select(frame, 108_000)[0].index
        assert plan.first_needed(frame) == need, frame


def test_too_short_windows_are_refused_in_one_line():
    with pytest.raises(UserError, match="window.frames 13 is too short"):
        plan_for("B-rep", 200, 13, 6)


def test_fade_weights_sum_to_one():
    _, plan = plan_for("A", 150, 24, 8)
    total = torch.zeros(150, dtype=torch.float64)
    for w in plan.windows:
        weights = fade_weights(plan, w)
        assert weights.min() > 0 and weights.max() <= 1
        total[w.start:w.end] += weights
    assert torch.allclose(total, torch.ones(150, dtype=torch.float64))


def join(plan, windows, seam=None):
    out = {}
    joiner = Joiner(plan, seam)
    for w in plan.windows:
        for t, frame in joiner.add(w, windows[w.index]):
            assert t not in out  # each frame leaves once
            out[t] = frame
    for t, frame in joiner.finish():
        out[t] = frame
    return torch.cat([out[t] for t in range(plan.frames)], dim=2)


def test_a_constant_video_stays_constant_and_frames_leave_in_order():
    _, plan = plan_for("B-rep", 100, 33, 10)
    windows = {w.index: torch.full((1, 3, w.frames, 4, 5), 0.3) for w in plan.windows}
    assert torch.allclose(join(plan, windows), torch.full((1, 3, 100, 4, 5), 0.3), atol=1e-6)


def test_join_blends_two_different_windows_linearly():
    _, plan = plan_for("A", 40, 24, 8)  # windows (0, 24) and (16, 40)
    windows = {0: torch.zeros(1, 1, 24, 1, 1), 1: torch.ones(1, 1, 24, 1, 1)}
    x = join(plan, windows).flatten()
    assert torch.equal(x[:16], torch.zeros(16)) and torch.equal(x[24:], torch.ones(16))
    assert torch.allclose(x[16:24], torch.arange(1, 9, dtype=torch.float32) / 9)


@pytest.mark.parametrize("problem,length,overlap,bound", [("A", 24, 8, 1e-4), ("fps8", 48, 16, 1e-4),
                                                          ("B-rep", 33, 10, 0.6)])
def test_seam_step_makes_the_join_measurement_consistent(problem, length, overlap, bound):
    """Windows that each fit y, cross-faded, drift from y at the seams; the seam step brings them back.

    Exactly when every measured frame lies in one window-aligned group (pooling, per-frame operators); for a
    temporal blur a measured frame straddling the seam region's edge keeps part of its misfit (a least-squares
    fit over the region; only a global solve removes it), here half of it at least, with windows that disagree
    everywhere (real windows disagree far less)."""
    frames = 90
    physics, plan = plan_for(problem, frames, length, overlap)
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(1, 3, frames, 16, 24, generator=g) - 0.5  # inside [-1, 1] with room: the step clamps
    y = physics.A(truth)
    windows = {}
    for w in plan.windows:  # each window: a different measurement-consistent estimate
        pw, rows = physics.restrict_time(w.start, w.end)
        guess = torch.rand(1, 3, w.frames, 16, 24, generator=g) - 0.5
        windows[w.index] = guess + pw.A_dagger(y[:, :, rows] - pw.A(guess))

    class Measured:  # the measured frames as the run hands them to the step
        def get(self, rows):
            return y[:, :, rows]

    seam = seam_step(physics, Measured(), eps=0.0)
    supports = physics.time_supports(frames)
    inner = [r for r, s in enumerate(supports) if s is not None]
    residual = lambda x: float((physics.A(x) - y)[:, :, inner].norm() / y[:, :, inner].norm())
    before = residual(join(plan, windows))
    assert before > 1e-2
    after = residual(join(plan, windows, seam))
    assert after < (bound if bound < 1e-3 else bound * before)


@pytest.mark.parametrize("problem", ["A", "B", "C", "jpeg", "sr4"])
def test_restricted_operator_is_the_full_operator_on_its_rows(problem):
    frames = 50
    physics = physics_for(problem, frames, 16, 24)
    x = torch.rand(1, 3, frames, 16, 24) * 2 - 1
    full = physics.A(x)
    for start, end in ((0, 17), (8, 40), (24, 50)):
        pw, rows = physics.restrict_time(start, end)
        assert rows, (start, end)
        assert torch.allclose(pw.A(x[:, :, start:end]), full[:, :, rows], atol=1e-5)


def test_range_selection_takes_the_windows_a_range_needs():
    _, plan = plan_for("A", 200, 24, 8)  # windows start every 16 frames
    assert [w.index for w in plan.select(0, 5)] == [0]
    assert [w.index for w in plan.select(30, 90)] == [1, 2, 3, 4, 5]
    assert [w.index for w in plan.select(199, 200)] == [len(plan.windows) - 1]
