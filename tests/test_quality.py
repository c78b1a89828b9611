"""The compression noise read from a video's quantiser, and the fit line a restoration reports."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from conftest import encode_frames, smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.quality import FLOOR, compression_noise, noise_from_qp


def encode(path, frames, **options):
    """H.264 (yuv420p) with x264 ``options`` (e.g. qp=30: one quantiser for P frames)."""
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        vs.options = {k: str(v) for k, v in options.items()}
        encode_frames(c, vs, frames)
    return path


@pytest.mark.parametrize("crf", [23, 35])
def test_the_estimated_noise_is_the_error_the_encoder_left(real_frames, tmp_path, crf):
    """Against the codec itself: street frames shrunk 4x (the calibration's footage) encoded by libx264, the noise
    read from the quantiser within 15 % of the RMS error measured between the decoded and the encoded frames."""
    from PIL import Image

    from lvtino.video.reader import probe, read_frames

    frames = np.stack([np.asarray(Image.fromarray(f).resize((160, 90), Image.BICUBIC))
                       for f in read_frames(probe(real_frames), 0, 24)])
    path = encode(tmp_path / "q.mp4", frames[:, :88], crf=crf)  # 4:2:0: an even height
    decoded = np.stack(list(read_frames(probe(path))))
    measured = np.sqrt(np.mean((decoded.astype(float) - frames[:, :88]) ** 2))
    found = compression_noise(path)
    assert found is not None and 3 < measured < 30
    assert 127.5 * found.noise_std == pytest.approx(measured, rel=0.15), (measured, found)


def test_a_lossless_encode_is_said_as_rounding_alone(tmp_path):
    path = encode(tmp_path / "q.mp4", smooth_frames(6, 64, 96), qp=0)
    assert compression_noise(path).noise_std == pytest.approx(FLOOR / 127.5)


@pytest.mark.parametrize("qp", [0, 24, 36])
def test_quantiser_read_from_the_bitstream(tmp_path, qp):
    frames = smooth_frames(12, 64, 96)
    path = encode(tmp_path / "q.mp4", frames, qp=qp, bf=0)
    found = compression_noise(path)
    assert found is not None and found.frames == 12
    # x264 codes I frames a few steps finer than P frames (ipratio 1.4: about 3 QP)
    assert qp - 4 <= found.qp <= qp + 0.01
    assert found.noise_std == pytest.approx(noise_from_qp(found.qp))


def test_codecs_without_a_quantiser_say_so(tmp_path):
    frames = smooth_frames(4, 32, 32)
    assert compression_noise(write_video(tmp_path / "l.mkv", frames, codec="ffv1")) is None
    folder = tmp_path / "frames"
    folder.mkdir()
    assert compression_noise(folder) is None


def test_restore_reports_its_fit_beside_a_players_and_the_noise(tmp_path, capsys):
    """On an ordinary H.264 file shrunk by the resampler named, the TV restoration explains the input better than
    a player's upscale, and the line says so with the compression noise; the paper's grid on the same file warns."""
    from PIL import Image

    big = smooth_frames(8, 96, 128)
    small = np.stack([np.asarray(Image.fromarray(f).resize((32, 24), Image.BICUBIC)) for f in big])
    low = encode(tmp_path / "low.mp4", small, crf=28)
    stats = tmp_path / "s.json"
    code = main(["restore", str(low), "-o", str(tmp_path / "up.mkv"), "--scale", "4", "--resampler", "pil-bicubic",
                 "--stats", str(stats), "--set", "tv.iterations=20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    fit = json.loads(stats.read_text())["fit"]
    assert fit["rms_grey"]["restored"] < fit["rms_grey"]["naive"]
    assert fit["compression"]["mean_qp"] > 20 and not fit["suspect_operator"]
    assert f"{fit['rms_grey']['restored']:.2f} grey levels RMS" in out and "compression noise" in out
    assert "warning" not in err
    # the paper's grid for 4x (its filter centred on input 4i + 0.5) is a pixel off this file's (4i + 1.5):
    # a player's picture fits worse
    code = main(["restore", str(low), "-o", str(tmp_path / "paper.mkv"), "--problem", "sr4", "--prior", "pinv",
                 "--stats", str(stats), "-y"])
    out, err = capsys.readouterr()
    assert code == 0, err
    paper = json.loads(stats.read_text())["fit"]
    assert paper["rms_grey"]["naive"] > 1.5 * fit["rms_grey"]["naive"]


def test_a_suspect_operator_is_one_warning(capsys):
    from lvtino.cli import _print_fit

    fit = {"rms_grey": {"restored": 0.5, "naive": 9.0, "input": 80.0}, "compression": None, "suspect_operator": True}
    _print_fit(fit)
    out, err = capsys.readouterr()
    assert out == "fit to the input, re-degraded: 0.50 grey levels RMS (a player's upscale: 9.00)\n"
    assert err.count("\n") == 1 and err.startswith("warning: even a player's upscale fits the input poorly")
    _print_fit({**fit, "suspect_operator": False})
    assert capsys.readouterr().err == ""


def test_a_real_run_on_a_video_made_another_way_warns(real_frames, tmp_path, capsys):
    """Street frames decimated by nearest neighbour (every 4th pixel, no filter: not what a scaler does) and
    restored as if ffmpeg's scaler had shrunk them: even the player's picture misfits by more than 10 %, and the
    run says so once; the same frames shrunk by ffmpeg's scaler (PyAV's own) do not warn."""
    import av

    from lvtino.video.reader import probe, read_frames

    clean = np.stack(list(read_frames(probe(real_frames), 0, 4)))[:, :192, :320]
    nearest = write_video(tmp_path / "nearest.mkv", clean[:, ::4, ::4], codec="ffv1")
    scaled = np.stack([av.VideoFrame.from_ndarray(f, format="rgb24").reformat(width=80, height=48,
                                                                             interpolation="BICUBIC").to_ndarray()
                       for f in clean])
    ffmpeg = write_video(tmp_path / "ffmpeg.mkv", scaled, codec="ffv1")
    facts = {}
    for name, path in (("nearest", nearest), ("ffmpeg", ffmpeg)):
        stats = tmp_path / f"{name}.json"
        assert main(["restore", str(path), "-o", str(tmp_path / f"{name}-up.mkv"), "--scale", "4", "--prior",
                     "pinv", "--stats", str(stats)]) == 0
        facts[name] = (json.loads(stats.read_text())["fit"], capsys.readouterr().err)
    fit, err = facts["nearest"]
    assert fit["suspect_operator"] and err.count("warning: even a player's upscale fits the input poorly") == 1
    fit, err = facts["ffmpeg"]
    assert not fit["suspect_operator"] and "warning" not in err


def test_the_reported_residual_is_that_of_the_written_frames(tmp_path, capsys):
    """relative_residual in --stats, recomputed independently: the lossless output decoded, put through the
    operator the input records, against the decoded input (8-bit rounding of the output aside)."""
    from lvtino.physics.problems import build_physics
    from lvtino.video.convert import frames_to_tensor
    from lvtino.video.reader import probe, read_frames

    clean = write_video(tmp_path / "clean.mkv", smooth_frames(12, 48, 64), codec="ffv1")
    y_path, out, stats = tmp_path / "y.mkv", tmp_path / "x.mkv", tmp_path / "s.json"
    assert main(["degrade", str(clean), "-o", str(y_path), "--problem", "A", "--noise-std", "0.02"]) == 0
    assert main(["restore", str(y_path), "-o", str(out), "--stats", str(stats), "--prior", "pinv",
                 "--set", "pinv.eps=0.02"]) == 0  # a damped projection: a misfit left to measure
    reported = json.loads(stats.read_text())["relative_residual"]
    info = probe(y_path)
    physics = build_physics(info.metadata["operator"], (12, 48, 64))
    y = frames_to_tensor(read_frames(info)).double()
    x = frames_to_tensor(read_frames(probe(out))).double()
    recomputed = float((physics.A(x) - y).norm() / y.norm())
    assert reported > 0.005  # a real misfit to compare
    assert recomputed == pytest.approx(reported, rel=0.05)
