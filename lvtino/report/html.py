"""The quality report of one restoration: a self-contained HTML page and its images, in one folder.

Sections: the metric table; per-frame PSNR, SSIM and warping error (inline SVG);
side-by-side crops of the degraded input (upsampled as a player shows it), the
restoration and the reference for a few frames; an x-t slice of each (one image
row across time: flicker and temporal blur show at a glance); and the run's own
facts when its ``--stats`` JSON is given. Images are PNG files in ``images/``
beside ``index.html``; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from lvtino.files import atomic_folder
from lvtino.report.plots import line_plot
from lvtino.video.reader import probe, read_frames

SECTIONS = ("metrics", "plots", "crops", "xt", "run")
CROP = 192  # side of the square crops, in reference pixels (less for smaller frames)

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:24px}h2{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.muted{color:#777}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;margin:12px 0}
figure{display:inline-block;margin:4px 8px 12px 0;text-align:center}figcaption{font-size:13px;color:#555}
img.px{image-rendering:pixelated;border:1px solid #ccc}
.plot text{font-size:11px;fill:#444}.plot .plot-title{font-size:13px;fill:#222}.plot .grid{stroke:#eee}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px}
"""

# after loading, the page records how many of its images decoded (read by the headless-browser test)
CHECK = ("<script>window.addEventListener('load',function(){var im=Array.prototype.slice.call(document.images);"
         "document.body.setAttribute('data-images',im.filter(function(i){return i.complete&&i.naturalWidth>0})"
         ".length+'/'+im.length);});</script>")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return html.escape(str(value))


