"""The Python API: the commands on files, and the Restorer on arrays and tensors, equal to the CLI."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest
import torch

import lvtino
from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.errors import UserError
from lvtino.video.reader import probe, read_frames


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A 2x-shrunk H.264 clip (a user's file, no lvtino metadata) and its frames."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("api")
    big = smooth_frames(9, 48, 64)
    small = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BICUBIC)) for f in big])
    path = write_video(tmp / "low.mkv", small, fps=Fraction(30), codec="ffv1")
    return path, np.stack(list(read_frames(probe(path))))


def test_functions_are_the_commands(measured, tmp_path, capsys):
    path, _ = measured
    stats = lvtino.restore(path, tmp_path / "api.mkv", scale=2, prior="pinv", resampler="pil-bicubic")
    assert main(["restore", str(path), "-o", str(tmp_path / "cli.mkv"), "--scale", "2", "--prior", "pinv",
                 "--resampler", "pil-bicubic"]) == 0
    api, cli = (np.stack(list(read_frames(probe(tmp_path / f"{n}.mkv")))) for n in ("api", "cli"))
    assert np.array_equal(api, cli) and stats["frames"] == 9 and (stats["width"], stats["height"]) == (64, 48)
    with pytest.raises(UserError, match="exists"):  # no overwrite flag: refused, as the command
        lvtino.restore(path, tmp_path / "api.mkv", scale=2, prior="pinv")
    with pytest.raises(UserError, match="-n never replaces"):
        lvtino.restore(path, tmp_path / "api.mkv", scale=2, prior="pinv", overwrite=False)
    scores = lvtino.evaluate(tmp_path / "api.mkv", tmp_path / "cli.mkv", lpips=False, temporal=False)
    assert scores["psnr"] > 90  # identical videos


def test_restorer_on_arrays_and_tensors_equals_the_cli(measured, tmp_path, capsys):
    path, frames = measured
    restorer = lvtino.Restorer.from_preset(prior="pinv", scale=2, resampler="pil-bicubic")
    out = restorer(frames)
    assert out.dtype == np.uint8 and out.shape == (9, 48, 64, 3)
    assert main(["restore", str(path), "-o", str(tmp_path / "cli.mkv"), "--scale", "2", "--prior", "pinv",
                 "--resampler", "pil-bicubic", "--crf", "0"]) == 0
    cli = np.stack(list(read_frames(probe(tmp_path / "cli.mkv"))))
    assert np.abs(out.astype(int) - cli.astype(int)).max() <= 2  # the CLI's H.264 at crf 0 (yuv) against PNG
    tensor = torch.from_numpy(frames).permute(3, 0, 1, 2).unsqueeze(0).float() / 255
    back = restorer(tensor)
    assert back.shape == (1, 3, 9, 48, 64) and back.dtype == torch.float32
    assert torch.equal((back * 255).round().to(torch.uint8)[0].permute(1, 2, 3, 0), torch.from_numpy(out))
    with pytest.raises(UserError, match=r"\(T, H, W, 3\) uint8"):
        restorer(frames.astype(np.float32))
    with pytest.raises(UserError, match="prior='magic': unknown prior"):
        lvtino.Restorer.from_preset("A", prior="magic")
    with pytest.raises(UserError, match="crf is for video files"):
        lvtino.Restorer.from_preset(prior="pinv", scale=2, crf=20)


def test_the_restorer_reads_and_keeps_frames_in_memory_without_rounding(measured, tmp_path, monkeypatch):
    """A float tensor goes through unrounded (a third of a grey level moves the result, which 8 bits would have
    rounded away), nothing is written to a file, and the windows and seams are the command's (several windows)."""
    import tempfile

    import lvtino.video.writer as writer

    _, frames = measured
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.setattr(writer.VideoWriter, "__init__", lambda *a, **k: pytest.fail("a file was written"))
    restorer = lvtino.Restorer.from_preset(prior="pinv", scale=2, resampler="pil-bicubic", window=4, overlap=2)
    tensor = torch.from_numpy(frames).permute(3, 0, 1, 2).unsqueeze(0).double() / 255
    base = restorer(tensor)
    nudged = restorer(tensor + 0.3 / 255)
    shift = (nudged - base).mean().item() * 255
    assert 0.25 < shift < 0.35  # pinv is linear: a float input's third of a grey level comes back
    whole = lvtino.Restorer.from_preset(prior="pinv", scale=2, resampler="pil-bicubic")(tensor)
    assert (base - whole).abs().max().item() < 2e-3  # in windows with seams: the one-window answer
    assert list(tmp_path.iterdir()) == []


