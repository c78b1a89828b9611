"""``lvtino degrade``: simulate a measurement of a clean video and record how it was made.

The clip is streamed: a few measured frames at a time, each computed from the
clean frames it depends on (``Physics.time_columns``; a circular blur reads the
other end of the video too), with noise drawn per measured frame from the seed,
so the result equals the whole-clip measurement bit for bit and memory does not
grow with the length. Arithmetic runs in float64, so that rounding to 8 bits
does not depend on how the frames were grouped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import torch

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import DiskFull, UserError, arg, is_disk_full, said
from lvtino.physics.base import frame_noise
from lvtino.pipeline.common import build_checked_physics
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.pipeline.words import Words
from lvtino.validation import Number, whole
from lvtino.video.convert import tensor_to_frames
from lvtino.video.frames import DecodedFrames
from lvtino.video.reader import probe
from lvtino.video.writer import VideoWriter, check_rate, output_kind

log = logging.getLogger("lvtino")


def degrade(input: str | Path, output: str | Path, problem: str | None = None, config: str | Path | None = None,
            overrides: list[str] | None = None, noise_std: float | None = None, seed: int = 0, fps=None,
            no_audio: bool = False, overwrite: str = "ask", accept_truncated: bool = False,
            words: Words | None = None) -> dict:
    """Simulate y = A(x) + n from a clean video and write it losslessly with its metadata."""
    said = words is not None and words.given()
    if said and problem is not None:
        raise UserError(f"{said('problem', problem)} and {arg('scale')}/{arg('fps_factor')}: give one of them")
    if problem is None and config is None and not said:
        raise UserError(f"{arg('problem')} is required, or {arg('scale')}/{arg('fps_factor')} (known problems: "
                        f"{', '.join(known_problems())})")
    if noise_std is not None:
        noise_std = Number(ge=0, le=1).parse(noise_std, arg("noise_std"))
    seed = whole(0, 2**63 - 1).parse(seed, arg("seed"))
    info = probe(input, fps, accept_truncated=accept_truncated)
    output = Path(output)
    check_outputs([Output(arg("output"), output, "frames" if output_kind(output) == "frames" else "video")],
                  [("the input", input), (arg("config"), config)], overwrite)
    if said:
        cfg = words.config(config, overrides, large=(info.width, info.height, info.fps))
    else:
        cfg = from_dict(ProblemConfig, apply_overrides(load_raw(problem, config), overrides or [])).validate()
    noise = cfg.noise_std if noise_std is None else noise_std
    for note in info.notes():
        log.info("%s", note)
    shape = (info.frames, info.height, info.width)
    physics = build_checked_physics(cfg, shape)
    measured = physics.output_shape(shape)
    _, fh, fw = physics.factors
    if (measured[1] * fh, measured[2] * fw) != (info.height, info.width):
        log.info("%s: %dx%d is not a multiple of %s: the measurement is %dx%d (the operator's rounding); the clean "
                 "size is recorded, so restore gives %dx%d back", input, info.width, info.height,
                 fw if fw == fh else f"{fw}x{fh}", measured[2], measured[1], info.width, info.height)
    meta = {"problem": cfg.name, "operator": cfg.operator, "noise_std": noise, "seed": seed,
            "frames": info.frames, "height": info.height, "width": info.width, "fps": str(info.fps)}
    out_fps = info.fps / physics.factors[0]
    check_rate(output, out_fps)
    try:
        with VideoWriter(output, out_fps, lossless=True, metadata=meta, rotation=info.rotation,
                         audio_from=None if no_audio or not info.has_audio else input) as writer:
            for y in measure_stream(physics, DecodedFrames(info, dtype=torch.float64), measured[0], noise, seed):
                for frame in tensor_to_frames(y):
                    writer.write(frame)
    except OSError as err:
        if is_disk_full(err):  # lossless frames: about 3 bytes a pixel
            raise DiskFull(output, 3 * int(measured[0] * measured[1] * measured[2])) from None
        raise
    return {"output": str(output), "problem": cfg.name, "frames": measured[0], "height": measured[1],
            "width": measured[2], "fps": str(out_fps), "noise_std": noise}


def measure_stream(physics, frames: DecodedFrames, rows: int, noise_std: float, seed: int,
                   chunk: int = 32) -> Iterator[torch.Tensor]:
    """y = A(x) + n, ``chunk`` signal frames' worth of measured frames at a time, in order.

    Each block of measured frames reads only the clean frames it depends on; the
    noise of measured frame j is drawn from (seed, j) alone.
    """
    step = max(1, chunk // physics.factors[0])
    for j0 in range(0, rows, step):
        block = torch.arange(j0, min(rows, j0 + step))
        cols = physics.time_columns(block)
        x = frames.get(cols.tolist(), keep_from=int(cols.min()))
        part = physics.restrict_columns(block, cols)
        _, h, w = part.output_shape((len(cols), x.shape[3], x.shape[4]))  # noise has the measurement's shape
        noise = frame_noise(seed, block.tolist(), (x.shape[1], h, w)) if noise_std > 0 else None
        yield part.measure(x, noise_std, noise=noise).float()
