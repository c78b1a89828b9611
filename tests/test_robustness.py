"""Nothing lost: signals, a full disk, damaged state files, one run per output, batches that resume."""

from __future__ import annotations

import errno
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
import torch

from conftest import killed_after_segments, smooth_frames, write_video
from lvtino.cli import main
from lvtino.video.reader import probe, read_frames

TV = ["--set", "tv.iterations=6"]  # a setting of its own: the digest records it


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def frames_of(path) -> np.ndarray:
    return np.stack(list(read_frames(probe(path))))


def leftovers(folder: Path) -> list[str]:
    """Temporary files a run must never leave beside its outputs."""
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A Problem A measurement of 160 frames (10 windows), and the output of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("robust")
    clean = write_video(folder / "clean.mp4", smooth_frames(160, 48, 64), fps=Fraction(24))
    y = folder / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "A"]) == 0
    reference = folder / "reference.mkv"
    assert main(["restore", str(y), "-o", str(reference), *TV]) == 0
    return y, frames_of(reference)


def start_restore(y: Path, out: Path, *extra, stop_after: int = 0) -> subprocess.Popen:
    """``lvtino restore`` in a process of its own; with ``stop_after``, it stops itself (SIGSTOP) once that many
    segments are closed (``wait_stopped``)."""
    return start(["restore", str(y), "-o", str(out), *TV, *extra], stop_after)