def test_a_restorer_plans_once_per_shape_and_rate(measured, monkeypatch):
    """The preset is read and checked, the operator built and the windows laid out once for frames of one shape
    and rate; a call on another shape or rate plans again, and a kept plan restores as a fresh one does."""
    from lvtino.pipeline.job import Job

    _, frames = measured
    planned = []
    plan = Job.plan.__func__
    monkeypatch.setattr(Job, "plan", classmethod(lambda cls, request, info: planned.append(
        (info.frames, info.fps)) or plan(cls, request, info)))
    restorer = lvtino.Restorer.from_preset(prior="pinv", scale=2, resampler="pil-bicubic", window=4, overlap=2)
    first, again = restorer(frames), restorer(frames[::-1].copy())
    shorter, slower = restorer(frames[:5]), restorer(frames, fps=25)
    assert planned == [(9, 30), (5, 30), (9, 25)]
    fresh = lvtino.Restorer.from_preset(prior="pinv", scale=2, resampler="pil-bicubic", window=4, overlap=2)
    assert np.array_equal(again, fresh(frames[::-1].copy())) and np.array_equal(first, slower)
    assert shorter.shape == (5, 48, 64, 3)


def test_version_quiet_and_device_auto(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lvtino {lvtino.__version__}" != "lvtino 0+unknown"
    from lvtino.pipeline.common import check_device
    assert check_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_verbose_and_quiet_before_or_after_the_command():
    from lvtino.cli import build_parser

    assert build_parser().parse_args(["restore", "x.mkv", "-o", "y.mkv", "-q"]).quiet
    assert build_parser().parse_args(["-v", "restore", "x.mkv", "-o", "y.mkv"]).verbose
    with pytest.raises(SystemExit):
        build_parser().parse_args(["restore", "x.mkv", "-o", "y.mkv", "-q", "-v"])


def test_the_readmes_python_example_runs_as_written(tmp_path, monkeypatch):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["up"].shape == (16, 96, 160, 3) and scope["facts"]["frames"] == 16
    assert (tmp_path / "up.mp4").exists()


def test_networks_load_once_per_restorer_and_per_batch(measured, tmp_path, monkeypatch, capsys):
    import lvtino.pipeline.priors as priors

    loads = []
    real = priors.load_models

    def counted(*args, **kwargs):
        loads.append(args[1])
        return real(*args, **kwargs)
    monkeypatch.setattr(priors, "load_models", counted)
    path, frames = measured
    restorer = lvtino.Restorer.from_preset(prior="lvtino", models="tiny", scale=2)
    first, second = restorer(frames[:5]), restorer(frames[:5])
    assert len(loads) == 1 and np.array_equal(first, second)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        write_video(folder / f"{name}.mkv", frames[:5], codec="ffv1")
    loads.clear()
    assert main(["batch", str(folder), "-o", str(tmp_path / "out"), "--scale", "2", "--prior", "lvtino",
                 "--models", "tiny"]) == 0
    assert len(loads) == 1  # two items, one load


@pytest.mark.parametrize("call,said", [
    (lambda p, o: lvtino.restore(p, o, scale=2, overwrite="no"), "overwrite='no': expected True"),
    (lambda p, o: lvtino.restore(p, o, scale=2, codec="h264", crf=99), "crf=99: expected a whole number from 0 to 51"),
    (lambda p, o: lvtino.restore(p, o, scale=2, codec="hevc", preset="quick"), "preset=quick: expected one of"),
    (lambda p, o: lvtino.restore(p, o, scale=2, seed=-1), "seed=-1"),
    (lambda p, o: lvtino.restore(p, o, scale=2, fps_factor=2, fps=60), "fps_factor and fps: give one of them"),
    (lambda p, o: lvtino.restore(p, o, scale=2, window=0), "window=0: expected a whole number"),
    (lambda p, o: lvtino.restore(p, o, scale=2, colour=True), "lvtino.restore: unknown keyword 'colour'"),
    (lambda p, o: lvtino.degrade(p, o, scale=2, seed=1.5), "seed=1.5"),
    (lambda p, o: lvtino.degrade(p, o, scale=2, noise=0.1), "lvtino.degrade: unknown keyword 'noise'"),
    (lambda p, o: lvtino.evaluate(p, p, psnr=True), "lvtino.evaluate: unknown keyword 'psnr'"),
])
def test_every_keyword_is_checked_with_the_callers_words(measured, tmp_path, call, said):
    """A Python caller is told of the keywords it used (offload='model'), never of a flag it did not type."""
    path, _ = measured
    with pytest.raises(UserError, match=re.escape(said)):
        call(path, tmp_path / "out.mkv")
    assert list(tmp_path.iterdir()) == []


def test_the_restorer_refuses_what_it_cannot_restore_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    restorer = lvtino.Restorer.from_preset(prior="pinv", scale=2)
    bad = torch.full((1, 3, 4, 16, 16), 0.5)
    bad[0, 1, 2, 3, 4] = float("nan")
    with pytest.raises(UserError, match="holds 1 NaN or infinite value"):
        restorer(bad)
    bad[0, 1, 2, 3, 4] = float("inf")
    with pytest.raises(UserError, match="holds 1 NaN or infinite value"):
        restorer(bad)
    huge = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (100_000, 4000, 4000, 3))  # 4.8 TB, no memory
    with pytest.raises(UserError, match=r"100000 frames of 8000x8000, needs 17881\.\d GB of memory and .* GB are av"):
        restorer(huge)
    with pytest.raises(UserError, match="expected 1 to 10,000,000 frames of at most 16384x16384"):
        restorer(np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (4, 20_000, 8, 3)))
    with pytest.raises(UserError, match="fps=0: expected a frame rate"):
        restorer(np.zeros((4, 16, 16, 3), np.uint8), fps=0)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_quiet_prints_nothing_on_success_and_the_error_on_failure(measured, tmp_path, capsys):
    path, _ = measured
    out, stats = tmp_path / "x.mkv", tmp_path / "s.json"
    for where in (["-q", "restore"], ["restore", "-q"]):
        assert main([*where, str(path), "-o", str(out), "--scale", "2", "--prior", "pinv", "-y",
                     "--stats", str(stats)]) == 0
        said = capsys.readouterr()
        assert said.out == "" and said.err == ""
    assert json.loads(stats.read_text())["frames"] == 9  # the results went to --stats
    assert main(["-q", "evaluate", str(out), "--reference", str(out), "--json", str(tmp_path / "m.json")]) == 0
    assert capsys.readouterr().out == ""
    assert main(["-q", "restore", str(path), "-o", str(out), "--scale", "2"]) == 2
    said = capsys.readouterr()
    assert said.out == "" and said.err.startswith("lvtino: error: -o") and said.err.count("\n") == 1