def _save(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _upsampled(frames: list[np.ndarray], count: int, width: int, height: int):
    """What a player shows of the degraded input at the output's frame count and size."""
    for t in range(count):
        src = frames[min(len(frames) - 1, t * len(frames) // count)]
        yield np.asarray(Image.fromarray(src).resize((width, height), Image.BICUBIC))


def _collect(path, count: int, picks: list[int], row: int, width: int, height: int, upsample: bool = False):
    """The picked frames and the x-t slice (row ``row`` of every frame) of a video."""
    info = probe(path)
    frames = read_frames(info, 0, min(count, info.frames)) if not upsample else \
        _upsampled(list(read_frames(info)), count, width, height)
    picked, rows = {}, []
    for t, f in enumerate(frames):
        if f.shape[:2] != (height, width):
            f = np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC))
        rows.append(f[row].copy())
        if t in picks:
            picked[t] = f
    return picked, np.stack(rows)


def write_report(folder: str | Path, evaluation: dict, degraded: str | Path | None = None,
                 stats: dict | None = None, frames_shown: int = 3) -> Path:
    """Write ``folder/index.html`` and ``folder/images/*.png`` (the whole folder at once, replacing an earlier
    report); return the page's path."""
    with atomic_folder(folder, "report") as tmp:
        _write_report(tmp, evaluation, degraded, stats, frames_shown)
    return Path(folder) / "index.html"


def _write_report(folder: Path, evaluation: dict, degraded, stats, frames_shown: int) -> None:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    n, w, h = evaluation["frames"], evaluation["width"], evaluation["height"]
    picks = sorted({0, n // 2, n - 1} if frames_shown >= 3 else {n // 2})
    row = h // 2
    sources = [("restored", evaluation["restored"], False), ("reference", evaluation["reference"], False)]
    if degraded is not None:
        sources.insert(0, ("degraded", str(degraded), True))
    side = min(CROP, w, h)
    cx, cy = (w - side) // 2, (h - side) // 2
    crops, slices = {}, {}
    for name, path, upsample in sources:
        picked, xt = _collect(path, n, picks, row, w, h, upsample)
        for t, f in picked.items():
            crop = f[cy:cy + side, cx:cx + side]
            _save(crop, images / f"crop-{name}-{t:05d}.png")
            crops.setdefault(t, []).append(name)
        _save(xt, images / f"xt-{name}.png")
        slices[name] = xt.shape
    body = ["<h1>lvtino quality report</h1>",
            f"<p class='muted'>{html.escape(evaluation['restored'])} against "
            f"{html.escape(evaluation['reference'])}: {n} frames of {w}x{h}; "
            f"written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]
    note = (stats or {}).get("models_note")
    if note:
        body.append(f"<div class='banner'><b>Not a quality result.</b> {html.escape(note)}</div>")
    body += _metrics_section(evaluation)
    body += _plots_section(evaluation)
    body.append("<section id='crops'><h2>Crops</h2><p>A centre crop of frames "
                + ", ".join(str(t) for t in picks) + f" ({side}x{side} pixels, shown at twice the size)"
                + (": the degraded input as a player shows it (nearest frame, bicubic upscaling), " if degraded
                   else ": ") + "the restoration and the reference.</p>")
    for t in picks:
        body.append(f"<div><b>frame {t}</b><br>")
        for name in crops.get(t, []):
            body.append(f"<figure><img class='px' src='images/crop-{name}-{t:05d}.png' width='{2 * side}' "
                        f"height='{2 * side}' alt='{name} frame {t}'><figcaption>{name}</figcaption></figure>")
        body.append("</div>")
    body.append("</section>")
    body.append(f"<section id='xt'><h2>x-t slices</h2><p>Row {row} of every frame, time running down: motion "
                "draws slanted streaks; flicker shows as horizontal bands, temporal blur as smeared streaks.</p>")
    scale = max(1, min(4, 240 // max(1, n)))
    for name in slices:
        body.append(f"<figure><img class='px' src='images/xt-{name}.png' width='{w}' height='{n * scale}' "
                    f"alt='x-t slice of the {name} video'><figcaption>{name}</figcaption></figure>")
    body.append("</section>")
    body += _run_section(stats)
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>lvtino quality report</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(body) + CHECK + "</body></html>\n")
    (folder / "index.html").write_text(page)


def _metrics_section(ev: dict) -> list[str]:
    rows = [("PSNR (RGB, mean of frames)", ev["psnr"], "dB"), ("SSIM (RGB)", ev["ssim"], ""),
            ("PSNR (Y channel)", ev.get("psnr_y"), "dB"), ("SSIM (Y channel)", ev.get("ssim_y"), ""),
            ("PSNR (whole clip)", ev.get("psnr_global"), "dB"),
            ("LPIPS (VGG)", ev.get("lpips"), "" if ev.get("lpips") is not None else ev.get("lpips_note", "")),
            ("warping error (MSE, unoccluded pixels)", ev.get("warping_error"), "lower is steadier"),
            ("flicker", ev.get("flicker"), "extra frame-to-frame change"), ("tOF", ev.get("tof"), "pixels")]
    out = ["<section id='metrics'><h2>Metrics</h2><table><tr><th class='l'>metric</th><th>value</th>"
           "<th class='l'>note</th></tr>"]
    for name, value, note in rows:
        out.append(f"<tr><td class='l'>{name}</td><td>{_fmt(value)}</td><td class='l'>{html.escape(note)}</td></tr>")
    for name, reason in ev.get("not_computed", {}).items():
        out.append(f"<tr><td class='l'>{name.upper()}</td><td>not computed</td><td class='l'>"
                   f"{html.escape(reason)}</td></tr>")
    out.append("</table>")
    for note in ev.get("notes", []):
        out.append(f"<p class='muted'>{html.escape(note)}</p>")
    out.append("</section>")
    return out


def _plots_section(ev: dict) -> list[str]:
    per = ev.get("per_frame", [])
    get = lambda key: [f.get(key) for f in per]  # noqa: E731
    return ["<section id='plots'><h2>Per frame</h2>",
            line_plot({"RGB": get("psnr"), "Y": get("psnr_y")}, "PSNR per frame", "dB"),
            line_plot({"RGB": get("ssim"), "Y": get("ssim_y")}, "SSIM per frame", "SSIM"),
            line_plot({"warping error": get("warping_error")}, "Warping error, frame t to t+1", "MSE"),
            "</section>"]


def _run_section(stats: dict | None) -> list[str]:
    out = ["<section id='run'><h2>The run</h2>"]
    if not stats:
        out.append("<p class='muted'>No run facts given (pass the restoration's --stats JSON with --stats).</p>"
                   "</section>")
        return out
    facts = [("problem", stats.get("problem")), ("prior", stats.get("prior")), ("models", stats.get("models")),
             ("NFE per clip or window", (stats.get("nfe") or {}).get("total")),
             ("windows", stats.get("windows")), ("processes", stats.get("processes")),
             ("seconds", stats.get("seconds")), ("peak memory (MB)", stats.get("peak_memory_mb")),
             ("device", stats.get("device")), ("relative residual ||Ax - y|| / ||y||", stats.get("relative_residual"))]
    out.append("<table>" + "".join(f"<tr><td class='l'>{k}</td><td class='l'>{_fmt(v)}</td></tr>"
                                   for k, v in facts if v is not None) + "</table>")
    stages = stats.get("seconds_per_stage") or {}
    if stages:
        out.append("<table><tr><th class='l'>stage</th><th>seconds</th></tr>" + "".join(
            f"<tr><td class='l'>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in stages.items()) + "</table>")
    if stats.get("config"):
        out.append("<details><summary>configuration</summary><pre>"
                   + html.escape(json.dumps(stats["config"], indent=1)) + "</pre></details>")
    out.append("</section>")
    return out
