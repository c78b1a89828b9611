"""``lvtino benchmark``: the paper's protocol on your clips, one table of every prior on every problem.

For each clean clip (a portion chosen by ``--start``, ``--frames`` and ``--size``),
each problem and each prior: degrade (noise 0.001, as the paper), restore the
clip whole (one window, as the paper), evaluate. The table averages the clips per (prior, problem) and sits beside the
paper's published numbers (the paper's Table 1, arXiv 2510.01339), labelled as the paper's: other
footage, 1280x768, a GPU. Every cell keeps its files under ``OUT/cells``;
a rerun reuses each cell whose settings are unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lvtino.errors import UserError, arg, said
from lvtino.files import MARKER, claiming, remove_tree, write_json, write_text_atomic
from lvtino.metrics.evaluate import evaluate
from lvtino.pipeline.degrade import DegradeRequest, degrade
from lvtino.models.options import ModelOptions
from lvtino.pipeline.catalog import networks_of
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.pipeline.digest import input_identity
from lvtino.validation import whole
from lvtino.video.reader import probe, read_frames
from lvtino.video.writer import VideoWriter

# Adobe240 at 1280x768 (the paper's Table 1, arXiv 2510.01339): NFE, FVMD, PSNR, SSIM, LPIPS
PAPER = {
    "A": {"LVTINO": (9, 371.1, 27.25, 0.837, 0.249), "VISION-XL": (8, 1141, 26.03, 0.672, 0.439),
          "ADMM-TV": (None, 427.6, 18.04, 0.767, 0.297)},
    "B": {"LVTINO": (9, 42.65, 24.91, 0.741, 0.370), "VISION-XL": (8, 82.92, 26.18, 0.749, 0.468),
          "ADMM-TV": (None, 128.2, 21.18, 0.644, 0.452)},
    "C": {"LVTINO": (7, 602.5, 23.11, 0.697, 0.411), "VISION-XL": (8, 1604, 23.38, 0.652, 0.520),
          "ADMM-TV": (None, 1645, 18.15, 0.663, 0.439)},
}
# 25 frames at 1280x768 on one GPU: seconds, peak GB
PAPER_COST = {"LVTINO": (132, 35.2), "VISION-XL": (176, 15.6), "ADMM-TV": (13.6, 22.0)}
COLUMNS = ("method", "protocol", "problem", "clips", "nfe", "psnr", "psnr_clip", "ssim", "lpips", "warping_error",
           "flicker", "seconds", "peak_memory_mb")


@dataclass(frozen=True)
class Cell:
    clip: Path
    problem: str
    prior: str


def prepare_clip(source: str | Path, folder: Path, start: int, frames: int | None,
                 size: tuple[int, int] | None, accept_truncated: bool = False) -> Path:
    """The portion of a clean clip the benchmark uses, written losslessly (reused when present)."""
    info = probe(source, accept_truncated=accept_truncated)
    end = info.frames if frames is None else start + frames
    if not 0 <= start < end <= info.frames:
        raise UserError(f"{source}: has {info.frames} frames; {said('start', start)} {said('frames', frames)} asks for "
                        f"frames {start}..{end - 1}")
    name = Path(source).stem if Path(source).is_file() else Path(source).name
    tag = f"{start}-{end}" + (f"-{size[1]}x{size[0]}" if size else "")
    path = folder / f"{name}-{tag}.mkv"
    if not path.exists():
        with VideoWriter(path, info.fps) as writer:
            for f in read_frames(info, start, end):
                if size and f.shape[:2] != size:
                    f = np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.BICUBIC))
                writer.write(f)
    return path


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_cell(cell: Cell, out: Path, models: ModelOptions, device: str, seed: int, noise_std: float,
             echo=print, protocol: str = "lvtino") -> dict:
    """Degrade, restore and evaluate one (clip, problem, prior); reuse the result when nothing changed.
    ``protocol`` published: the published code's measurement (``degrade``), its own noise rules."""
    folder = out / "cells" / cell.problem / cell.clip.stem
    folder.mkdir(parents=True, exist_ok=True)
    key = {"clip": input_identity(cell.clip)["digest"], "problem": cell.problem, "prior": cell.prior,
           "models": models.models if _generative(cell.prior) else None, "seed": seed,
           "output": models.output if _generative(cell.prior) else None,
           "clamp": models.clamp if _generative(cell.prior) else None,
           "noise_std": noise_std, "protocol": protocol, "window": "whole clip"}
    done = folder / f"{cell.prior}.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("key") == _digest(key):
            echo(f"  {cell.problem} {cell.clip.stem} {cell.prior}: reused")
            return saved
    measured = folder / "measured.mkv"
    degrade(DegradeRequest(cell.clip, measured, problem=cell.problem, seed=seed, overwrite="yes", protocol=protocol,
                           noise_std=None if protocol == "published" else noise_std))
    restored = folder / f"{cell.prior}.mkv"
    stats = _restore_alone(measured, restored, folder / f"{cell.prior}.stats.json", cell.prior, models, device, seed,
                           probe(cell.clip).frames)
    metrics = evaluate(restored, cell.clip)
    result = {"key": _digest(key), "clip": str(cell.clip), "problem": cell.problem, "prior": cell.prior,
              "protocol": protocol,
              "stats": {k: v for k, v in stats.items() if k != "config"}, "metrics": metrics}
    write_json(done, result)
    echo(f"  {cell.problem} {cell.clip.stem} {cell.prior}: PSNR {metrics['psnr']:.2f} dB, SSIM "
         f"{metrics['ssim']:.4f}, {stats['seconds']:.1f} s")
    return result