def start(args: list[str], stop_after: int = 0) -> subprocess.Popen:
    env = {**os.environ, "LVTINO_STOP_AFTER_SEGMENTS": str(stop_after)}
    return subprocess.Popen([sys.executable, "-m", "lvtino", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def wait_stopped(proc: subprocess.Popen) -> None:
    """Until the process has stopped itself at its segment (a known point of the run, not a clock); a signal sent
    now is taken when ``SIGCONT`` lets it go on."""
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here
        raise AssertionError(f"the run ended (exit {proc.returncode}) before closing its segments")


def go_on(proc: subprocess.Popen, *signals: int) -> None:
    """Send ``signals`` to the stopped process, then let it go on."""
    for sig in signals:
        proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_cleanly_and_resume_gives_the_uninterrupted_output(measured, tmp_path, capsys, sig, code):
    y, reference = measured
    out = tmp_path / "x.mkv"
    proc = start_restore(y, out, stop_after=2)
    wait_stopped(proc)
    go_on(proc, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "--resume" in lines[0], err
    assert not out.exists() and leftovers(tmp_path) == []
    state = tmp_path / ".x.mkv.lvtino-state"
    assert (state / "state.json").is_file() and not (state / "lock").exists()  # the lock goes with the run
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume"], capsys)
    assert rc == 0, err
    assert np.array_equal(frames_of(out), reference)


def test_a_second_ctrl_c_stops_at_once_and_resume_still_works(measured, tmp_path, capsys):
    y, reference = measured
    out = tmp_path / "x.mkv"
    proc = start_restore(y, out, stop_after=1)
    wait_stopped(proc)
    go_on(proc, signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # while it stops (or, had it already, after: either way it ends with 130)
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and not out.exists()
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume"], capsys)
    assert rc == 0, err
    assert np.array_equal(frames_of(out), reference) and leftovers(tmp_path) == []


def test_kill_9_then_resume_takes_over_the_lock(measured, tmp_path, capsys):
    y, reference = measured
    out = tmp_path / "x.mkv"
    proc = start_restore(y, out, stop_after=3)
    wait_stopped(proc)
    proc.kill()
    proc.communicate()
    assert (tmp_path / ".x.mkv.lvtino-state" / "lock").is_file() and not out.exists()
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume"], capsys)
    assert rc == 0, err
    assert "taking over the lock of an earlier run that is gone" in err
    assert np.array_equal(frames_of(out), reference) and leftovers(tmp_path) == []


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(measured, tmp_path, capsys):
    y, reference = measured
    out = tmp_path / "x.mkv"
    proc = start_restore(y, out, stop_after=1)
    try:
        wait_stopped(proc)
        for extra in ([], ["--resume"]):
            rc, _, err = run(["restore", y, "-o", out, *TV, *extra], capsys)
            assert rc == 2 and f"another lvtino run is writing it (pid {proc.pid}" in err
        go_on(proc)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        proc.kill()
    assert np.array_equal(frames_of(out), reference)


def test_disk_full_while_saving_windows_keeps_the_state_for_resume(measured, tmp_path, capsys, monkeypatch):
    """A write that raises ENOSPC: one line naming the path and the space needed, no partial file, and a resume
    gives the uninterrupted output."""
    from lvtino.pipeline.state import RunState
    y, reference = measured
    out = tmp_path / "x.mkv"
    real_write, calls = RunState._write, []

    def write(self, index, array):
        calls.append(1)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.folder / "window-000003.npy.partial"))
        real_write(self, index, array)
    monkeypatch.setattr(RunState, "_write", write)
    rc, _, err = run(["restore", y, "-o", out, *TV], capsys)
    assert rc == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lvtino: error: no space left on the device writing "), err
    assert "free there" in lines[0] and "needs about" in lines[0] and "--resume" in lines[0]
    state = tmp_path / ".x.mkv.lvtino-state"
    assert list((state / "segments").glob("segment-*.mkv")) and not list(state.rglob("*partial*"))
    assert not out.exists() and leftovers(tmp_path) == []
    monkeypatch.setattr(RunState, "_write", real_write)
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume", "--stats", tmp_path / "s.json"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["resumed_at_frame"] > 0
    assert np.array_equal(frames_of(out), reference)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare for a private tmpfs")
def test_disk_full_on_a_small_tmpfs(measured, tmp_path):
    """A real full disk: a 1 MB tmpfs in a private mount namespace (nothing on the system changes)."""
    y, reference = measured
    mnt, copy = tmp_path / "mnt", tmp_path / "resumed.mkv"
    mnt.mkdir()
    lvtino = f"{sys.executable} -m lvtino restore {y} -o {mnt}/x.mkv {' '.join(TV)}"
    script = (f"mount -t tmpfs -o size=1024k tmpfs {mnt} || exit 77\n"
              f"{lvtino} 2>{tmp_path}/err1; echo $? > {tmp_path}/rc1\n"
              f"ls -a {mnt} > {tmp_path}/ls1; ls {mnt}/.x.mkv.lvtino-state > {tmp_path}/ls2\n"
              f"mount -o remount,size=64m {mnt}\n"
              f"{lvtino} --resume 2>{tmp_path}/err2; echo $? > {tmp_path}/rc2\n"
              f"cp {mnt}/x.mkv {copy}\n")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    if proc.returncode == 77 or not (tmp_path / "rc1").exists():
        pytest.skip(f"cannot mount a tmpfs in a private namespace here: {proc.stderr.strip()[:200]}")
    err1 = (tmp_path / "err1").read_text()
    assert (tmp_path / "rc1").read_text().strip() == "1", err1
    lines = err1.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device writing" in lines[0] and "--resume" in lines[0], err1
    assert "x.mkv" not in (tmp_path / "ls1").read_text().split()  # no output that looks complete
    assert ".partial" not in (tmp_path / "ls1").read_text() + (tmp_path / "ls2").read_text()
    assert (tmp_path / "rc2").read_text().strip() == "0", (tmp_path / "err2").read_text()
    assert np.array_equal(frames_of(copy), reference)


def test_damaged_state_files_are_restored_again(measured, tmp_path, capsys):
    """Window files cut short or emptied (power lost before the disk caught up), a stray partial file and a
    segment cut short are never fatal: they are redone."""
    y, reference = measured
    out = tmp_path / "x.mkv"
    killed_after_segments(["restore", y, "-o", out, *TV], 3)
    state = tmp_path / ".x.mkv.lvtino-state"
    windows = sorted(state.glob("window-*.npy"))
    assert windows, "no window file to damage"
    for i, w in enumerate(windows):
        w.write_bytes(w.read_bytes()[:1000] if i % 2 == 0 else b"")
    (state / "window-000001.npy.partial-999999").write_bytes(b"half")  # its process is gone
    segments = sorted((state / "segments").glob("segment-*"))
    segments[-1].write_bytes(segments[-1].read_bytes()[:300])  # not through the rename: a disk that lied
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume"], capsys)
    assert rc == 0, err
    assert "file is damaged" in err
    assert np.array_equal(frames_of(out), reference) and not state.exists()


def _kill_after_segments(y: Path, out: Path, segments: int) -> Path:
    """Start a restore, kill -9 it once ``segments`` segments are closed (a window file is kept then: the next
    window's overlap); its state."""
    killed_after_segments(["restore", y, "-o", out, *TV], segments)
    state = out.parent / f".{out.name}.lvtino-state"
    assert list(state.glob("window-*.npy")), "no window file kept"
    return state


def _scribble(path: Path, count: int, seed: int = 0) -> None:
    """Overwrite ``count`` bytes in the middle of a file with random ones: same size, same name, other content."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 - count // 2
    data[at:at + count] = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["window", "segment", "record"])
def test_same_size_damage_to_a_state_file_is_found_and_redone(measured, tmp_path, capsys, kind):
    """Random bytes written over a kept window, a closed segment or the run's record (not a cut: the same size,
    as a failing disk or a stray write leaves them) are found by their CRC-32: a notice, the part redone, and the
    uninterrupted output."""
    y, reference = measured
    out = tmp_path / "x.mkv"
    state = _kill_after_segments(y, out, 3)
    if kind == "window":
        _scribble(sorted(state.glob("window-*.npy"))[-1], 4096)
    elif kind == "segment":
        _scribble(sorted((state / "segments").glob("segment-*"))[-1], 64)
    else:
        record = state / "state.json"
        text = record.read_text()
        record.write_text(text.replace('"version": 2', '"version": 3'))  # parses, same size, CRC no longer matches
    rc, _, err = run(["restore", y, "-o", out, *TV, "--resume"], capsys)
    assert rc == 0, err
    said = {"window": "'s file is damaged; it will be restored again", "segment": "a closed segment (frames",
            "record": "the record of the interrupted run (state.json) is damaged"}[kind]
    assert said in err, err
    assert np.array_equal(frames_of(out), reference) and not state.exists()


def test_a_damaged_progress_file_is_not_believed(tmp_path):
    """Other processes wait on the main one's progress file: a damaged one is never read as progress."""
    import threading

    from lvtino.distributed import Processes
    from lvtino.pipeline.state import RunState
    state = RunState(tmp_path / "x.mkv", {"digest": "d"}, {}, Processes.alone(torch.device("cpu")), False, False)
    state.folder.mkdir()
    state.set_progress(3)
    (state.folder / "progress").write_text((state.folder / "progress").read_text().replace("3", "9", 1))
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (state.wait_progress(5, poll=0.01), done.set()), daemon=True)
    waiter.start()
    assert not done.wait(0.3)  # "9" with the CRC of "3": not progress
    state.set_progress(5)
    assert done.wait(5)