def test_one_sentence_names_a_flag_on_the_command_line_and_a_keyword_from_python(measured, tmp_path, capsys):
    path, _ = measured
    with pytest.raises(UserError, match=r"^offload='model': offloading"):
        lvtino.restore(path, tmp_path / "x.mkv", scale=2, prior="lvtino", models="tiny", offload="model")
    assert main(["restore", str(path), "-o", str(tmp_path / "x.mkv"), "--scale", "2", "--prior", "lvtino",
                 "--models", "tiny", "--offload", "model"]) == 2
    assert "lvtino: error: --offload model: offloading" in capsys.readouterr().err
    from lvtino.cli import flag
    assert (flag("fps_factor"), flag("output"), flag("overrides"), flag("vae_tiling")) == \
        ("--fps-factor", "-o", "--set", "--vae-tiling")


def test_every_request_setting_reaches_the_digest_or_says_why_not(tmp_path):
    """``Request``'s fields are held to the digest: each one not in NOT_IN_DIGEST changes the digest an output
    records (what --resume and batch compare), so a new setting that changes the output's bytes cannot be left
    out of it unnoticed."""
    from dataclasses import fields, replace

    from lvtino.pipeline.priors import ModelOptions
    from lvtino.pipeline.request import NOT_IN_DIGEST, Request
    from lvtino.pipeline.words import Words

    from PIL import Image

    big = smooth_frames(8, 32, 48)
    low = np.stack([np.asarray(Image.fromarray(f).resize((24, 16), Image.BICUBIC)) for f in big])
    clip = write_video(tmp_path / "low.mp4", low, audio_seconds=8 / 30)
    guide = write_video(tmp_path / "guide.mp4", big)
    upscaler = tmp_path / "model.safetensors"
    upscaler.write_bytes(b"the file's bytes are hashed; nothing is loaded to make a digest")
    base = Request(clip, tmp_path / "out.mp4", words=Words(scale=2))
    changed = {"prior": "pinv", "seed": 1, "codec": "hevc", "models": ModelOptions(dtype="float64"), "crf": 20,
               "preset": "fast", "pix_fmt": "yuv444p", "no_audio": True, "guide": guide, "upscaler": upscaler,
               "frames": 8, "input": None}
    names = {f.name for f in fields(Request)}
    assert names == set(changed) | set(NOT_IN_DIGEST)  # every field is classified
    digest = base.check_inputs().digest()
    for name, value in changed.items():
        if name == "input":
            continue
        other = replace(base, **{name: value}, **({"prior": None} if name in ("guide", "upscaler") else {}))
        if name == "frames":  # the same length said: the same output (frames only says what the file holds)
            assert other.check_inputs().digest() == digest
            continue
        assert other.check_inputs().digest() != digest, name
    shifted = write_video(tmp_path / "other.mp4", low[::-1].copy(), audio_seconds=8 / 30)
    assert replace(base, input=shifted).check_inputs().digest() != digest