def _restore_alone(measured: Path, restored: Path, stats: Path, prior: str, models: ModelOptions, device: str,
                   seed: int, frames: int) -> dict:
    """``lvtino restore`` in a process of its own, so that its peak memory is its own; the clip is restored
    whole (one window as long as the clip), as the paper's protocol."""
    args = [sys.executable, "-m", "lvtino", "restore", str(measured), "-o", str(restored), "--prior", prior,
            "--device", device, "--seed", str(seed), "--window", str(frames), "--overlap", "0", "--stats", str(stats),
            "--dtype", models.dtype, "--offload", models.offload, "-y"]
    if models.models:
        args += ["--models", models.models]
    if models.output and _generative(prior):
        args += ["--set", f"sampler.output={models.output}"]
    if models.clamp and _generative(prior):
        args += ["--set", f"sampler.clamp={models.clamp}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["(it printed nothing)"]
        cause = lines[-1].removeprefix('lvtino: error: ')
        if proc.returncode < 0 or not lines[-1].startswith("lvtino: error: "):  # killed, or a crash: say how
            cause = f"exit code {proc.returncode}" + (" (killed: out of memory?)" if proc.returncode == -9 else "") \
                + "; its last lines:\n" + "\n".join(lines[-5:])
        raise UserError(f"benchmark cell {restored}: {cause}")
    return json.loads(stats.read_text())


def _generative(prior: str) -> bool:
    return bool(networks_of(prior))


def _method(prior: str, models: ModelOptions) -> str:
    if not _generative(prior):
        return prior
    method = prior
    if models.output:
        method = f"{method}, output {models.output}" + (" (as published)" if models.output == "prior" else "")
    if models.clamp:
        method = f"{method}, clamp {models.clamp}"
    if models.models == "tiny":
        return f"{method} (tiny random models: code-path check, not quality)"
    return method


def summarise(results: list[dict], models: ModelOptions) -> list[dict]:
    """One row per (prior, problem): the mean over clips."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["prior"], r["problem"], r.get("protocol", "lvtino")), []).append(r)
    rows = []
    for (prior, problem, _), rs in groups.items():
        mean = lambda get: (float(np.mean(v)) if (v := [x for x in map(get, rs) if x is not None]) else None)  # noqa
        rows.append({"method": _method(prior, models), "protocol": rs[0].get("protocol", "lvtino"),
                     "problem": problem, "clips": len(rs), "nfe": rs[0]["stats"]["nfe"]["total"] or None,
                     "psnr": mean(lambda r: r["metrics"]["psnr"]),
                     "psnr_clip": mean(lambda r: r["metrics"]["psnr_global"]),
                     "ssim": mean(lambda r: r["metrics"]["ssim"]),
                     "lpips": mean(lambda r: r["metrics"]["lpips"]),
                     "warping_error": mean(lambda r: r["metrics"]["warping_error"]),
                     "flicker": mean(lambda r: r["metrics"]["flicker"]),
                     "seconds": mean(lambda r: r["stats"]["seconds"]),
                     "peak_memory_mb": mean(lambda r: r["stats"]["peak_memory_mb"])})
    return rows


def _cell(value, digits=4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.{digits}g}"
    return str(value)


def paper_rows(problems: list[str]) -> list[dict]:
    rows = []
    for problem in problems:
        for method, (nfe, fvmd, p, s, lp) in PAPER.get(problem, {}).items():
            secs, gb = PAPER_COST[method]
            rows.append({"method": f"{method} (paper)", "problem": problem, "nfe": nfe, "fvmd": fvmd, "psnr": p,
                         "ssim": s, "lpips": lp, "seconds": float(secs), "peak_memory_mb": gb * 1024})
    return rows


def write_tables(out: Path, rows: list[dict], problems: list[str], clips: list[Path]) -> dict[str, Path]:
    """benchmark.csv, benchmark.md and benchmark.html in ``out``."""
    paper = paper_rows(problems)
    header = list(COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header + ["fvmd", "source"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows([{**r, "source": "this run"} for r in rows])
    writer.writerows([{**r, "source": "paper: Adobe240 1280x768, other clips, a GPU (seconds, memory: 25 "
                                      "frames)"} for r in paper])
    write_text_atomic(out / "benchmark.csv", buffer.getvalue())
    clip_names = ", ".join(c.name for c in clips)
    md = [f"Clips: {clip_names}. Means over clips. protocol: how the measurements were made (lvtino: noise 0.001 "
          "in float64, 8-bit files; published: the published code's, bfloat16 ground truth and y, no noise in C, "
          "16-bit files). psnr is the mean of the frames' PSNR, psnr_clip the PSNR of the clip's mean squared "
          "error (the published code's).", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    md += ["| " + " | ".join(_cell(r.get(c)) for c in header) + " |" for r in rows]
    md += ["", "The paper's published numbers (the paper's Table 1, arXiv 2510.01339): Adobe240 at 1280x768, "
           "another set of clips, one GPU; seconds and memory for 25 frames. FVMD is the paper's motion metric. "
           "Not comparable cell by cell with the rows above.", "",
           "| method | problem | nfe | fvmd | psnr | ssim | lpips | seconds | peak_memory_mb |", "|" + "---|" * 9]
    md += ["| " + " | ".join(_cell(r.get(c)) for c in ("method", "problem", "nfe", "fvmd", "psnr", "ssim", "lpips",
                                                       "seconds", "peak_memory_mb")) + " |" for r in paper]
    write_text_atomic(out / "benchmark.md", "\n".join(md) + "\n")
    th = "".join(f"<th>{c}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in header) + "</tr>"
                   for r in rows)
    pcols = ("method", "problem", "nfe", "fvmd", "psnr", "ssim", "lpips", "seconds", "peak_memory_mb")
    pbody = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in pcols) + "</tr>"
                    for r in paper)
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lvtino benchmark</title><style>"
            "body{font:15px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid "
            "#ccc;padding:4px 8px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}"
            ".paper td{color:#666}</style></head><body><h1>lvtino benchmark</h1>"
            f"<p>Clips: {html.escape(clip_names)}; means over clips. protocol: how the measurements were made "
            "(lvtino: noise 0.001 in float64, 8-bit files; published: the published code's). psnr: mean of the "
            "frames' PSNR; psnr_clip: PSNR of the clip's mean squared error (the published code's).</p>"
            f"<table><tr>{th}</tr>{body}</table>"
            "<h2>The paper's published numbers</h2><p>Adobe240 at 1280x768, another set of clips, one GPU; seconds "
            "and memory for 25 frames; FVMD is the paper's motion metric. Not comparable cell by cell.</p>"
            f"<table class='paper'><tr>{''.join(f'<th>{c}</th>' for c in pcols)}</tr>{pbody}</table>"
            "</body></html>\n")
    write_text_atomic(out / "benchmark.html", page)
    return {k: out / f"benchmark.{k}" for k in ("csv", "md", "html")}


@claiming
def run_benchmark(clips: list[str], problems: list[str], priors: list[str], out: str | Path,
                  frames: int | None = None, size: tuple[int, int] | None = None, start: int = 0,
                  models: ModelOptions | None = None, device: str = "cpu", seed: int = 0,
                  noise_std: float = 0.001, echo=print, accept_truncated: bool = False,
                  protocol: str = "lvtino") -> tuple[list[dict], dict]:
    """Every (clip, problem, prior) cell, and the tables. Finished cells are kept (and reused) even when a later
    one fails; a benchmark folder that this call created and that holds no finished cell is removed."""
    out = Path(out)
    if frames is not None:
        whole(1, None).parse(frames, arg("frames"))
    whole(0, None).parse(start, arg("start"))
    for clip in clips:  # every clip is checked before anything is written
        info = probe(clip, accept_truncated=accept_truncated)
        end = info.frames if frames is None else start + frames
        if not 0 <= start < end <= info.frames:
            raise UserError(f"{clip}: has {info.frames} frames; {said('start', start)} {said('frames', frames)} "
                            f"asks for frames {start}..{end - 1}")
    check_outputs([Output(arg("output"), out, "folder")], [("the clip", c) for c in clips], overwrite="yes")
    if out.is_dir() and any(out.iterdir()) and _kind(out) != "benchmark":
        raise UserError(f"-o {out}: holds another lvtino folder ({_kind(out)}), not a benchmark")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"lvtino": "benchmark"}) + "\n")
    try:
        return _run(clips, problems, priors, out, frames, size, start, models or ModelOptions(), device, seed,
                    noise_std, echo, accept_truncated, protocol)
    except BaseException:
        if created and not any(not p.name.endswith(".stats.json") for p in (out / "cells").rglob("*.json")):
            # nothing finished: leave nothing behind
            remove_tree(out)
        raise


def _kind(folder: Path) -> str | None:
    try:
        return json.loads((folder / MARKER).read_text()).get("lvtino")
    except (OSError, ValueError, AttributeError):
        return None


def _run(clips, problems, priors, out: Path, frames, size, start, models: ModelOptions, device, seed, noise_std,
         echo, accept_truncated, protocol) -> tuple[list[dict], dict]:
    (out / "clips").mkdir(parents=True, exist_ok=True)
    prepared = [prepare_clip(c, out / "clips", start, frames, size, accept_truncated) for c in clips]
    results = []
    for problem in problems:
        for clip in prepared:
            for prior in priors:
                results.append(run_cell(Cell(clip, problem, prior), out, models, device, seed, noise_std, echo,
                                        protocol))
    rows = summarise(results, models)
    return rows, write_tables(out, rows, problems, prepared)