def test_resume_with_other_encoding_settings_is_refused(measured, tmp_path, capsys):
    """Segments already encoded at one --crf are never joined with others at another (a file encoded two ways)."""
    y, reference = measured
    out = tmp_path / "x.mp4"
    proc = start_restore(y, out, "--crf", "20", stop_after=3)
    wait_stopped(proc)
    proc.kill()
    proc.communicate()
    for other in (["--crf", "30"], ["--crf", "20", "--preset", "fast"], ["--crf", "20", "--pix-fmt", "yuv444p"]):
        rc, _, err = run(["restore", y, "-o", out, *TV, *other, "--resume"], capsys)
        assert rc == 2 and "other settings (encoding differ)" in err, (other, err)
    rc, _, err = run(["restore", y, "-o", out, *TV, "--crf", "20", "--resume"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("pid", [0, -1, 10**20, "1e20", 4_194_305])
def test_a_lock_naming_a_pid_no_process_can_have_is_taken_over(measured, tmp_path, capsys, pid):
    y, _ = measured
    state = tmp_path / ".x.mkv.lvtino-state"
    state.mkdir()
    (state / "lock").write_text(json.dumps({"pid": pid, "host": os.uname().nodename, "started": "then"}))
    rc, _, err = run(["restore", y, "-o", tmp_path / "x.mkv", "--prior", "pinv", "--end", 12], capsys)
    assert rc == 0 and "taking over the lock of an earlier run that is gone" in err, err


def test_stats_on_a_full_disk_names_stats_and_keeps_the_output(measured, tmp_path, capsys, monkeypatch):
    import lvtino.pipeline.restore as restore_module
    y, _ = measured

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(restore_module, "write_json", full)
    out = tmp_path / "x.mkv"
    rc, _, err = run(["restore", y, "-o", out, "--prior", "pinv", "--end", 12, "--stats", tmp_path / "s.json"],
                     capsys)
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, err
    assert f"--stats {tmp_path / 's.json'}: not written (no space left on the device)" in lines[0]
    assert f"the output {out} was written whole" in lines[0]
    assert probe(out).frames == 12 and leftovers(tmp_path) == []


def test_an_interruption_of_an_in_process_run_reaches_the_caller(measured, tmp_path, capsys, monkeypatch):
    """Ctrl-C during main() called in-process (a test runner, a notebook) stops the caller too, after the one line
    and the cleanup; the caller's own handlers are back."""
    from lvtino.pipeline.state import RunState
    y, _ = measured
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))

    def interrupted(self, index, array, before=None):
        signal.raise_signal(signal.SIGINT)  # through lvtino's handler, as a Ctrl-C would come
    monkeypatch.setattr(RunState, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), *TV])
    assert "lvtino: interrupted (SIGINT)" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert not (tmp_path / "x.mkv").exists() and leftovers(tmp_path) == []


