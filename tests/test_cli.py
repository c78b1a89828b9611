"""The command line as a user meets it: outputs that match the contract, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import audio_seconds, smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.reader import probe, read_frames
from lvtino.video.writer import VideoWriter


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 26-frame 64x80 clip at 30000/1001 fps with an audio track."""
    path = tmp_path_factory.mktemp("clip") / "clean.mp4"
    return write_video(path, smooth_frames(26, 64, 80), fps=Fraction(30000, 1001), audio_seconds=26 * 1001 / 30000)


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_degrade_records_what_restore_needs(clip, tmp_path, capsys):
    y = tmp_path / "y.mkv"
    code, out, err = run(["degrade", clip, "-o", y, "--problem", "A", "--noise-std", "0"], capsys)
    assert code == 0, err
    info = probe(y)
    assert (info.frames, info.width, info.height) == (7, 20, 16)  # ceil(26/4), 80/4, 64/4
    assert info.fps == Fraction(30000, 1001) / 4
    assert info.metadata["frames"] == 26 and info.metadata["problem"] == "A"
    assert info.metadata["noise_std"] == 0 and info.has_audio


def test_degrade_is_exact_to_8_bits_and_seeded(clip, tmp_path, capsys):
    from lvtino.config import load_problem
    from lvtino.physics.problems import build_physics
    from lvtino.video.convert import frames_to_tensor
    x = frames_to_tensor(read_frames(probe(clip)), torch.float64)
    A = build_physics(load_problem("B").operator, tuple(x.shape[2:]))
    expected = ((A.A(x).clamp(-1, 1) + 1) * 127.5).round()
    run(["degrade", clip, "-o", tmp_path / "b.mkv", "--problem", "B", "--noise-std", "0"], capsys)
    got = np.stack(list(read_frames(probe(tmp_path / "b.mkv")))).astype(int)
    diff = np.abs(got - expected[0].permute(1, 2, 3, 0).numpy().astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99  # float32 vs float64: only ties round apart
    for name, seed in (("s1.mkv", 5), ("s2.mkv", 5), ("s3.mkv", 6)):
        run(["degrade", clip, "-o", tmp_path / name, "--problem", "B", "--seed", seed], capsys)
    s1, s2, s3 = (np.stack(list(read_frames(probe(tmp_path / n)))) for n in ("s1.mkv", "s2.mkv", "s3.mkv"))
    assert np.array_equal(s1, s2) and not np.array_equal(s1, s3)


@pytest.mark.parametrize("prior", ["pinv", "tv"])
def test_restore_gives_the_original_count_size_fps_and_audio(clip, tmp_path, capsys, prior):
    y = tmp_path / "y.mkv"
    run(["degrade", clip, "-o", y, "--problem", "A"], capsys)
    out, stats = tmp_path / "x.mp4", tmp_path / "stats.json"
    code, _, err = run(["restore", y, "-o", out, "--prior", prior, "--stats", stats, "--set", "tv.iterations=5"], capsys)
    assert code == 0, err
    info = probe(out)
    assert (info.frames, info.width, info.height) == (26, 80, 64)
    assert info.fps == Fraction(30000, 1001)
    assert info.has_audio and abs(audio_seconds(out) - 26 * 1001 / 30000) <= 1001 / 30000 + 0.03
    s = json.loads(stats.read_text())
    for key in ("problem", "prior", "frames", "seconds", "peak_memory_mb", "solver_iterations"):
        assert key in s
    assert s["prior"] == prior and s["frames"] == 26 and s["peak_memory_mb"] > 0
    assert s["relative_residual"] < 0.05


def test_restore_frame_range(clip, tmp_path, capsys):
    y = tmp_path / "y.mkv"
    run(["degrade", clip, "-o", y, "--problem", "sr2"], capsys)
    full, part = tmp_path / "full.mkv", tmp_path / "part"
    run(["restore", y, "-o", full, "--prior", "pinv"], capsys)
    code, _, err = run(["restore", y, "-o", part, "--prior", "pinv", "--start", 10, "--end", 22], capsys)
    assert code == 0, err
    frames = list(read_frames(probe(part)))
    assert len(frames) == 12
    assert np.array_equal(np.stack(frames), np.stack(list(read_frames(probe(full), 10, 22))))


def test_restore_without_metadata_uses_the_factors(tmp_path, capsys):
    lowres = write_video(tmp_path / "low.mkv", smooth_frames(5, 15, 21), codec="ffv1")
    out = tmp_path / "up.mkv"
    code, _, err = run(["restore", lowres, "-o", out, "--problem", "A", "--prior", "pinv"], capsys)
    assert code == 0, err
    info = probe(out)
    assert (info.frames, info.width, info.height) == (20, 84, 60)
    code, _, err = run(["restore", lowres, "-o", out, "--problem", "A", "--prior", "pinv", "--frames", 18], capsys)
    assert code == 2 and "exists; add -y to replace it" in err  # ffmpeg's habit: an existing output is refused
    code, _, err = run(["restore", lowres, "-o", out, "--problem", "A", "--prior", "pinv", "--frames", 18, "-y"],
                       capsys)
    assert code == 0 and probe(out).frames == 18


def test_evaluate(clip, tmp_path, capsys):
    report = tmp_path / "m.json"
    code, out, _ = run(["evaluate", clip, "--reference", clip, "--json", report], capsys)
    assert code == 0 and "PSNR" in out
    data = json.loads(report.read_text())
    assert data["frames"] == 26 and data["ssim"] == pytest.approx(1.0) and data["psnr"] is None  # identical: inf


def _bad(tmp_path, clip):
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    tiny = write_video(tmp_path / "tiny.mkv", smooth_frames(4, 12, 12), codec="ffv1")
    y = tmp_path / "y.mkv"
    main(["degrade", str(clip), "-o", str(y), "--problem", "A"])
    return [
        (["restore", tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4", "--problem", "A"], "no such file"),
        (["restore", text, "-o", tmp_path / "o.mp4", "--problem", "A"], "not a video"),
        (["degrade", clip, "-o", tmp_path / "o.mkv", "--problem", "Z"], "unknown problem 'Z' (known: A, B, C"),
        (["degrade", clip, "-o", tmp_path / "o.mkv"], "--problem is required"),
        (["degrade", tiny, "-o", tmp_path / "o.mkv", "--problem", "sr8"], "too small for problem sr8"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--start", 30, "--end", 40],
         "--start 30 --end 40: the range must satisfy 0 <= start < end <= 26"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--start", 5, "--end", 5], "0 <= start < end <= 26"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--set", "tv.lamda=1"], "config key unknown: tv.lamda"),
        (["restore", y, "-o", y], "overwrite the input"),
        (["restore", y, "-o", tmp_path / "o.avi"], "unsupported output type"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--frames", 0], "--frames 0"),
        (["restore", tiny, "-o", tmp_path / "o.mp4", "--problem", "B", "--frames", 9], "check --problem and --frames"),
        (["evaluate", clip, "--reference", tiny], "size differs"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--crf", 99], "--crf 99: expected a whole number from 0 to 51"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--preset", "quick"], "--preset quick: expected one of ultrafast"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--fps", "0"], "the frame rate must be positive"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--device", "tpu"], "--device tpu: not a torch device"),
        (["restore", y, "-o", tmp_path / "o.mp4", "--prior", "magic"], "invalid choice: 'magic'"),
        (["restore", y], "the following arguments are required: -o/--output"),
    ] + ([] if torch.cuda.is_available() else
         [(["restore", y, "-o", tmp_path / "o.mp4", "--device", "cuda"], "CUDA is not available")])


def test_bad_input_is_one_line_and_leaves_no_output(clip, tmp_path, capsys):
    for args, message in _bad(tmp_path, clip):
        before = sorted(p.name for p in tmp_path.iterdir())
        code, out, err = run(args, capsys)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lvtino: error:"), (args, err)
        assert message in lines[0], (message, lines[0])
        assert sorted(p.name for p in tmp_path.iterdir()) == before, args  # nothing written, nothing removed


def test_input_is_never_modified(clip, tmp_path, capsys):
    before = clip.read_bytes()
    run(["degrade", clip, "-o", tmp_path / "y.mkv", "--problem", "sr2"], capsys)
    run(["restore", tmp_path / "y.mkv", "-o", tmp_path / "x.mkv", "--prior", "pinv"], capsys)
    assert clip.read_bytes() == before


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", str(tmp_path / "none.mp4"), "-o",
                           str(tmp_path / "o.mp4"), "--problem", "A"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lvtino: error: {tmp_path / 'none.mp4'}: no such file or folder"
    help_text = subprocess.run([sys.executable, "-m", "lvtino", "restore", "--help"], capture_output=True,
                               text=True).stdout
    assert "--prior" in help_text and "--start" in help_text and "deblur-t7" in help_text


def test_writer_round_trip_through_cli_folder_output(clip, tmp_path, capsys):
    y = tmp_path / "yframes"
    code, _, err = run(["degrade", clip, "-o", y, "--problem", "fps2", "--noise-std", "0"], capsys)
    assert code == 0, err
    info = probe(y)
    assert info.kind == "frames" and info.frames == 13 and info.fps == Fraction(30000, 1001) / 2
    code, _, err = run(["restore", y, "-o", tmp_path / "x.mkv", "--prior", "pinv"], capsys)
    assert code == 0 and probe(tmp_path / "x.mkv").frames == 26
    from lvtino.errors import UserError
    with pytest.raises(UserError, match="no frames to write"):
        with VideoWriter(tmp_path / "empty.mkv", Fraction(1)):
            pass
    assert not (tmp_path / "empty.mkv").exists()


def test_a_refused_write_is_one_line_and_leaves_nothing(clip, tmp_path, capsys, monkeypatch):
    import os

    from lvtino import files

    def full_disk(src, dst):
        raise OSError(28, "No space left on device", str(dst))
    monkeypatch.setattr(os, "replace", full_disk)
    monkeypatch.setattr(files, "rename_noreplace", full_disk)  # the final rename of a new output
    code, _, err = run(["degrade", clip, "-o", tmp_path / "y.mkv", "--problem", "sr2"], capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lvtino: error: no space left on the device writing "
                                                   f"{tmp_path / 'y.mkv'} (")
    assert "MB free there" in lines[0] and "this run needs about" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_rotation_survives_degrade_and_restore(tmp_path, capsys):
    src = tmp_path / "phone.mp4"
    with VideoWriter(src, Fraction(30), rotation=90) as w:
        for f in smooth_frames(8, 32, 48):
            w.write(f)
    run(["degrade", src, "-o", tmp_path / "y.mkv", "--problem", "sr2"], capsys)
    run(["restore", tmp_path / "y.mkv", "-o", tmp_path / "x.mp4", "--prior", "pinv"], capsys)
    info = probe(tmp_path / "x.mp4")
    assert info.rotation == 90 and (info.width, info.height) == (48, 32)  # stored size, display tag kept


def test_help_exits_zero(capsys):
    assert main(["restore", "--help"]) == 0
    assert "--start" in capsys.readouterr().out


@pytest.mark.parametrize("problem,max_residual", [("A", 0.01), ("B", 0.01)])  # data output: at the noise
def test_restore_with_the_lvtino_prior_and_tiny_models(clip, tmp_path, capsys, problem, max_residual):
    y = tmp_path / "y.mkv"
    run(["degrade", clip, "-o", y, "--problem", problem], capsys)
    out, stats = tmp_path / "x.mp4", tmp_path / "stats.json"
    code, stdout, err = run(["restore", y, "-o", out, "--prior", "lvtino", "--models", "tiny", "--stats", stats],
                            capsys)
    assert code == 0, err
    assert "NFE 9" in stdout and "meaningless for quality" in stdout and "meaningless for quality" in err
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps) == (26, 80, 64, Fraction(30000, 1001))
    assert info.has_audio
    assert info.metadata["restored_by"]["models"] == "tiny"
    assert "meaningless" in info.metadata["restored_by"]["models_note"]
    s = json.loads(stats.read_text())
    assert s["nfe"] == {"video": 5, "image": 4, "total": 9}
    assert s["models"] == "tiny" and "meaningless" in s["models_note"]
    for stage in ("video_model", "video_vae_encode", "video_vae_decode", "image_model", "image_vae_encode",
                  "image_vae_decode", "data_steps", "load"):
        assert s["seconds_per_stage"][stage] >= 0
    assert s["relative_residual"] < max_residual, s["relative_residual"]


