"""``--scale``, ``--fps-factor``, ``--size``, ``--fps``: the operator said in plain words."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest

from conftest import smooth_frames, write_video
from bench_real_footage import kept_by_filter
from lvtino.cli import main
from lvtino.config import load_problem
from lvtino.errors import UserError
from lvtino.pipeline.words import Words
from lvtino.video.reader import probe, read_frames


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


SMALL = (12, 10, Fraction(15, 2))  # width, height, fps of a measured video


@pytest.mark.parametrize("words,chain", [
    (Words(scale=4), [{"resize": {"factor": 4, "resampler": "ffmpeg"}}]),
    (Words(fps_factor=4), [{"temporal_sample": {"factor": 4, "exposure": 0.0, "phase": 1, "count": "round"}}]),
    (Words(fps_factor=3, fps_mode="drop"),
     [{"temporal_sample": {"factor": 3, "exposure": 0.0, "phase": 1, "count": "round"}}]),
    (Words(fps_factor=4, fps_mode="select"),
     [{"temporal_sample": {"factor": 4, "exposure": 0.0, "phase": 0, "count": "ceil"}}]),
    (Words(fps_factor=8, fps_mode="select", fps_phase=5),
     [{"temporal_sample": {"factor": 8, "exposure": 0.0, "phase": 5, "count": "ceil"}}]),
    (Words(scale=4, fps_factor=4, resampler="pil-bicubic", fps_mode="average"),
     [{"temporal_sample": {"factor": 4, "exposure": 1.0, "phase": 0, "count": "ceil"}},
      {"resize": {"factor": 4, "resampler": "pil-bicubic"}}]),
    (Words(size="48x40", fps=Fraction(30)),
     [{"temporal_sample": {"factor": 4, "exposure": 0.0, "phase": 1, "count": "round"}},
      {"resize": {"factor": 4, "resampler": "ffmpeg"}}]),
])
def test_words_build_the_chain(words, chain):
    assert words.chain(SMALL) == chain


@pytest.mark.parametrize("words,message,flags", [
    (Words(size="50x40"), "size='50x40': the input's 12x10 does not scale to it by one whole factor",
     "--size 50x40: the input's 12x10 does not scale to it by one whole factor (use --scale)"),
    (Words(fps=Fraction(20)), "fps=20: not a whole multiple of the input's 7.5 fps",
     "--fps 20: not a whole multiple of the input's 7.5 fps (use --fps-factor)"),
    (Words(scale=4, size="48x40"), "scale and size: give one of them", "--scale and --size: give one of them"),
    (Words(scale=1), "nothing to restore", "--scale/--fps-factor of 1: nothing to restore"),
    (Words(scale=0), "scale=0: expected a whole number from 1 to 64", "--scale 0: expected a whole number"),
    (Words(scale=4, resampler="magic"), "resampler='magic': unknown", "--resampler magic: unknown"),
    (Words(fps_factor=4, fps_phase=4), "fps_phase=4: expected a whole number from 0 to 3",
     "--fps-phase 4: expected a whole number from 0 to 3"),
    (Words(scale=2, fps_phase=1), "fps_phase=1: goes with fps_factor or fps",
     "--fps-phase 1: goes with --fps-factor or --fps"),
])
def test_words_mistakes(words, message, flags):
    """A Python caller is told of its keywords; the command line, of the flags its user typed."""
    from lvtino.cli import flag
    from lvtino.errors import naming

    with pytest.raises(UserError, match=re.escape(message)):
        words.chain(SMALL)
    with naming(flag), pytest.raises(UserError, match=re.escape(flags)):
        words.chain(SMALL)


def test_words_give_the_operator_of_the_equivalent_preset(tmp_path, capsys):
    """`--scale 4 --fps-mode average` with the paper's... resampler equals a preset chain; the output records the
    operator, and degrade then restore with the same words round-trip."""
    clean = write_video(tmp_path / "c.mp4", smooth_frames(24, 40, 48), fps=Fraction(30), audio_seconds=0.8)
    low = tmp_path / "low.mkv"
    code, _, err = run(["degrade", clean, "-o", low, "--scale", 4, "--fps-factor", 4], capsys)
    assert code == 0, err
    info = probe(low)
    assert (info.frames, info.width, info.height, info.fps) == (6, 12, 10, Fraction(15, 2))
    recorded = info.metadata["operator"]
    assert recorded == [{"temporal_sample": {"factor": 4, "exposure": 0.0, "phase": 1, "count": "round"}},
                        {"resize": {"factor": 4, "resampler": "ffmpeg"}}]
    # the same video without lvtino's metadata, as a user's file: the words say what the metadata said
    plain = tmp_path / "plain.mkv"
    write_video(plain, np.stack(list(read_frames(info))), fps=Fraction(15, 2), codec="ffv1")
    a, b, stats = tmp_path / "a.mkv", tmp_path / "b.mkv", tmp_path / "s.json"
    assert run(["restore", low, "-o", a, "--prior", "pinv"], capsys)[0] == 0
    code, out, err = run(["restore", plain, "-o", b, "--prior", "pinv", "--scale", 4, "--fps-factor", 4,
                          "--stats", stats], capsys)
    assert code == 0, err
    assert np.array_equal(np.stack(list(read_frames(probe(a)))), np.stack(list(read_frames(probe(b)))))
    made = probe(b)
    assert (made.frames, made.width, made.height, made.fps) == (24, 48, 40, Fraction(30))
    assert made.metadata["restored_by"]["operator"] == recorded
    assert json.loads(stats.read_text())["config"]["operator"] == recorded
    code, _, err = run(["restore", plain, "-o", tmp_path / "c.mkv", "--problem", "A", "--scale", 4], capsys)
    assert code == 2 and "--problem A and --scale/--fps-factor" in err


def test_fps_mode_average_is_problem_as_paper_pooling(tmp_path, capsys):
    """`--fps-factor 4 --fps-mode average --scale 4 --resampler ...` on frames whose count is a multiple of 4 is
    the same temporal matrix as the fps4 preset's averaging."""
    import torch

    from lvtino.physics.problems import build_physics
    words = Words(scale=4, fps_factor=4, fps_mode="average").chain(SMALL)
    mine = build_physics(words, (24, 40, 48))
    pooled = build_physics(load_problem("fps4").operator, (24, 40, 48))
    assert torch.allclose(mine.time.dense(), pooled.time.dense())