def test_a_frame_folder_output_never_deletes_the_users_files(measured, tmp_path, capsys):
    y, _ = measured
    mine = tmp_path / "frames"
    mine.mkdir()
    for i in range(5):
        (mine / f"{i}.png").write_bytes(b"my picture")
    rc, _, err = run(["restore", y, "-o", mine, "-y", "--prior", "pinv"], capsys)
    assert rc == 2 and "holds files lvtino did not write" in err
    assert sorted(p.name for p in mine.iterdir()) == [f"{i}.png" for i in range(5)]
    out = tmp_path / "restored"
    for _ in range(2):  # lvtino's own frame folder is replaced with -y
        rc, _, err = run(["restore", y, "-o", out, "-y", "--prior", "pinv", "--end", 20], capsys)
        assert rc == 0, err
    assert len(list(out.glob("*.png"))) == 20


def test_variable_frame_rate_input_loses_no_frame_through_degrade_and_restore(tmp_path, capsys):
    import av
    frames = smooth_frames(40, 32, 48)
    src = tmp_path / "vfr.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            t += 50 if i % 3 == 0 else 20
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    rc, _, err = run(["degrade", src, "-o", tmp_path / "y.mkv", "--problem", "sr2"], capsys)
    assert rc == 0, err
    assert "variable frame rate" in err and "40 frames are taken in order" in err
    assert probe(tmp_path / "y.mkv").frames == 40 and probe(tmp_path / "y.mkv").metadata["frames"] == 40
    rc, _, err = run(["restore", tmp_path / "y.mkv", "-o", tmp_path / "x.mkv", "--prior", "pinv"], capsys)
    assert rc == 0, err
    assert probe(tmp_path / "x.mkv").frames == 40


def test_a_truncated_input_is_used_only_when_asked(tmp_path, capsys):
    from lvtino.video.writer import VideoWriter
    full = tmp_path / "full.mkv"
    with VideoWriter(full, Fraction(24)) as w:
        for f in smooth_frames(12, 32, 48):
            w.write(f)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    rc, _, err = run(["degrade", cut, "-o", tmp_path / "y.mkv", "--problem", "sr2"], capsys)
    assert rc == 2 and "promises 12 frames but holds" in err
    rc, out, err = run(["degrade", cut, "-o", tmp_path / "y.mkv", "--problem", "sr2", "--accept-truncated"], capsys)
    assert rc == 0, err
    assert 0 < probe(tmp_path / "y.mkv").frames < 12


# -- batch -----------------------------------------------------------------------------------

@pytest.fixture
def batch_inputs(measured, tmp_path):
    y, _ = measured
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"input,output,prior\n{y},a.mkv,tv\n{y},b.mkv,pinv\n")
    return manifest


