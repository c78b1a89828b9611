"""The quality report: its baseline row, before/after animation and frame notes, and the page as a browser
lays it out (headless Chromium: legend colours, crops in one row at 1280 px)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import smooth_frames, write_video
from lvtino.cli import main
from lvtino.metrics.fidelity import psnr
from lvtino.video.player import naive_upsample
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import probe, read_frames


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    clean = write_video(tmp / "clean.mkv", smooth_frames(12, 64, 96), fps=Fraction(30), codec="ffv1")
    assert main(["degrade", str(clean), "-o", str(tmp / "y.mkv"), "--problem", "sr2"]) == 0
    assert main(["restore", str(tmp / "y.mkv"), "-o", str(tmp / "x.mkv"), "--stats", str(tmp / "s.json"),
                 "--set", "tv.iterations=20"]) == 0
    assert main(["evaluate", str(tmp / "x.mkv"), "--reference", str(clean), "--degraded", str(tmp / "y.mkv"),
                 "--stats", str(tmp / "s.json"), "--report", str(tmp / "report"), "--json", str(tmp / "m.json")]) == 0
    return tmp


def test_baseline_row_is_the_players_picture_against_the_reference(report):
    page = (report / "report" / "index.html").read_text()
    clean = np.stack(list(read_frames(probe(report / "clean.mkv"))))
    y = frames_to_tensor(read_frames(probe(report / "y.mkv")))
    player = np.stack(list(tensor_to_frames(naive_upsample(y, (1, 2, 2), (12, 64, 96)))))  # the player's picture
    unit = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double() / 255  # noqa: E731
    want = float(psnr(unit(player), unit(clean)).mean())
    restored = json.loads((report / "m.json").read_text())["psnr"]
    assert f"<td>{want:.2f}</td>" in page and f"{restored - want:+.2f}" in page
    assert "id=\"baseline\"" in page and "gain of restoring" in page


def test_the_demo_and_its_report_give_one_baseline(tmp_path, capsys):
    """The player's picture is defined once: the demo's metrics.json, its terminal line and its report's baseline
    row give the same PSNR for it."""
    clip = write_video(tmp_path / "clip.mkv", smooth_frames(9, 64, 96), fps=Fraction(30), codec="ffv1")
    assert main(["demo", "--input", str(clip), "--frames", "9", "-o", str(tmp_path / "demo")]) == 0
    said = capsys.readouterr().out
    naive = json.loads((tmp_path / "demo" / "metrics.json").read_text())["naive"]["psnr"]
    page = (tmp_path / "demo" / "report" / "index.html").read_text()
    row = re.search(r"as a player shows it[^<]*</td><td>([0-9.]+)</td>", page)
    assert row is not None and row.group(1) == f"{naive:.2f}"
    assert f"naive upsampling PSNR {naive:.2f} dB" in said


def test_before_after_loops_and_paths_are_names(report):
    with Image.open(report / "report" / "images" / "before-after.webp") as im:
        assert im.n_frames == 12 and im.size == (2 * 64, 64)  # degraded | restored, every frame
    page = (report / "report" / "index.html").read_text()
    assert "x.mkv against clean.mkv" in page and str(report) not in page  # no temporary or absolute paths


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (.ci/run installs it)")
def test_the_page_in_a_browser(report, tmp_path):
    """At 1280 px: every image decodes, each legend entry has its line's colour, each frame's crops in one row."""
    page = (report / "report" / "index.html").read_text()
    probe_js = ("<script>window.addEventListener('load',function(){"
                "var f=Array.prototype.map.call(document.querySelectorAll('svg .legend'),function(e){"
                "return getComputedStyle(e).fill;});"
                "var r=Array.prototype.map.call(document.querySelectorAll('#crops .row'),function(x){"
                "var t=Array.prototype.map.call(x.querySelectorAll('img'),function(i){"
                "return Math.round(i.getBoundingClientRect().top);});"
                "return t.length+':'+(t.every(function(v){return v===t[0];})?'one':'wrapped');});"
                "document.body.setAttribute('data-legend',f.join('|'));"
                "document.body.setAttribute('data-rows',r.join(','));});</script></body>")
    check = report / "report" / "check.html"
    check.write_text(page.replace("</body>", probe_js))
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                          "--virtual-time-budget=3000", "--dump-dom", check.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    check.unlink()
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    images = attrs["data-images"].split("/")
    assert images[0] == images[1] and int(images[0]) >= 10
    legend = attrs["data-legend"].split("|")
    assert legend[:2] == ["rgb(31, 119, 180)", "rgb(214, 39, 40)"]  # RGB blue, Y red: not the grey of the text
    assert attrs["data-rows"].split(",") == ["3:one"] * 3
