"""The memory plan of a generative restoration (``restore --dry-run``): where each network sits, expected peak."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.pipeline import memory


def test_plan_counts_the_real_networks_and_each_offload_mode():
    params = memory.parameters()
    assert 1.2e9 < params["video transformer"] < 1.5e9 and 2.4e9 < params["image UNet"] < 2.7e9
    kw = dict(kinds=["video", "image"], frames=25, height=768, width=1280, prompts_cached=True)
    plain, model, group = (memory.plan(offload=o, **kw) for o in ("none", "model", "group"))
    peak = lambda stages: max(s.peak_gb for s in stages)  # noqa: E731
    assert peak(group) <= peak(model) < peak(plain)  # the Wan VAE decode, whole in both, sets the peak
    stage = lambda stages, name: next(s for s in stages if s.name == name)  # noqa: E731
    assert stage(group, "video transformer").weights_gb < stage(model, "video transformer").weights_gb / 10
    weights = sum(params.values()) * 2 / 1e9
    assert all(s.weights_gb == pytest.approx(weights) for s in plain)  # every network resident
    unet = next(s for s in model if s.name == "image UNet")
    assert unet.on_device == ["image UNet"] and unet.weights_gb == pytest.approx(params["image UNet"] * 2 / 1e9)
    cold = memory.plan(offload="model", **{**kw, "prompts_cached": False})
    assert cold[0].name.startswith("encode the video prompt") and cold[0].weights_gb > 10  # UMT5-XXL in bf16
    assert len(cold) == len(model) + 2


def test_dry_run_prints_the_plan_writes_nothing_and_checks_the_weights(tmp_path, capsys):
    """The plan of a generative run is printed; the weights this machine lacks end it in one error line (exit 2),
    as the run would stop; the tiny networks and the TV prior need none."""
    clean = write_video(tmp_path / "c.mkv", smooth_frames(9, 64, 96), codec="ffv1")
    y = tmp_path / "y.mkv"
    assert main(["degrade", str(clean), "-o", str(y), "--problem", "sr2"]) == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mp4"), "--prior", "lvtino", "--dry-run",
                 "--offload", "none"]) == 2
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("lvtino: error:")]
    assert len(errors) == 1 and errors[0].startswith("lvtino: error: model weights missing: ")
    assert "plan: 9 frames of 96x64" in out and "nothing written" in out
    assert "video transformer" in out and "expected peak" in out
    # on a CPU the networks share the process's memory: what it holds already is in the plan (interpreter, torch)
    held = re.search(r"what this process holds\s+([\d.]+) GB", out)
    assert held and 0.1 < float(held.group(1)) < 5
    assert re.search(r"freed blocks kept for reuse\s+1.1 GB", out)  # the CLI's allocator setting (1 GiB)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mp4"), "--prior", "lvtino", "--models", "tiny",
                 "--dry-run"]) == 0
    assert "weights missing" not in capsys.readouterr().err
    assert main(["restore", str(y), "-o", str(tmp_path / "x.mp4"), "--dry-run"]) == 0
    assert "expected peak" not in capsys.readouterr().out  # the TV prior has no networks


def test_the_process_memory_figures_follow_an_allocation():
    """What the CPU plan adds (VmRSS) and what stats report (VmHWM) move with memory this process touches (in a
    fresh interpreter: this one's allocator may hold freed pages that an allocation reuses)."""
    code = """if True:
        import numpy as np
        from lvtino.runtime import available_memory, peak_resident_memory, resident_memory
        before = resident_memory()
        block = np.ones(200 * 2**20, dtype=np.uint8)  # 200 MiB, every page touched
        grown = resident_memory() - before
        del block
        print(grown, peak_resident_memory() - before, resident_memory() - before, available_memory())
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    grown, peak, after, free = map(int, out.split())
    assert 180 * 2**20 < grown < 260 * 2**20 and peak > 180 * 2**20  # the high-water mark keeps the 200 MiB
    assert after < 50 * 2**20 and free > 0  # let go: resident again as before


def test_the_expected_peak_adds_what_the_process_holds():
    stages = memory.plan(["image"], 8, 256, 256, prompts_cached=True)
    process = {"what this process holds": 0.6, "freed blocks kept for reuse": 1.07}
    alone, shared = memory.as_facts(stages), memory.as_facts(stages, process)
    assert shared["expected_peak_gb"] == pytest.approx(alone["expected_peak_gb"] + 1.67, abs=0.01)
    assert shared["process_gb"] == process and alone["process_gb"] == {}
    lines = memory.describe(stages, process)
    assert len(lines) == len(stages) + 3 and "freed blocks kept for reuse" in lines[-2]
    assert f"expected peak {alone['expected_peak_gb'] + 1.67:.1f} GB" in lines[-1]