def test_batch_skips_only_outputs_made_with_the_same_settings(batch_inputs, tmp_path, capsys):
    summary = tmp_path / "jobs-summary.csv"
    rc, out, err = run(["batch", batch_inputs, *TV], capsys)
    assert rc == 0, err
    assert "item 1/2" in out and "item 2/2" in out and summary.read_text().count(",done,") == 2
    rc, out, _ = run(["batch", batch_inputs, *TV], capsys)
    assert rc == 0 and summary.read_text().count("done: made by the same settings") == 2
    rc, out, _ = run(["batch", batch_inputs, "--set", "tv.iterations=7"], capsys)
    assert rc == 1 and summary.read_text().count("made by other settings") == 2
    rc, out, _ = run(["batch", batch_inputs, "--set", "tv.iterations=7", "-n"], capsys)
    assert rc == 0 and summary.read_text().count("-n keeps it") == 2
    before = (tmp_path / "a.mkv").stat().st_mtime_ns
    rc, out, _ = run(["batch", batch_inputs, "--set", "tv.iterations=7", "-y"], capsys)
    assert rc == 0 and summary.read_text().count(",done,") == 2
    assert (tmp_path / "a.mkv").stat().st_mtime_ns != before
    (tmp_path / "b.mkv").write_bytes(b"")  # a 0-byte file is not a finished output
    rc, out, _ = run(["batch", batch_inputs, "--set", "tv.iterations=7"], capsys)
    assert rc == 1 and "not by lvtino" in summary.read_text()
    assert "done: made by the same settings" in summary.read_text()  # item a


