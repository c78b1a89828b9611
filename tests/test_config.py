"""Presets: every problem loads, holds the paper's tuned numbers, and refuses unknown keys."""

from __future__ import annotations

import pytest

from lvtino.config import known_problems, load_problem, per_step
from lvtino.errors import UserError

REQUIRED = {"A", "B", "C", "jpeg", "sr2", "sr4", "sr8", "fps2", "fps4", "fps8", "deblur-t7"}


def test_every_required_problem_has_a_preset():
    assert REQUIRED <= set(known_problems())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_loads_and_validates(name):
    cfg = load_problem(name)
    assert cfg.name == name and cfg.operator
    n = len(cfg.sampler.video_timesteps)
    assert len(cfg.sampler.image_timesteps) == n - 1


def test_presets_hold_the_papers_numbers():
    a, b, c, j = (load_problem(n).sampler for n in ("A", "B", "C", "jpeg"))
    for s in (a, b, j):
        assert s.video_timesteps == [757, 522, 375, 255, 125] and s.image_timesteps == [374, 249, 124, 124]
    assert c.video_timesteps == [757, 522, 375] and c.image_timesteps == [249, 63]
    assert b.data_step_1.gamma[:2] == [3539.0, 3539.0] and b.data_step_1.gamma[2] == 1363.0
    assert b.data_step_2.gamma[:2] == [16868.0, 16868.0] and b.data_step_2.gamma[2] == 2721.0
    assert (a.data_step_1.method, a.data_step_1.lam, a.data_step_1.iterations) == ("tv_time", [2.874e-4], 200)
    assert (a.data_step_2.method, a.data_step_2.eps, a.data_step_2.iterations) == ("normal", 1e-6, 19)
    assert (c.data_step_1.method, c.data_step_1.lam, c.data_step_1.iterations) == \
        ("tv3d", [6.1785e-7, 1.5583e-6, 1.5583e-6], 55)  # the published values, not the paper's rounding
    assert c.data_step_1.lr == 0.019848 and c.data_step_2.iterations == 23 and c.data_step_2.eps == 0
    assert c.init.method == "interpolate" and b.init.gamma == 200.0
    assert (j.data_step_1.gamma, j.data_step_2.gamma) == ([0.6026421], [0.5187516])
    assert all(s.clamp == "lvtino" for s in (a, b, c, j))
    assert load_problem("A").noise_std == 0.001 and load_problem("jpeg").noise_std == 0.01


def test_overrides_set_values_by_dotted_path():
    cfg = load_problem("A", overrides=["tv.lam_space=0.05", "operator.1.downsample.filter=bilinear",
                                       "sampler.data_step_2.iterations=7"])
    assert cfg.tv.lam_space == 0.05
    assert cfg.operator[1]["downsample"]["filter"] == "bilinear"
    assert cfg.sampler.data_step_2.iterations == 7


@pytest.mark.parametrize("override,message", [
    ("tv.lamb=1", "config key unknown: tv.lamb"),
    ("solver.x=1", "config key unknown: solver"),
    ("tv.iterations=many", "tv.iterations=many: expected a whole number from 0 to 100000"),
    ("tv.iterations=.inf", "tv.iterations=inf: expected a whole number"),
    ("tv.iterations=2.5", "tv.iterations=2.5: expected a whole number"),
    ("tv.lam_space=abc", "tv.lam_space=abc: expected a finite number >= 0"),
    ("tv.lam_space=nan", "tv.lam_space=nan: expected a finite number >= 0"),
    ("tv.lam_space=-1", "tv.lam_space=-1: expected a finite number >= 0"),
    ("tv.tau=-1", "tv.tau=-1: expected a finite number > 0"),
    ("tv.tau=4", r"tv.tau=4, tv.sigma=0.028: need tau \* sigma < 0.0833333"),
    ("tv.theta=true", "tv.theta=True: expected a finite number from 0 to 1"),
    ("pinv.eps=.nan", "pinv.eps=nan: expected a finite number >= 0"),
    ("noise_std=.inf", "noise_std=inf: expected a finite number from 0 to 1"),
    ("window.frames=0", "window.frames=0: expected a whole number from 1 to 10000"),
    ("sampler.video_timesteps=[757, 1200]", r"sampler.video_timesteps\[1\]=1200: expected a whole number from 0 to 999"),
    ("sampler.data_step_1.gamma=[1, -2]", r"sampler.data_step_1.gamma\[1\]=-2: expected a finite number > 0"),
    ("sampler.data_step_1.tau=10", "sampler.data_step_1.tau=10, sampler.data_step_1.sigma=0.25: need tau"),
    ("operator.0.temporal_pool.factor=abc", "operator.0.temporal_pool.factor=abc: expected a whole number from 1 to 64"),
    ("operator.1.downsample.factor=0", "operator.1.downsample.factor=0: expected a whole number from 1 to 64"),
    ("operator=[]", "operator: expected a list of one or more operators"),
    ("operator.5.downsample.factor=2", "not an index"),
    ("noequals", "expected key=value"),
    ("sampler.data_step_1.method=magic", "method=magic: expected one of none, prox, tv_time"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(UserError, match=message):
        load_problem("A", overrides=[override])


def test_operator_values_are_typed():
    cfg = load_problem("A", overrides=["operator.0.temporal_pool.factor=2.0"])
    assert cfg.operator[0] == {"temporal_pool": {"factor": 2}} and isinstance(cfg.operator[0]["temporal_pool"]["factor"], int)


def test_unknown_problem_lists_the_known_ones():
    with pytest.raises(UserError, match=r"unknown problem 'Z' \(known: A, B, C"):
        load_problem("Z")


def test_config_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("operator:\n  - downsample: {factor: 3, filter: box}\nnoise_std: 0.0\n")
    cfg = load_problem(config=path)
    assert cfg.name == "mine" and cfg.noise_std == 0.0
    path.write_text("operator: [\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_problem(config=path)


def test_per_step():
    assert per_step([2.0], 3, "x") == 2.0
    assert per_step([1.0, 2.0, 3.0], 1, "x") == 2.0
    with pytest.raises(UserError):
        per_step([1.0, 2.0], 2, "gamma")
