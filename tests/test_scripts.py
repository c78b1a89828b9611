"""The benchmark scripts still run (at tiny sizes); their figures go in issue notes, not in assertions."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run scripts/gpu_session.sh on one)")
def test_cuda_output_equals_the_cpus_to_bf16():
    assert "tolerance" in script("cuda_vs_cpu.py", "--device", "cuda", "--dtype", "bfloat16")


HELP_DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    out = io.StringIO()
    sys.argv = [path, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        code = 0
    except SystemExit as done:
        code = done.code or 0
    except BaseException:
        code = traceback.format_exc()
    results[path] = [code, out.getvalue()]
print(json.dumps(results))
"""


def test_every_script_says_how_to_use_it():
    """``--help`` works for every script (the reproduction script once crashed before its parser was built); the
    Python scripts run in one interpreter, one after another (most import torch first: ~2 s each on their own)."""
    names = sorted(p.name for p in SCRIPTS.iterdir() if p.suffix in (".py", ".sh"))
    shells = [n for n in names if n.endswith(".sh")]
    proc = subprocess.run([sys.executable, "-c", HELP_DRIVER, *(str(SCRIPTS / n) for n in names if n.endswith(".py"))],
                          capture_output=True, text=True, timeout=300, cwd=SCRIPTS.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {Path(path).name: (code, out) for path, (code, out) in json.loads(proc.stdout.splitlines()[-1]).items()}
    for name in shells:
        shell = subprocess.run(["bash", str(SCRIPTS / name), "--help"], capture_output=True, text=True, timeout=60)
        results[name] = (shell.returncode if "Traceback" not in shell.stderr else shell.stderr, shell.stdout)
    assert sorted(results) == names
    for name, (code, out) in results.items():
        assert code == 0, (name, code)
        assert len(out.splitlines()) >= 2, name


def test_the_reproduction_script_makes_its_table_with_tiny_networks(tmp_path, real_frames, capsys):
    """End to end on a CPU: the published protocol, the published output and clamps, lvtino and TV (each cell is
    restored in its own process: ~5 s of imports each, so one problem here; every problem's schedule is checked
    against the published code in test_published.py)."""
    out = tmp_path / "table"
    args = [str(real_frames), "-o", str(out), "--models", "tiny", "--priors", "lvtino", "tv", "--problems", "C",
            "--frames-c", "9", "--size", "96x64", "--device", "cpu"]
    from reproduce_paper import main as reproduce  # in this process (each cell is restored in its own anyway)

    reproduce(args)
    printed = capsys.readouterr().out
    rows = list(csv.DictReader((out / "benchmark.csv").open()))
    ours = [r for r in rows if r["source"] == "this run"]
    assert sorted((r["problem"], r["method"].split(",")[0]) for r in ours) == [("C", "lvtino"), ("C", "tv")]
    assert {r["protocol"] for r in ours} == {"published"}
    assert {r["nfe"] for r in ours if r["method"].startswith("lvtino")} == {"5"}  # the published 3 + 2 sweeps
    for r in ours:
        assert 5 < float(r["psnr"]) < 60 and 5 < float(r["psnr_clip"]) < 60 and 0 < float(r["ssim"]) <= 1
        if r["method"].startswith("lvtino"):
            assert "clamp published" in r["method"] and "output prior" in r["method"]
    assert {r["method"] for r in rows if r["source"] != "this run"} >= {"LVTINO (paper)", "ADMM-TV (paper)"}
    assert "| published | C |" in printed
    from lvtino.video.reader import probe
    cells = out / "9-frames-prior-published" / "cells" / "C"
    measured = probe(next(cells.iterdir()) / "measured.mkv")
    assert measured.bits == 16 and measured.metadata["protocol"] == "published"
    reproduce(args)  # finished cells are reused
    assert capsys.readouterr().out.count(": reused") == 2


def test_the_reproduction_script_refuses_bad_options_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPTS / "reproduce_paper.py"), str(tmp_path / "missing"), "-o",
                           str(tmp_path / "t"), "--models", "tiny", "--device", "cpu"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing" in proc.stderr
    assert not (tmp_path / "t").exists()


def test_the_gpu_session_script_is_valid_shell():
    path = SCRIPTS / "gpu_session.sh"
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def gpu_session(tmp_path, **env) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    environment = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", str(SCRIPTS / "gpu_session.sh")], capture_output=True, text=True, timeout=400,
                          cwd=SCRIPTS.parent, env=environment)


STEPS = ["cuda-vs-cpu", "B", "A", "torchrun", "B-offload", "tv", "C"]


def rehearsal(tmp_path, steps: str) -> tuple[subprocess.CompletedProcess, dict, list[str]]:
    """The session on this CPU with the tiny networks, running ``steps`` (GPU_SESSION_STEPS): its exit, summary
    and printed lines, once the three files it leaves are checked."""
    proc = gpu_session(tmp_path, GPU_SESSION_REHEARSAL="1", GPU_SESSION_DEVICE="cpu", GPU_SESSION_STEPS=steps)
    assert proc.returncode == 0, proc.stdout[-3000:]
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == ["session.txt", "steps.log", "summary.json"]  # the tool returns 8
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [s["key"] for s in summary["steps"]] == STEPS  # every step recorded, run or not
    for s in summary["steps"]:
        assert s["exit"] == (0 if s["key"] in steps.split() else "not selected"), s
    assert len(proc.stdout) < 4000  # far inside the 12,000 characters the device tool returns
    return proc, {s["key"]: s for s in summary["steps"]}, proc.stdout.splitlines()