def test_a_size_the_factor_does_not_divide_restores_and_reports_its_fit(tmp_path, capsys):
    """74x98 shrunk 4x by ffmpeg's rule is 18x24: four times that is 72x96, two short of the recorded size. The
    player's picture that the fit line measures is brought to the signal's size (its edge repeated)."""
    clean = write_video(tmp_path / "c.mkv", smooth_frames(6, 74, 98), fps=Fraction(30), codec="ffv1")
    low, out, stats = tmp_path / "low.mkv", tmp_path / "up.mkv", tmp_path / "s.json"
    assert run(["degrade", clean, "-o", low, "--scale", 4], capsys)[0] == 0
    assert (probe(low).width, probe(low).height) == (24, 18)
    code, text, err = run(["restore", low, "-o", out, "--prior", "pinv", "--stats", stats], capsys)
    assert code == 0, err
    assert (probe(out).width, probe(out).height) == (98, 74)
    fit = json.loads(stats.read_text())["fit"]["rms_grey"]
    assert fit["restored"] < fit["naive"] and "a player's upscale" in text


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("frames", [40, 41, 42, 43, 44])
@pytest.mark.parametrize("mode,filter_of", [
    ("ffmpeg", lambda k: ("fps", f"fps={Fraction(30, k)}")),
    ("select", lambda k: ("select", f"not(mod(n\\,{k}))")),
    ("select", lambda k: ("framestep", str(k))),
])
def test_each_fps_mode_keeps_the_frames_its_tool_keeps(factor, frames, mode, filter_of):
    """The operator of --fps-mode, applied to frames whose value is their number, measures the numbers of the frames
    PyAV's own filter keeps: which frames, and how many."""
    import torch

    from lvtino.physics.problems import build_physics
    chain = Words(fps_factor=factor, fps_mode=mode).chain(SMALL)
    physics = build_physics(chain, (frames, 4, 4))
    numbers = torch.arange(frames, dtype=torch.float64).view(1, 1, frames, 1, 1).expand(1, 3, frames, 4, 4)
    measured = physics.A(numbers)[0, 0, :, 0, 0].round().long().tolist()
    assert measured == kept_by_filter(frames, Fraction(30), *filter_of(factor))


def test_the_frame_rule_assumed_is_said_once_and_recorded(tmp_path, capsys):
    """Which frames a frame-rate cut kept cannot be read from the file: the run says the rule it assumes, once, in
    the caller's words, and --stats records the frames kept; an averaging cut keeps no frame and says nothing."""
    import json

    from conftest import smooth_frames, write_video
    from lvtino.cli import main

    clip = write_video(tmp_path / "low.mp4", smooth_frames(8, 16, 24))
    for extra, kept, said in [([], [1, 5, 9], "(--fps-mode ffmpeg: ffmpeg's fps filter); a clip cut another way "
                                              "needs --fps-mode select (frames 0, 4, 8, ...)"),
                              (["--fps-mode", "select"], [0, 4, 8], "(--fps-mode select: select, framestep); a clip "
                                                                    "cut another way needs --fps-mode ffmpeg (frames 1, "
                                                                    "5, ...)"),
                              (["--fps-phase", "3"], [3, 7, 11], "(--fps-phase 3)"),
                              (["--fps-mode", "average"], None, None)]:
        stats = tmp_path / "s.json"
        assert main(["restore", str(clip), "-o", str(tmp_path / "up.mkv"), "--fps-factor", "4", "--prior", "pinv",
                     "-y", "--stats", str(stats), *extra]) == 0
        notes = [line for line in capsys.readouterr().err.splitlines() if "taken as restored frames" in line]
        recorded = json.loads(stats.read_text())["frames_kept"]
        if kept is None:
            assert notes == [] and recorded["averaged"]
            continue
        assert len(notes) == 1 and said in notes[0] and f"frames {', '.join(map(str, kept))}, ..." in notes[0]
        assert recorded["kept"] == kept and recorded["factor"] == 4
