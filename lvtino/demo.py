"""``lvtino demo``: degrade and restore a clip end to end, offline, with the classical prior.

Writes into the output folder: ``reference.mkv`` (the clean clip), ``degraded.mkv``
(the simulated measurement), ``naive.mkv`` (nearest-frame repeat + bicubic
upsampling), ``restored.mkv`` (the TV restoration), ``stats.json`` (the run's
facts), ``metrics.json`` (fidelity and temporal metrics of naive and restored
against the reference) and ``report/index.html`` (the restoration's quality
report). All videos are lossless FFV1, so the metrics are those of the files;
``preview/`` holds an H.264 copy of each (yuv420p) that browsers and phones play.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from lvtino.config import load_problem
from lvtino.errors import UserError, arg, said
from lvtino.files import atomic_folder, claiming
from lvtino.metrics.evaluate import evaluate
from lvtino.report.html import write_report
from lvtino.physics.problems import chain_factors
from lvtino.files import write_json
from lvtino.pipeline.degrade import DegradeRequest, degrade
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.pipeline.request import Request
from lvtino.pipeline.restore import restore
from lvtino.video.player import naive_upsample
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import probe, read_frames
from lvtino.video.synthetic import synthetic_clip
from lvtino.validation import whole
from lvtino.video.writer import VideoWriter


@claiming
def run_demo(output: str | Path = "lvtino-demo", problem: str = "A", input: str | Path | None = None,
             frames: int = 25, start: int = 0, seed: int = 0, fps=None, size: tuple[int, int] = (360, 640),
             accept_truncated: bool = False) -> dict:
    """Write the demo's folder whole (an earlier demo folder is replaced; any other folder is refused)."""
    final = Path(output)
    frames = whole(1, 10_000).parse(frames, arg("frames"))
    start = whole(0, None).parse(start, arg("start"))
    load_problem(problem)  # an unknown name stops here, before any work
    check_outputs([Output(arg("output"), final, "folder")], [(arg("input"), input)], overwrite="yes")
    if input is not None:
        probe(input, fps, accept_truncated=accept_truncated)
    with atomic_folder(final, "demo") as out:
        result = _demo(out, final, problem, input, frames, start, seed, fps, size, accept_truncated)
    print(f"  report:  {final / 'report' / 'index.html'} (open it in a browser)")
    return result


def _step(k: int, text: str) -> None:
    print(f"lvtino demo [{k}/5] {text}", flush=True)


def _demo(out: Path, final: Path, problem, input, frames, start, seed, fps, size, accept_truncated) -> dict:
    reference = out / "reference.mkv"
    _step(1, "the clean clip")
    # 1. The clean clip: procedural, or a span of the user's video
    if input is None:
        clip, rate, audio, span = synthetic_clip(frames, *size, seed=seed), Fraction(30), None, None
        source = f"procedural scene (seed {seed}), {frames} frames of {size[1]}x{size[0]}"
    else:
        info = probe(input, fps, accept_truncated=accept_truncated)
        if start >= info.frames:
            raise UserError(f"{said('start', start)}: the input has {info.frames} frames")
        end = min(start + frames, info.frames)
        clip, rate = list(read_frames(info, start, end)), info.fps
        audio = input if info.has_audio else None
        span = (float(start / rate), float(end / rate))
        source = f"{input}, frames {start}..{end - 1}"
    with VideoWriter(reference, rate, audio_from=audio, audio_range=span) as writer:
        for frame in clip:
            writer.write(frame)
    # 2. Degrade, restore, and the naive upsampling to compare with
    degraded = out / "degraded.mkv"
    _step(2, f"degrading it (problem {problem})")
    degrade(DegradeRequest(reference, degraded, problem=problem, seed=seed))
    _step(3, "restoring it with the TV prior (seconds to a minute on a CPU)")
    stats = restore(Request(degraded, out / "restored.mkv", prior="tv", stats=out / "stats.json"))
    y_info = probe(degraded)
    y = frames_to_tensor(read_frames(y_info))
    shape = (y_info.metadata["frames"], y_info.metadata["height"], y_info.metadata["width"])
    naive = naive_upsample(y, chain_factors(y_info.metadata["operator"]), shape)
    with VideoWriter(out / "naive.mkv", rate) as writer:
        for frame in tensor_to_frames(naive):
            writer.write(frame)
    # 3. Score both against the reference; playable previews
    _step(4, "scoring the naive upsampling and the restoration, writing the report")
    scores = {name: evaluate(out / f"{name}.mkv", reference) for name in ("naive", "restored")}
    write_report(out / "report", scores["restored"], degraded=degraded, stats=stats)
    keys = ("psnr", "ssim", "psnr_y", "ssim_y", "warping_error", "flicker", "tof")
    result = {
        "source": source, "problem": problem, "prior": "tv", "seconds": stats["seconds"],
        **{name: {k: s[k] for k in keys} for name, s in scores.items()},
        "psnr_gain_db": scores["restored"]["psnr"] - scores["naive"]["psnr"],
    }
    write_json(out / "metrics.json", result)
    _step(5, "H.264 previews")
    _previews(out, ("reference", "degraded", "naive", "restored"))
    print(f"lvtino demo: {source}, problem {problem}")
    for name in ("reference", "degraded", "naive", "restored"):
        print(f"  {name:9s} {final / (name + '.mkv')}  (preview: {final / 'preview' / (name + '.mp4')})")
    print(f"  naive upsampling PSNR {result['naive']['psnr']:.2f} dB, SSIM {result['naive']['ssim']:.3f}")
    print(f"  TV restoration   PSNR {result['restored']['psnr']:.2f} dB, SSIM {result['restored']['ssim']:.3f}"
          f"  (gain {result['psnr_gain_db']:+.2f} dB, {stats['seconds']:.0f} s)")
    print(f"  metrics: {final / 'metrics.json'}")
    return result


def _previews(out: Path, names) -> None:
    """An H.264 yuv420p copy of each lossless video (FFV1 plays in few players), at its own size and rate."""
    (out / "preview").mkdir()
    for name in names:
        info = probe(out / f"{name}.mkv")
        with VideoWriter(out / "preview" / f"{name}.mp4", info.fps, crf=18) as writer:
            for frame in read_frames(info):
                writer.write(frame)
