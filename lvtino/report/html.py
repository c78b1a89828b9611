"""The quality report of one restoration: a self-contained HTML page and its images, in one folder.

Sections: the metric table, with the degraded input as a player shows it as a
baseline and the gain of restoring; per-frame PSNR, SSIM and warping error
(inline SVG) and a sentence on frames that stand out; side-by-side crops of the
degraded input (upsampled as a player shows it), the restoration and the
reference for a few frames, and a looping before/after animation of the crop; an
x-t slice of each (one image row across time: flicker and temporal blur show at a
glance); and the run's own facts when its ``--stats`` JSON is given. The page is
built from ``templates/report.html`` (jinja2, autoescaped); images are PNG and
WebP files in ``images/`` beside ``index.html``; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lvtino.files import atomic_folder
from lvtino.metrics.fidelity import psnr, ssim
from lvtino.report.plots import line_plot
from lvtino.video.reader import probe, read_frames

CROP = 192  # side of the square crops, in reference pixels (less for smaller frames)
ANIMATION_FRAMES = 48  # frames of the before/after loop
JUMP_DB = 3.0  # a frame whose PSNR lies this far from the clip's median is named


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def _save(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _player(info, count: int, width: int, height: int):
    """What a player shows of the degraded input at the output's frame count and size (``video.player``'s
    player's picture, the one the demo, the fit line and the benchmarks use): with the factors of the operator
    the input records, else the nearest whole ratios of the sizes."""
    from lvtino.physics.problems import chain_factors
    from lvtino.video.player import player_factors, player_frames

    shape = (count, height, width)
    try:
        factors = chain_factors(info.metadata["operator"])
    except (KeyError, ValueError):  # no recorded operator, or one that is not valid: the sizes say it
        factors = player_factors((info.frames, info.height, info.width), shape)
    return player_frames(read_frames(info), factors, shape)


def _frames(path, count: int, width: int, height: int, upsample: bool):
    info = probe(path)
    if upsample:
        yield from _player(info, count, width, height)
        return
    for f in read_frames(info, 0, min(count, info.frames)):
        yield f if f.shape[:2] == (height, width) else np.asarray(Image.fromarray(f).resize((width, height),
                                                                                          Image.BICUBIC))


def _unit(f: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(f)).permute(2, 0, 1).unsqueeze(0).double() / 255


def write_report(folder: str | Path, evaluation: dict, degraded: str | Path | None = None,
                 stats: dict | None = None, frames_shown: int = 3) -> Path:
    """Write ``folder/index.html`` and ``folder/images/*`` (the whole folder at once, replacing an earlier
    report); return the page's path."""
    with atomic_folder(folder, "report") as tmp:
        _write_report(tmp, evaluation, degraded, stats, frames_shown)
    return Path(folder) / "index.html"


def _write_report(folder: Path, evaluation: dict, degraded, stats, frames_shown: int) -> None:
    import jinja2

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    n, w, h = evaluation["frames"], evaluation["width"], evaluation["height"]
    picks = sorted({0, n // 2, n - 1} if frames_shown >= 3 else {n // 2})
    row, side = h // 2, min(CROP, w, h)
    cx, cy = (w - side) // 2, (h - side) // 2
    names = (["degraded"] if degraded is not None else []) + ["restored", "reference"]
    paths = {"degraded": degraded, "restored": evaluation["restored"], "reference": evaluation["reference"]}
    streams = {name: _frames(paths[name], n, w, h, name == "degraded") for name in names}
    rows = {name: [] for name in names}
    loop = []  # (degraded crop | restored crop) pairs of the first frames
    baseline = {"psnr": [], "ssim": []}
    for t in range(n):
        frames = {name: next(streams[name], None) for name in names}
        if any(f is None for f in frames.values()):
            break
        for name, f in frames.items():
            rows[name].append(f[row].copy())
            if t in picks:
                _save(f[cy:cy + side, cx:cx + side], images / f"crop-{name}-{t:05d}.png")
        if degraded is not None:
            ref, naive = _unit(frames["reference"]), _unit(frames["degraded"])
            baseline["psnr"].append(float(psnr(naive, ref)[0]))
            baseline["ssim"].append(float(ssim(naive, ref)[0]) if min(h, w) >= 11 else float("nan"))
            if t < ANIMATION_FRAMES:
                loop.append(np.concatenate([frames["degraded"][cy:cy + side, cx:cx + side],
                                            frames["restored"][cy:cy + side, cx:cx + side]], axis=1))
    for name in names:
        _save(np.stack(rows[name]), images / f"xt-{name}.png")
    animation = _animation(loop, images, float(probe(paths["restored"]).fps)) if len(loop) > 1 else None
    env = jinja2.Environment(loader=jinja2.PackageLoader("lvtino.report", "templates"), autoescape=True)
    page = env.get_template("report.html").render(
        restored=Path(evaluation["restored"]).name, reference=Path(evaluation["reference"]).name, n=n, w=w, h=h,
        written=f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}", note=(stats or {}).get("models_note"),
        metrics=_metrics(evaluation), notes=evaluation.get("notes", []),
        baseline=_baseline(baseline, evaluation) if degraded is not None or "guide" in evaluation else None,
        plots=_plots(evaluation), jumps=_jumps(evaluation), picks=picks, side=side, degraded=degraded is not None,
        crops=[(t, names) for t in picks], animation=animation, row=row, slices=names,
        xt_scale=max(1, min(4, 240 // max(1, n))), **_run(stats))
    (folder / "index.html").write_text(page)


def _animation(loop: list[np.ndarray], images: Path, fps: float) -> str:
    """A looping animated WebP of the before/after crops (PNG of the first pair where WebP is not built in)."""
    from PIL import features

    frames = [Image.fromarray(f) for f in loop]
    if features.check("webp"):
        frames[0].save(images / "before-after.webp", save_all=True, append_images=frames[1:], loop=0,
                       duration=max(20, round(1000 / fps)), lossless=False, quality=90)
        return "before-after.webp"
    frames[0].save(images / "before-after.png")
    return "before-after.png"


def _metrics(ev: dict) -> list[tuple[str, str, str]]:
    rows = [("PSNR (RGB, mean of frames)", ev["psnr"], "dB"), ("SSIM (RGB)", ev["ssim"], ""),
            ("PSNR (Y channel)", ev.get("psnr_y"), "dB"), ("SSIM (Y channel)", ev.get("ssim_y"), ""),
            ("PSNR (whole clip)", ev.get("psnr_global"), "dB"),
            ("LPIPS (VGG)", ev.get("lpips"), "" if ev.get("lpips") is not None else ev.get("lpips_note", "")),
            ("warping error (MSE, unoccluded pixels)", ev.get("warping_error"), "lower is steadier"),
            ("flicker", ev.get("flicker"), "extra frame-to-frame change"), ("tOF", ev.get("tof"), "pixels")]
    out = [(name, _fmt(value), note) for name, value, note in rows]
    out += [(name.upper(), "not computed", reason) for name, reason in ev.get("not_computed", {}).items()]
    return out


def _baseline(base: dict, ev: dict) -> dict:
    """The rows of the baseline table: the player's picture (when the degraded input is given), the guide of a
    ``restore --guide`` run (when its evaluation is in ``ev``), the restoration, and the gains over each."""
    out = {"restored_psnr": f"{ev['psnr']:.2f}", "restored_ssim": f"{ev['ssim']:.4f}", "psnr": None, "guide": None}
    if base["psnr"]:
        p, s = float(np.mean(base["psnr"])), float(np.nanmean(base["ssim"]))
        out.update(psnr=f"{p:.2f}", ssim=f"{s:.4f}", gain_psnr=_signed(ev["psnr"] - p, 2),
                   gain_ssim=_signed(ev["ssim"] - s, 4))
    if "guide" in ev:
        g = ev["guide"]
        out["guide"] = {"name": Path(g["restored"]).name, "psnr": f"{g['psnr']:.2f}", "ssim": f"{g['ssim']:.4f}",
                        "gain_psnr": _signed(ev["psnr"] - g["psnr"], 2),
                        "gain_ssim": _signed(ev["ssim"] - g["ssim"], 4)}
    return out


def _plots(ev: dict) -> list[str]:
    per = ev.get("per_frame", [])
    get = lambda key: [f.get(key) for f in per]  # noqa: E731
    return [line_plot({"RGB": get("psnr"), "Y": get("psnr_y")}, "PSNR per frame", "dB"),
            line_plot({"RGB": get("ssim"), "Y": get("ssim_y")}, "SSIM per frame", "SSIM"),
            line_plot({"warping error": get("warping_error")}, "Warping error, frame t to t+1", "MSE")]


def _jumps(ev: dict) -> str | None:
    """A sentence naming the frames whose PSNR lies JUMP_DB or more from the clip's median."""
    values = [f.get("psnr") for f in ev.get("per_frame", [])]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 3:
        return None
    median = float(np.median(finite))
    odd = [(t, v - median) for t, v in enumerate(values) if v is not None and math.isfinite(v)
           and abs(v - median) >= JUMP_DB]
    if not odd:
        return None
    listed = ", ".join(f"frame {t} ({d:+.1f} dB)" for t, d in odd[:8]) + (" and more" if len(odd) > 8 else "")
    ends = all(t in (0, len(values) - 1) for t, _ in odd)
    why = (" Only the first and last frames: each has a neighbour on one side only (the ends of the measured "
           "frames, or of the reference)." if ends else "")
    return f"Frames far from the clip's median PSNR of {median:.2f} dB: {listed}.{why}"


def _run(stats: dict | None) -> dict:
    if not stats:
        return {"facts": [], "stages": [], "config": None}
    fit = (stats.get("fit") or {}).get("rms_grey") or {}
    facts = [("problem", stats.get("problem")), ("prior", stats.get("prior")), ("models", stats.get("models")),
             ("NFE per clip or window", (stats.get("nfe") or {}).get("total")),
             ("windows", stats.get("windows")), ("processes", stats.get("processes")),
             ("seconds", stats.get("seconds")), ("peak memory (MB)", stats.get("peak_memory_mb")),
             ("device", stats.get("device")), ("relative residual ||Ax - y|| / ||y||", stats.get("relative_residual")),
             ("fit to the input, re-degraded (grey levels RMS)", fit.get("restored")),
             ("a player's picture, re-degraded (grey levels RMS)", fit.get("naive")),
             ("the guide, re-degraded (grey levels RMS)", fit.get("guide"))]
    stages = [(k, _fmt(v)) for k, v in (stats.get("seconds_per_stage") or {}).items()]
    config = json.dumps(stats["config"], indent=1) if stats.get("config") else None
    return {"facts": [(k, _fmt(v)) for k, v in facts if v is not None], "stages": stages, "config": config}