def test_restore_is_seeded(clip, tmp_path, capsys):
    y = tmp_path / "y.mkv"
    run(["degrade", clip, "-o", y, "--problem", "B"], capsys)
    outs = []
    for name, seed in (("a.mkv", 1), ("b.mkv", 1), ("c.mkv", 2)):
        code, _, err = run(["restore", y, "-o", tmp_path / name, "--prior", "lvtino-video", "--models", "tiny",
                            "--seed", seed], capsys)
        assert code == 0, err
        outs.append(np.stack(list(read_frames(probe(tmp_path / name)))))
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])


def test_lvtino_prior_without_weights_is_one_line(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    y = tmp_path / "y.mkv"
    run(["degrade", clip, "-o", y, "--problem", "B"], capsys)
    code, _, err = run(["restore", y, "-o", tmp_path / "x.mp4", "--prior", "lvtino"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in err and "lvtino download" in err and "--prior tv" in err
    assert not (tmp_path / "x.mp4").exists()


def test_download_prints_licences_and_fails_offline_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, out, err = run(["download", "--only", "video"], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1  # the network's failure, not the user's mistake
    assert "download of Wan-AI/Wan2.1-T2V-1.3B-Diffusers failed" in err
    assert "name them in a --models file (see configs/models.yaml)" in err
    assert "licence: Apache-2.0" in out
    local = tmp_path / "models.yaml"
    local.write_text(f"video: {{base: {{repo: {tmp_path}}}, weights: {{format: causvid, repo: {tmp_path}, "
                     f"filename: m.pt, license: CC BY-NC-SA 4.0}}}}\n")
    code, out, err = run(["download", "--models", local, "--only", "video"], capsys)
    assert code == 0, err
    assert out.count("a local folder: nothing to fetch") == 2 and "CC BY-NC-SA 4.0" in out


def test_a_frame_folder_output_of_a_turned_clip_shows_it_as_players_do(tmp_path, capsys):
    """A phone's portrait clip (stored 48x32, tagged 90 degrees): a folder of images has no tag, so the restored
    frames are written turned (32x48), each as a player shows that frame."""
    import imageio.v3 as iio

    src = tmp_path / "phone.mp4"
    frames = smooth_frames(8, 32, 48) // 4  # dark
    frames[:, :6, :6] = 255  # and a white mark in the stored top-left corner
    with VideoWriter(src, Fraction(30), rotation=90, pix_fmt="yuv444p") as w:
        for f in frames:
            w.write(f)
    out = tmp_path / "frames"
    code, _, err = run(["restore", src, "-o", out, "--scale", "2", "--prior", "pinv"], capsys)
    assert code == 0, err
    assert "a folder of images has no tag, so its frames are written turned" in err
    pngs = sorted(out.glob("*.png"))
    first = iio.imread(pngs[0])
    assert len(pngs) == 8 and first.shape == (96, 64, 3)
    assert first[-12:, :12].mean() > 200 and first[:12, :12].mean() < 100  # the mark turned to the bottom-left


def test_ctrl_c_while_the_program_starts_is_one_line(monkeypatch, capsys):
    """An interruption while torch and the video libraries load (seconds): one line and 130, no traceback."""
    import builtins
    import sys

    from lvtino.__main__ import entry

    real_import = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "lvtino.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "lvtino.cli")
    monkeypatch.setattr(builtins, "__import__", importing)
    assert entry() == 130
    assert capsys.readouterr().err == "lvtino: interrupted (SIGINT) while starting; nothing was done\n"


def test_ctrl_c_during_the_imports_of_a_real_start(tmp_path):
    """The program itself, interrupted a moment after it starts: one line, whenever the signal lands."""
    import signal
    import subprocess
    import sys
    import time

    # torch being imported by the restore's modules, then later; before ~0.1 s the interpreter itself is starting
    # (runpy has not reached lvtino's code), where Python's own KeyboardInterrupt traceback cannot be caught
    for delay in (0.3, 0.8, 1.5):
        proc = subprocess.Popen([sys.executable, "-m", "lvtino", "restore", "missing.mkv", "-o",
                                 str(tmp_path / "o.mkv")], stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        lines = err.strip().splitlines()
        # interrupted in one line (130); or, had it already said the missing input's one line, its exit (2) or, in
        # the interpreter's last moments, the signal's (-2)
        assert "Traceback" not in err and len(lines) == 1 and proc.returncode in (130, 2, -2), (delay, err)


def test_a_notice_of_the_encoder_is_said_once_in_the_callers_words(tmp_path, capsys, caplog):
    """An odd-size .mp4: one notice naming the output and --pix-fmt (it came once per segment, from the encoder
    thread, naming a hidden segment file and pix_fmt='yuv444p'); under the API, the keyword."""
    import logging

    import lvtino

    src = write_video(tmp_path / "odd.mp4", smooth_frames(40, 27, 45))
    out = tmp_path / "up.mp4"
    code, _, err = run(["restore", src, "-o", out, "--fps-factor", "2", "--prior", "pinv", "--window", "16"], capsys)
    assert code == 0, err
    notes = [line for line in err.splitlines() if "odd frame size" in line]
    assert notes == [f"lvtino: notice: {out}: odd frame size 45x27 padded to 46x28 for yuv420p (what players "
                     "decode); --pix-fmt yuv444p keeps the exact size"]
    logger = logging.getLogger("lvtino")
    logger.addHandler(caplog.handler)  # the command line left the logger not propagating
    try:
        with caplog.at_level(logging.INFO, logger="lvtino"):
            lvtino.restore(src, tmp_path / "api.mp4", fps_factor=2, prior="pinv", window=16)
    finally:
        logger.removeHandler(caplog.handler)
    said = [r.getMessage() for r in caplog.records if "api.mp4: odd frame size" in r.getMessage()]
    assert len(said) == 1 and "pix_fmt='yuv444p' keeps the exact size" in said[0]


def test_an_encoding_setting_a_lossless_output_does_not_take_is_said(tmp_path, capsys):
    src = write_video(tmp_path / "a.mp4", smooth_frames(8, 24, 32))
    code, _, err = run(["restore", src, "-o", tmp_path / "up.mkv", "--scale", "2", "--prior", "pinv", "--crf", "30",
                        "--preset", "slow"], capsys)
    assert code == 0 and [line for line in err.splitlines() if "--crf" in line] == [
        f"lvtino: notice: --crf 30 --preset slow: {tmp_path / 'up.mkv'} is lossless FFV1, which takes no CRF or "
        "preset; they are ignored"]
    code, _, err = run(["restore", src, "-o", tmp_path / "up.mp4", "--scale", "2", "--prior", "pinv", "--crf", "30"],
                       capsys)
    assert code == 0 and "ignored" not in err


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["restore", "--help"], ["batch", "--help"],
                                  ["restore", "in.mp4", "-o", "out.mp4", "--crf", "x"], ["restre"], ["restore"]])
def test_help_version_and_usage_mistakes_start_without_torch(argv):
    """What needs no restoration (help, the version, a mistake in the arguments) is answered before torch, numpy or
    PyAV load (their import is most of a start: seconds on a loaded machine)."""
    code = ("import sys\nfrom lvtino.__main__ import entry\ntry:\n    code = entry()\nexcept SystemExit as done:\n"
            "    code = done.code\nprint(code, *sorted({'torch', 'numpy', 'av'} & set(sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1].split()
    assert last[1:] == [], f"{argv}: loaded {last[1:]}"
    assert int(last[0] if last[0] != "None" else 0) in (0, 2)