def test_an_interrupted_batch_resumes(batch_inputs, tmp_path, capsys, measured):
    _, reference = measured
    proc = start(["batch", str(batch_inputs), *TV], stop_after=2)
    wait_stopped(proc)
    go_on(proc, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "--resume" in err
    summary = (tmp_path / "jobs-summary.csv").read_text()
    assert "not run" in summary
    rc, out, err = run(["batch", batch_inputs, *TV], capsys)
    assert rc == 1 and "add --resume" in (tmp_path / "jobs-summary.csv").read_text()
    rc, out, err = run(["batch", batch_inputs, *TV, "--resume"], capsys)
    assert rc == 0, out + err
    assert np.array_equal(frames_of(tmp_path / "a.mkv"), reference)


def test_two_batches_on_one_manifest(batch_inputs, tmp_path, capsys):
    proc = start(["batch", str(batch_inputs), *TV], stop_after=1)
    try:
        wait_stopped(proc)
        rc, _, err = run(["batch", batch_inputs, *TV], capsys)
        assert rc == 2 and "another lvtino run is writing it" in err
        go_on(proc)
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    finally:
        proc.kill()


# -- outputs that appear while a command works: kept, the result beside them --------------------------------------
def _appearing_at_join(monkeypatch, make):
    """Run ``make()`` just before the restore joins its segments into the output (the moment it would replace)."""
    from lvtino.video import segments

    join = segments.Segments.join

    def joined(self, *args, **kwargs):
        make()
        return join(self, *args, **kwargs)

    monkeypatch.setattr(segments.Segments, "join", joined)


@pytest.mark.parametrize("overwrite", [[], ["-y"], ["-n"]])
def test_a_file_that_appears_at_the_output_during_a_restore_is_kept(measured, tmp_path, capsys, monkeypatch,
                                                                     overwrite):
    y, reference = measured
    out, stats = tmp_path / "out.mkv", tmp_path / "s.json"
    _appearing_at_join(monkeypatch, lambda: out.write_text("precious"))
    code, _, err = run(["restore", y, "-o", out, "--stats", stats, "--start", 0, "--end", 20, *TV, *overwrite],
                       capsys)
    kept = list(tmp_path.glob("out.lvtino-*.mkv"))
    assert code == 1 and out.read_text() == "precious" and len(kept) == 1
    assert err.strip().splitlines()[-1] == (f"lvtino: error: {out} appeared or changed while this run worked and is "
                                            f"kept as it is; the result is {kept[0]} (rename it to use it)")
    assert np.array_equal(frames_of(kept[0]), reference[:20])  # the whole result, under the other name
    assert json.loads(stats.read_text())["output"] == str(kept[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.mkv", kept[0].name, "s.json"])


def test_an_output_replaced_with_y_is_kept_when_it_changed_during_the_run(measured, tmp_path, capsys, monkeypatch):
    y, reference = measured
    out = tmp_path / "out.mkv"
    assert run(["restore", y, "-o", out, "--end", 16, *TV], capsys)[0] == 0
    _appearing_at_join(monkeypatch, lambda: out.write_bytes(b"rewritten by the user"))
    code, _, err = run(["restore", y, "-o", out, "--end", 20, *TV, "-y"], capsys)  # -y: leave for what was there
    assert code == 1 and out.read_bytes() == b"rewritten by the user" and "appeared or changed" in err
    monkeypatch.undo()
    assert run(["restore", y, "-o", out, "--end", 20, *TV, "-y"], capsys)[0] == 0  # unchanged: replaced
    assert np.array_equal(frames_of(out), reference[:20])


def test_stats_that_appear_during_a_restore_are_kept(measured, tmp_path, capsys, monkeypatch):
    y, reference = measured
    out, stats = tmp_path / "out.mkv", tmp_path / "s.json"
    _appearing_at_join(monkeypatch, lambda: stats.write_text("my notes"))
    code, _, err = run(["restore", y, "-o", out, "--stats", stats, "--end", 20, *TV], capsys)
    kept = list(tmp_path.glob("s.lvtino-*.json"))
    assert code == 1 and stats.read_text() == "my notes" and len(kept) == 1 and f"the result is {kept[0]}" in err
    assert np.array_equal(frames_of(out), reference[:20])  # the video is in place


def test_files_put_into_a_frame_folder_output_during_a_restore_are_kept(measured, tmp_path, capsys, monkeypatch):
    y, reference = measured
    out = tmp_path / "frames"

    def users_file():
        out.mkdir()
        (out / "mine.txt").write_text("precious")

    _appearing_at_join(monkeypatch, users_file)
    code, _, err = run(["restore", y, "-o", out, "--end", 20, *TV], capsys)
    kept = list(tmp_path.glob("frames.lvtino-*"))
    assert code == 1 and sorted(p.name for p in out.iterdir()) == ["mine.txt"] and len(kept) == 1
    assert np.array_equal(frames_of(kept[0]), reference[:20])


def test_a_file_that_appears_at_a_degrade_output_is_kept(tmp_path, capsys, monkeypatch):
    from lvtino.video import writer

    clean = write_video(tmp_path / "clean.mp4", smooth_frames(8, 48, 64))
    out = tmp_path / "y.mkv"
    close = writer.VideoWriter.close

    def closing(self):
        out.write_text("precious")
        return close(self)

    monkeypatch.setattr(writer.VideoWriter, "close", closing)
    code, _, err = run(["degrade", clean, "-o", out, "--problem", "A"], capsys)
    kept = list(tmp_path.glob("y.lvtino-*.mkv"))
    assert code == 1 and out.read_text() == "precious" and len(kept) == 1 and probe(kept[0]).frames == 2


def test_a_linked_or_foreign_state_folder_is_never_emptied(measured, tmp_path, capsys):
    y, _ = measured
    target = tmp_path / "users"
    (target / "segments").mkdir(parents=True)
    (target / "segments" / "segment-000000000-000016-00000000.mkv").write_text("named like lvtino's, but mine")
    (tmp_path / ".a.mkv.lvtino-state").symlink_to(target, target_is_directory=True)
    code, _, err = run(["restore", y, "-o", tmp_path / "a.mkv", *TV], capsys)
    assert code == 2 and "never follows" in err
    assert sorted(p.name for p in target.rglob("*")) == ["segment-000000000-000016-00000000.mkv", "segments"]
    foreign = tmp_path / ".b.mkv.lvtino-state" / "segments" / "segment-000000000-000016-00000000"  # a folder
    foreign.mkdir(parents=True)
    (foreign / "holiday.jpg").write_text("mine")
    code, _, err = run(["restore", y, "-o", tmp_path / "b.mkv", *TV], capsys)
    assert code == 2 and "holds files lvtino did not write (segments/segment-000000000-000016-00000000/holiday.jpg" \
        in err
    assert (foreign / "holiday.jpg").read_text() == "mine"


@pytest.mark.parametrize("renameat2", [True, False])
def test_rename_noreplace_never_replaces_a_file_or_a_folder(tmp_path, monkeypatch, renameat2):
    """With Linux's renameat2, and with the fallbacks (a hard link for files, an empty folder renamed over)."""
    from lvtino import files

    if not renameat2:
        monkeypatch.setattr(files, "_renameat2", lambda src, dst: False)
    for kind in ("file", "folder"):
        src, dst = tmp_path / f"new-{kind}", tmp_path / f"there-{kind}"
        src.mkdir() if kind == "folder" else src.write_text("result")
        for existing in ("file", "empty folder", "full folder"):
            if existing == "file":
                dst.write_text("mine")
            else:
                dst.mkdir()
                if existing == "full folder":
                    (dst / "mine.txt").write_text("mine")
            with pytest.raises(FileExistsError):
                files.rename_noreplace(src, dst)
            assert src.exists() and (dst.read_text() == "mine" if existing == "file"
                                     else sorted(p.name for p in dst.iterdir()) == (["mine.txt"] if "full" in
                                                                                     existing else []))
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        files.rename_noreplace(src, dst)  # nothing there: renamed
        assert dst.exists() and not src.exists()


def test_an_interruption_before_any_window_says_nothing_was_kept(measured, tmp_path, capsys, monkeypatch):
    from lvtino.pipeline.restore import WindowRestorer

    y, _ = measured

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(WindowRestorer, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["restore", str(y), "-o", str(tmp_path / "x.mkv"), *TV])
    err = capsys.readouterr().err.strip()
    assert err == ("lvtino: interrupted (SIGINT); no output was written, and no window had finished: run the same "
                   "command to start again")
    assert list(tmp_path.iterdir()) == []


def test_a_state_folder_removed_during_the_run_is_one_line(measured, tmp_path, capsys, monkeypatch):
    y, _ = measured
    out = tmp_path / "x.mkv"
    _appearing_at_join(monkeypatch, lambda: shutil.rmtree(tmp_path / ".x.mkv.lvtino-state"))
    code, _, err = run(["restore", y, "-o", out, "--end", 20, *TV], capsys)
    assert code == 2 and err.strip() == (f"lvtino: error: {out}: the run's state folder {tmp_path / '.x.mkv.lvtino-state'}"
                                         " was removed while it worked, and the restored frames with it; nothing was "
                                         "written: run the command again")
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_under_a_side_output_names_its_full_path(measured, tmp_path, capsys, monkeypatch):
    """A write that fails names no file (fh.write, fsync): the message names the output it was for, in full,
    and nothing is left beside it (the batch's lock included)."""
    y, _ = measured
    clip = tmp_path / "clip.mkv"
    assert run(["restore", y, "-o", clip, "--end", 16, *TV], capsys)[0] == 0
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"input,output\n{y},done.mkv\n")
    assert run(["batch", manifest, "--set", "tv.iterations=5"], capsys)[0] == 0
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(["evaluate", "clip.mkv", "--reference", "clip.mkv", "--json", "ev.json"], capsys)
    assert code == 1 and err.startswith(f"lvtino: error: no space left on the device writing {tmp_path / 'ev.json'} (")
    code, _, err = run(["batch", "jobs.csv", "--set", "tv.iterations=5", "-y"], capsys)
    assert code == 1 and f"writing {tmp_path / 'jobs-summary.csv'} (" in err
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial file, no lock left


def test_an_interruption_after_windows_became_segments_keeps_them(tmp_path, capsys, monkeypatch):
    """Windows without overlap are dropped once their frames are in closed segments: an interruption then kept
    nothing (the folder looked empty of windows) and said no window had finished."""
    import time as clock

    from lvtino.pipeline.restore import WindowRestorer

    src = write_video(tmp_path / "a.mkv", smooth_frames(64, 24, 32), codec="ffv1")
    args = ["--scale", "2", "--prior", "pinv", "--window", "16", "--overlap", "0"]
    whole = tmp_path / "whole.mkv"
    assert run(["restore", src, "-o", whole, *args], capsys)[0] == 0
    calls, restore_window = [], WindowRestorer.__call__

    def third_interrupted(self, w):
        calls.append(w)
        if len(calls) == 3:
            clock.sleep(1.0)  # the encoder closes the first two windows' segment meanwhile
            raise KeyboardInterrupt
        return restore_window(self, w)

    monkeypatch.setattr(WindowRestorer, "__call__", third_interrupted)
    out = tmp_path / "out.mkv"
    with pytest.raises(KeyboardInterrupt):
        main(["restore", str(src), "-o", str(out), *args])
    assert "the finished windows are kept" in capsys.readouterr().err
    assert len(list((tmp_path / ".out.mkv.lvtino-state" / "segments").glob("segment-*"))) == 2
    monkeypatch.undo()
    code, _, err = run(["restore", src, "-o", out, *args, "--resume", "--stats", tmp_path / "s.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "s.json").read_text())["resumed_at_frame"] == 32
    assert np.array_equal(frames_of(out), frames_of(whole))