@pytest.mark.parametrize("video,said", [
    (torch.rand(1, 3, 4, 16, 16) * 255, r"values span \[[\d.e-]+, 2[\d.]+\]; expected floats in \[0, 1\] \(0-255"),
    (torch.rand(1, 3, 4, 16, 16) * 2 - 1, r"values span \[-[\d.]+, [\d.]+\]; expected floats in \[0, 1\] "
                                          r"\(\[-1, 1\] values, as diffusion code holds them: \(x \+ 1\) / 2\)"),
    (torch.zeros(1, 3, 4, 16, 16, device="meta"), "on the meta device: it holds no values"),
])
def test_a_tensor_outside_zero_one_is_refused_with_its_range(video, said):
    restorer = lvtino.Restorer.from_preset(scale=2, prior="pinv")
    with pytest.raises(UserError, match=said):
        restorer(video)


def test_a_tensor_a_hair_outside_zero_one_is_taken():
    """Rounding in the caller's own arithmetic (1.0000001) is clamped, not refused."""
    restorer = lvtino.Restorer.from_preset(scale=2, prior="pinv")
    video = (torch.rand(1, 3, 4, 16, 16) * 1.0000001).clamp_min(0)
    video[..., 0, 0, 0] = 1 + 1e-6
    assert restorer(video).shape == (1, 3, 4, 32, 32)


@pytest.mark.parametrize("input,output,said", [
    (123, "o.mkv", "input=123: expected a path"),
    ("{y}", None, "output=None: expected a path"),
    ("{y}", 4.5, "output=4.5: expected a path"),
])
def test_a_path_that_is_not_a_path_is_one_line(measured, tmp_path, input, output, said):
    y = measured[0]
    input = str(y) if input == "{y}" else input
    with pytest.raises(UserError, match=re.escape(said)):
        lvtino.restore(input, output, prior="pinv", scale=2)


def test_bytes_paths_are_read_as_the_file_system_reads_them(measured, tmp_path):
    y = measured[0]
    out = tmp_path / "out.mkv"
    facts = lvtino.restore(str(y).encode(), str(out).encode(), prior="pinv", scale=2)
    assert probe(out).frames == facts["frames"]


def test_a_restorer_is_made_from_keywords_as_from_a_preset():
    """``lvtino.Restorer(scale=2, prior="pinv")`` is ``Restorer.from_preset(scale=2, prior="pinv")`` (a bare
    TypeError before); a Request with keywords, or another type, is refused in one line."""
    frames = smooth_frames(4, 16, 24)
    direct = lvtino.Restorer(scale=2, prior="pinv")
    assert direct.request == lvtino.Restorer.from_preset(scale=2, prior="pinv").request
    assert np.array_equal(direct(frames), lvtino.Restorer.from_preset(scale=2, prior="pinv")(frames))
    with pytest.raises(UserError, match="a Request and keywords"):
        lvtino.Restorer(direct.request, seed=1)
    with pytest.raises(UserError, match="expected a preset's name, a Request or keywords, got int"):
        lvtino.Restorer(4)


def test_a_generative_digest_records_the_dtypes_the_device_gives(tmp_path):
    """dtype auto is float32 on a CPU and bfloat16/float16 on CUDA: the digest records what the device settles (a
    CPU run and a GPU run, other pixels, recorded one digest), so auto and float32 agree here and bfloat16 does
    not; a classical prior's digest does not depend on the device at all."""
    from dataclasses import replace

    from lvtino.pipeline.priors import ModelOptions
    from lvtino.pipeline.request import Request
    from lvtino.pipeline.words import Words

    clip = write_video(tmp_path / "low.mp4", smooth_frames(8, 16, 24))
    base = Request(clip, tmp_path / "out.mkv", prior="lvtino", models=ModelOptions(models="tiny"), device="cpu",
                   words=Words(scale=2))
    digest = {d: replace(base, models=ModelOptions(models="tiny", dtype=d)).check_inputs().digest()
              for d in ("auto", "float32", "bfloat16")}
    assert digest["auto"] == digest["float32"] != digest["bfloat16"]
    job = base.check_inputs().plan(check_outputs=False)[0]
    assert base.check_inputs().settings(job)["models"]["dtype"] == ["float32", "float32"]