def test_gpu_session_rehearsal_of_the_sampler_checks_keeps_their_figures(tmp_path):
    """The tiny networks against the CPU (zero difference on the same path) and Problem C's timed run; the table
    names only the steps that ran."""
    proc, steps, printed = rehearsal(tmp_path, "cuda-vs-cpu C")
    assert steps["cuda-vs-cpu"]["figures"]["max_diff"] == 0
    run = steps["C"]["figures"]["runs"][-1]
    assert run["nfe"] == 5 and {"video_model", "image_model", "video_vae_decode", "data_steps"} <= set(run["stages"])
    first = next(k for k, line in enumerate(printed) if line.startswith("device: cpu (rehearsal)"))
    assert printed[first + 1].startswith("job") and printed[first + 2].startswith("Problem C 9x48x32")
    assert " 5 " in printed[first + 2] and printed[first + 3].startswith("1. tiny networks")
    assert len(printed) - first == 4
    assert "NFE 5 (3 video + 2 image sweeps)" in (tmp_path / "out" / "steps.log").read_text()


def test_gpu_session_rehearsal_of_torchrun_keeps_its_figures(tmp_path):
    _, steps, _ = rehearsal(tmp_path, "torchrun")
    assert steps["torchrun"]["figures"]["processes"] == 2 and steps["torchrun"]["figures"]["windows"] >= 2


def test_gpu_session_rehearsal_of_tv_keeps_its_figures(tmp_path):
    """(Steps B and A run the script step C runs, on other problems: their schedules are test_published's.)"""
    _, steps, _ = rehearsal(tmp_path, "tv")
    assert steps["tv"]["figures"]["max_diff"] == 0 and steps["tv"]["figures"]["frames"] == 16


def test_gpu_session_refuses_an_unknown_step_in_one_line(tmp_path):
    proc = gpu_session(tmp_path, GPU_SESSION_REHEARSAL="1", GPU_SESSION_DEVICE="cpu", GPU_SESSION_STEPS="B D")
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == [
        "gpu_session: GPU_SESSION_STEPS: unknown step D (the steps: cuda-vs-cpu B A torchrun B-offload tv C)"]


def test_gpu_session_stops_in_one_line_without_its_wheels(tmp_path):
    (tmp_path / "wheels").mkdir()
    proc = gpu_session(tmp_path, WHEELS=str(tmp_path / "wheels"))
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == [f"gpu_session: no diffusers wheel in {tmp_path / 'wheels'}: run "
                                                "'bash scripts/gpu_prepare.sh' here and carry .whl"]
    assert len(list((tmp_path / "out").iterdir())) <= 8
    json.loads((tmp_path / "out" / "summary.json").read_text())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_session_stops_at_once_without_a_gpu(tmp_path):
    proc = gpu_session(tmp_path, GPU_SESSION_REHEARSAL="1")
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == [
        "gpu_session: no CUDA device (torch.cuda.is_available() is False): nothing to measure here"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["steps"] == []


def test_gpu_session_stops_when_a_package_does_not_import(tmp_path):
    """A Python without diffusers (an install that went wrong): one line, not a session of failing steps."""
    bare = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    proc = gpu_session(tmp_path, GPU_SESSION_REHEARSAL="1", GPU_SESSION_DEVICE="cpu", PYTHON=str(bare / "bin" /
                                                                                                "python"))
    assert proc.returncode == 1
    assert proc.stdout.strip().splitlines() == [
        "gpu_session: the packages do not import: ModuleNotFoundError: No module named 'diffusers'"]


def test_bench_streaming_prints_its_table():
    out = script("bench_streaming.py", "--frames", "48", "--size", "32x48", "--scales", "1,2", "--hour", "400")
    assert "peak RSS 2x / 1x" in out and "outside the prior / plain decode+encode" in out
    assert "plan of an hour" in out and "degrade, Problem A" in out


def test_bench_speed_prints_its_ratios(real_frames):
    """On 11 street frames (skipped with its reason where they are absent): every row and ratio printed."""
    out = script("bench_speed.py", "--repeat", "1", "--frames", "11", "--no-compile")  # compiled: test_solvers
    assert "lvtino tv / minterpolate" in out and "outside the prior / plain decode + encode" in out
    assert "PDHG iteration on [1, 3, 8, 360, 640]" in out and "ffmpeg minterpolate (PyAV graph)" in out


def test_bench_formats_prints_a_row_per_format_and_depth(real_frames):
    """On 3 street frames: one row per writable format and depth, lossless ones read back exactly."""
    from lvtino.video.formats import FORMATS

    out = script("bench_formats.py", "--count", "3")
    rows = [line.split() for line in out.splitlines()[2:]]
    expected = {(n, str(b)) for n, f in FORMATS.items() if f.available() is None
                for b in {min(f.depths), max(f.depths)}}
    assert {(r[0], r[1]) for r in rows} == expected
    assert all(r[-1] == "inf" for r in rows if FORMATS[r[0]].lossless)
    assert all(30 < float(r[-1]) < 80 for r in rows if not FORMATS[r[0]].lossless)


def test_the_real_footage_benchmarks_sharpness_measures():
    """GMSD is 0 for the frames themselves and grows with blur; the gradient ratio is 1 and falls with blur."""
    import torch.nn.functional as F

    from bench_real_footage import gmsd, gradient_ratio

    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 96, dtype=torch.float64)
    soft = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(gmsd(x, x), torch.zeros(2, dtype=torch.float64)) and gradient_ratio(x, x) == 1
    assert (gmsd(soft, x) > 0.02).all() and gradient_ratio(soft, x) < 0.7
