"""Long videos from the command line: windows, exact frames and audio, ranges, resume, several processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import audio_seconds, killed_after_segments, smooth_frames, write_video
from lvtino.cli import main
from lvtino.files import tree_size
from lvtino.video.reader import probe, read_frames

FPS = Fraction(30000, 1001)
FAST = ["--set", "tv.iterations=10"]


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def frames_of(path) -> np.ndarray:
    return np.stack(list(read_frames(probe(path))))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """150 frames of 48x64 at 30000/1001 fps with 5 s of audio, and its Problem A measurement."""
    folder = tmp_path_factory.mktemp("long")
    clean = write_video(folder / "clean.mp4", smooth_frames(150, 48, 64), fps=FPS, audio_seconds=150 / FPS)
    y = folder / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "A"]) == 0
    return clean, y


@pytest.mark.parametrize("frames,windows", [(20, 1), (40, 2), (150, 9)])
def test_frame_count_fps_and_audio_for_one_two_and_many_windows(tmp_path, capsys, frames, windows):
    clean = write_video(tmp_path / "c.mp4", smooth_frames(frames, 48, 64), fps=FPS, audio_seconds=frames / FPS)
    y, out, stats = tmp_path / "y.mkv", tmp_path / "x.mp4", tmp_path / "s.json"
    run(["degrade", clean, "-o", y, "--problem", "A"], capsys)
    code, _, err = run(["restore", y, "-o", out, "--stats", stats, *FAST], capsys)
    assert code == 0, err
    info = probe(out)
    assert (info.frames, info.width, info.height, info.fps) == (frames, 64, 48, FPS)
    assert abs(audio_seconds(out) - frames / FPS) <= 1 / FPS + 0.03
    s = json.loads(stats.read_text())
    assert s["windows"] == windows and s["relative_residual"] < 0.05
    assert not any(p.name.endswith(".lvtino-state") for p in tmp_path.iterdir())  # removed after success


def test_seams_show_no_jump_larger_than_inside_windows(long_clip, tmp_path, capsys):
    clean, y = long_clip
    out = tmp_path / "x.mkv"
    code, _, err = run(["restore", y, "-o", out], capsys)
    assert code == 0, err
    x, ref = frames_of(out).astype(np.float64), frames_of(clean).astype(np.float64)
    change = np.abs(np.diff(x - ref, axis=0)).mean(axis=(1, 2, 3))  # how the error changes frame to frame
    seams = {s + d for s in range(16, 150, 16) for d in range(-2, 9)}  # overlaps start every 16 frames
    at = [c for i, c in enumerate(change) if i in seams]
    inside = [c for i, c in enumerate(change) if i not in seams]
    assert max(at) <= max(inside)


def test_frame_and_time_ranges_restore_only_what_is_asked(long_clip, tmp_path, capsys):
    _, y = long_clip
    full, part, timed = tmp_path / "full.mkv", tmp_path / "part.mkv", tmp_path / "timed.mkv"
    run(["restore", y, "-o", full, *FAST], capsys)
    code, _, err = run(["restore", y, "-o", part, "--start", 30, "--end", 90, "--stats", tmp_path / "s.json",
                        *FAST], capsys)
    assert code == 0, err
    assert np.array_equal(frames_of(part), frames_of(full)[30:90])
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["frames"] == 60 and s["windows"] < s["windows_total"]
    code, _, err = run(["restore", y, "-o", timed, "--start", "00:00:01", "--end", "0:02.5", *FAST], capsys)
    assert code == 0, err
    first, stop = round(1 * FPS), round(Fraction(5, 2) * FPS)
    assert np.array_equal(frames_of(timed), frames_of(full)[first:stop])
    # seconds as ffmpeg's -ss (12.5 or 12.5s), and an --end past the video clamped to its end with a notice
    secs = tmp_path / "secs.mkv"
    code, _, err = run(["restore", y, "-o", secs, "--start", "1.5", "--end", "99999s", *FAST], capsys)
    assert code == 0, err
    assert "past the video's" in err
    assert np.array_equal(frames_of(secs), frames_of(full)[round(Fraction(3, 2) * FPS):])
    code, _, err = run(["restore", y, "-o", tmp_path / "bad.mkv", "--start", "1:xx"], capsys)
    assert code == 2 and "expected a frame number, seconds (12.5 or 12.5s) or a time" in err


def test_resume_after_sigkill_gives_the_uninterrupted_output(long_clip, tmp_path, capsys):
    _, y = long_clip
    clean_run, resumed = tmp_path / "clean.mkv", tmp_path / "resumed.mkv"
    args = ["--set", "tv.iterations=60"]
    run(["restore", y, "-o", clean_run, *args], capsys)
    state = tmp_path / ".resumed.mkv.lvtino-state"
    killed_after_segments(["restore", y, "-o", resumed, *args], 3)
    assert len(list(state.glob("segments/segment-*"))) == 3 and not resumed.exists()  # no output that looks complete
    code, _, err = run(["restore", y, "-o", resumed, *args], capsys)  # without --resume: refused
    assert code == 2 and "--resume" in err
    code, _, err = run(["restore", y, "-o", resumed, "--resume", "--set", "tv.iterations=61"], capsys)
    assert code == 2 and "other settings (config differ)" in err
    code, _, err = run(["restore", y, "-o", resumed, "--resume", "--stats", tmp_path / "s.json", *args], capsys)
    assert code == 0, err
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["resumed_at_frame"] >= 3 * 16 and stats["windows"] < 9  # from the last closed segment on
    assert np.array_equal(frames_of(resumed), frames_of(clean_run))
    assert not state.exists()


def test_resume_with_another_input_is_refused(long_clip, tmp_path, capsys):
    clean, y = long_clip
    out = tmp_path / "x.mkv"
    code, _, err = run(["restore", y, "-o", out, "--keep-state", *FAST], capsys)
    assert code == 0 and (tmp_path / ".x.mkv.lvtino-state" / "state.json").is_file()
    other = tmp_path / "y2.mkv"
    run(["degrade", clean, "-o", other, "--problem", "A", "--seed", 3], capsys)
    code, _, err = run(["restore", other, "-o", out, "--resume", *FAST], capsys)
    assert code == 2 and "made for another input" in err


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this Python")
def test_two_processes_give_the_output_of_one(long_clip, tmp_path, capsys):
    _, y = long_clip
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    run(["restore", y, "-o", one, *FAST], capsys)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "lvtino", "restore", str(y), "-o", str(two),
                           "--stats", str(tmp_path / "s.json"), *FAST], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("wrote") == 1  # the main process reports, the other stays quiet
    assert json.loads((tmp_path / "s.json").read_text())["processes"] == 2
    assert np.array_equal(frames_of(two), frames_of(one))


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_scratch_disk_stays_within_the_output_plus_three_windows(tmp_path, suffix):
    """Sampled while a run goes: the state folder holds closed segments (about the output) and a few windows."""
    clean = write_video(tmp_path / "c.mp4", smooth_frames(400, 48, 64), fps=FPS)
    y = tmp_path / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "A"]) == 0
    out, stats = tmp_path / f"x{suffix}", tmp_path / "stats.json"
    state = tmp_path / f".x{suffix}.lvtino-state"
    # the run stops itself after each closed segment (a known point, not a clock): the folder is measured there
    proc = subprocess.Popen([sys.executable, "-m", "lvtino", "restore", str(y), "-o", str(out), "--stats", str(stats)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LVTINO_STOP_AFTER_SEGMENTS": "every"})
    sizes = []
    while True:
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            break
        sizes.append(tree_size(state))
        os.kill(proc.pid, signal.SIGCONT)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here
    assert proc.returncode == 0, proc.stderr.read()
    window = 128 + 2 * 3 * 24 * 48 * 64  # one window of 24 frames, float16
    bound = out.stat().st_size + 3 * window + 64 * 1024
    facts = json.loads(stats.read_text())
    assert len(sizes) >= facts["windows"] and max(sizes) <= bound, (sizes, out.stat().st_size, window)
    counted = facts["scratch_peak_mb"] * 2**20  # what the run itself counted
    assert window - 0.05 * 2**20 <= counted <= bound  # a window file at least (its own moments, not these)
    assert probe(out).frames == 400


@pytest.mark.parametrize("problem", ["A", "B", "C", "jpeg", "sr4", "deblur-t7", "fps8"])
def test_streaming_degrade_equals_the_whole_clip(tmp_path, capsys, problem):
    """Measured a few frames at a time (any chunk), the measurement is bit for bit the whole clip's."""
    import torch

    from lvtino.config import load_problem
    from lvtino.physics.base import frame_noise
    from lvtino.physics.problems import build_physics
    from lvtino.pipeline.degrade import measure_stream
    from lvtino.video.convert import frames_to_tensor, tensor_to_frames
    from lvtino.video.frames import DecodedFrames

    frames = 37
    clean = write_video(tmp_path / "c.mkv", smooth_frames(frames, 32, 48), codec="ffv1")
    cfg = load_problem(problem)
    physics = build_physics(cfg.operator, (frames, 32, 48))
    x = frames_to_tensor(read_frames(probe(clean)), torch.float64)
    rows, h, w = physics.output_shape((frames, 32, 48))
    whole = physics.measure(x, cfg.noise_std, noise=frame_noise(7, range(rows), (3, h, w))).float()
    for chunk in (1, 5, 64):
        streamed = torch.cat(list(measure_stream(physics, DecodedFrames(probe(clean), dtype=torch.float64), rows,
                                                 cfg.noise_std, 7, chunk)), dim=2)
        assert torch.equal(streamed, whole), chunk
    code, _, err = run(["degrade", clean, "-o", tmp_path / "y.mkv", "--problem", problem, "--seed", 7], capsys)
    assert code == 0, err
    expected = np.stack(list(tensor_to_frames(whole)))
    assert np.array_equal(frames_of(tmp_path / "y.mkv"), expected)


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed beside this Python")
def test_two_nodes_sharing_the_state_folder_give_the_output_of_one(long_clip, tmp_path, capsys):
    """torchrun --nnodes 2 on one machine (two node ranks over loopback): what a cluster with a shared state
    folder does."""
    import socket
    _, y = long_clip
    one, two = tmp_path / "one.mkv", tmp_path / "two.mkv"
    run(["restore", y, "-o", one, *FAST], capsys)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = str(Path(sys.executable).parent / "torchrun")
    node = lambda rank: subprocess.Popen(  # noqa: E731
        [torchrun, "--nnodes", "2", "--nproc_per_node", "1", "--node_rank", str(rank), "--master_addr",
         "127.0.0.1", "--master_port", str(port), "-m", "lvtino", "restore", str(y), "-o", str(two), *FAST,
         "--stats", str(tmp_path / "s.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    nodes = [node(1), node(0)]
    outs = [p.communicate(timeout=300) for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outs
    assert json.loads((tmp_path / "s.json").read_text())["processes"] == 2
    assert np.array_equal(frames_of(two), frames_of(one))


def test_many_segments_are_merged_and_join_to_the_same_frames(tmp_path, capsys):
    """100 windows: closed segments are merged 32 at a time along the way; the video equals the frame folder
    (whose frames are never merged), and an H.264 output keeps its count and rate."""
    clean = write_video(tmp_path / "c.mp4", smooth_frames(400, 24, 32), fps=FPS)
    y = tmp_path / "y.mkv"
    run(["degrade", clean, "-o", y, "--problem", "A"], capsys)
    small = ["--window", "8", "--overlap", "4", "--prior", "pinv"]
    for out in ("x.mkv", "x", "x.mp4"):
        code, _, err = run(["restore", y, "-o", tmp_path / out, *small], capsys)
        assert code == 0, err
    assert np.array_equal(frames_of(tmp_path / "x.mkv"), frames_of(tmp_path / "x"))
    info = probe(tmp_path / "x.mp4")
    assert (info.frames, info.fps, info.expected_frames) == (400, FPS, 400)
    lossy, exact = frames_of(tmp_path / "x.mp4").astype(int), frames_of(tmp_path / "x.mkv").astype(int)
    offset = {s: np.abs(lossy[max(s, 0):len(lossy) + min(s, 0)] - exact[max(-s, 0):len(exact) + min(-s, 0)]).mean()
              for s in (-2, -1, 0, 1, 2)}
    assert offset[0] < 8 and min(offset, key=offset.get) == 0, offset  # every frame in its place (H.264 loses a
    # little; the restoration moves smoothly, so a frame's neighbours differ from it by little more)


def test_the_runs_objects_change_nothing_until_asked(tmp_path):
    """Constructors without side effects: a Segments object over a folder holding another range's and unclosed
    segments deletes nothing until ``open``; an Encoder starts no thread until ``start``; the state's ``save``
    leaves the window it is given as it was and returns the float16-rounded copy."""
    import threading

    import torch

    from lvtino.distributed import Processes
    from lvtino.pipeline.state import RunState
    from lvtino.video.segments import Encoder, Segments

    folder = tmp_path / "segments"
    folder.mkdir()
    (folder / "range.json").write_text(json.dumps({"start": 0, "end": 9, "output": ".mkv"}))
    (folder / ".open-000000000.mkv").write_bytes(b"cut")
    segments = Segments(folder, tmp_path / "out.mkv", Fraction(30), 0, 12)
    encoder = Encoder(segments, 0)
    assert sorted(p.name for p in folder.iterdir()) == [".open-000000000.mkv", "range.json"]
    assert not any(t.name == "lvtino-encoder" for t in threading.enumerate())
    assert segments.open().covered() == 0 and [p.name for p in folder.iterdir()] == ["range.json"]
    encoder.start()
    encoder.wait()
    state = RunState(tmp_path / "out.mkv", {"digest": "x"}, {"k": 1}, Processes.alone(torch.device("cpu")), False,
                     False).open()
    x = torch.linspace(-1, 1, 3 * 2 * 5 * 7).reshape(1, 3, 2, 5, 7) / 3
    kept = x.clone()
    back = state.save(0, x)
    state.flush()
    assert torch.equal(x, kept) and not torch.equal(back, x)
    assert torch.equal(back, x.half().float()) and torch.equal(state.load(0, tuple(x.shape)), back)
    state.finish()


def _video_packets(path) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


@pytest.fixture(scope="module")
def street_low(tmp_path_factory, real_frames):
    """The street clip (41 frames) at half size and frame rate, as an ordinary H.264 file with sound."""
    frames = frames_of(real_frames)[::2, ::2, ::2]
    return write_video(tmp_path_factory.mktemp("street") / "low.mp4", frames, fps=15, audio_seconds=21 / 15,
                       pix_fmt="yuv420p")


def test_h264_output_is_the_same_bytes_every_run(street_low, tmp_path):
    """Two runs side by side, each with the memory it allocates filled with another byte (glibc's
    MALLOC_PERTURB_): the same video packets. x264's mb-tree read memory it never wrote at the end of each stream
    (runs differed in 15-33 of 202 frames); it runs without it, on one thread, whose options the stream states."""
    args = ["--fps-factor", "2", "--prior", "pinv", "--window", "16", "--end", "24", "-y"]
    outs = [tmp_path / f"run{k}.mp4" for k in range(2)]
    procs = [subprocess.Popen([sys.executable, "-m", "lvtino", "restore", str(street_low), "-o", str(o), *args],
                              stderr=subprocess.PIPE, env={**os.environ, "MALLOC_PERTURB_": str(85 * (k + 1))})
             for k, o in enumerate(outs)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    first, second = (_video_packets(o) for o in outs)
    assert len(first) == 24 and first == second
    assert b" threads=1 " in first[0] and b" mbtree=0 " in first[0]


def test_h264_output_after_kill_and_resume_is_the_uninterrupted_bytes(street_low, tmp_path, capsys):
    args = ["--fps-factor", "2", "--prior", "tv", "--set", "tv.iterations=10", "--window", "16", "--end", "36"]
    whole, resumed = tmp_path / "whole.mp4", tmp_path / "resumed.mp4"
    code, _, err = run(["restore", street_low, "-o", whole, *args], capsys)
    assert code == 0, err
    killed_after_segments(["restore", street_low, "-o", resumed, *args], 2)
    assert len(list((tmp_path / ".resumed.mp4.lvtino-state").glob("segments/segment-*"))) == 2
    assert not resumed.exists()
    code, _, err = run(["restore", street_low, "-o", resumed, "--resume", *args], capsys)
    assert code == 0, err
    assert _video_packets(resumed) == _video_packets(whole)


def test_a_video_piped_in_is_restored_as_the_same_file_would_be(street_low, tmp_path, capsys):
    """``ffmpeg -i a.mp4 -c copy -f matroska - | lvtino restore - ...``: the same frames, rate and sound as from the
    file; the copy spooled beside the output goes when the run ends; --resume is refused for a pipe."""
    import av

    piped = tmp_path / "stream.mkv"  # what ffmpeg writes into the pipe: the streams copied into Matroska
    with av.open(str(street_low)) as src, av.open(str(piped), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        for p in src.demux(src.streams.video[0], src.streams.audio[0]):
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                out.mux(p)
    args = ["--fps-factor", "2", "--prior", "pinv", "--window", "16"]
    from_file, from_pipe = tmp_path / "file.mkv", tmp_path / "pipe.mkv"
    assert run(["restore", piped, "-o", from_file, *args], capsys)[0] == 0
    proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", "-", "-o", str(from_pipe), *args,
                           "--stats", str(tmp_path / "s.json")], stdin=piped.open("rb"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    a, b = probe(from_file), probe(from_pipe)
    assert (b.frames, b.fps, b.has_audio) == (a.frames, a.fps, True) and np.array_equal(frames_of(from_pipe),
                                                                                         frames_of(from_file))
    assert json.loads((tmp_path / "s.json").read_text())["input"] == "-"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.mkv", "pipe.mkv", "s.json", "stream.mkv"]
    proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", "-", "-o", str(tmp_path / "r.mkv"), *args,
                           "--resume"], stdin=piped.open("rb"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "a pipe cannot be read again" in proc.stderr


def test_a_pipe_without_a_written_duration_is_restored_whole(tmp_path):
    """A muxer writing into a pipe cannot go back to write the duration; with PCM sound FFmpeg then guesses one from
    the bit rates (4x too long here), which a pipe's input must not be held to: every frame piped is restored."""
    import av
    import threading

    frames = smooth_frames(24, 32, 48)
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as pipe, av.open(pipe, "w", format="matroska") as out:
            vs = out.add_stream("ffv1", rate=24)
            vs.width, vs.height, vs.pix_fmt = 48, 32, "bgr0"
            sound = out.add_stream("pcm_s16le", rate=48000)
            sound.layout = "stereo"
            for i, f in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")
                vf.pts = i
                for p in vs.encode(vf):
                    out.mux(p)
                af = av.AudioFrame.from_ndarray(np.zeros((1, 4000), np.int16), format="s16", layout="stereo")
                af.sample_rate, af.pts = 48000, i * 2000
                for p in sound.encode(af):
                    out.mux(p)
            for s in (vs, sound):
                for p in s.encode():
                    out.mux(p)

    thread = threading.Thread(target=feed)
    thread.start()
    with os.fdopen(read_end, "rb") as stdin:
        proc = subprocess.run([sys.executable, "-m", "lvtino", "restore", "-", "-o", str(tmp_path / "up.mkv"),
                               "--scale", "2", "--prior", "pinv"], stdin=stdin, capture_output=True, text=True,
                              timeout=300)
    thread.join()
    assert proc.returncode == 0, proc.stderr
    info = probe(tmp_path / "up.mkv")
    assert (info.frames, info.width, info.height, info.has_audio) == (24, 96, 64, True)
