"""``lvtino degrade``: simulate a measurement of a clean video and record how it was made.

The clip is streamed: a few measured frames at a time, each computed from the
clean frames it depends on (``Physics.time_columns``; a circular blur reads the
other end of the video too), with noise drawn per measured frame from the seed,
so the result equals the whole-clip measurement bit for bit and memory does not
grow with the length. Arithmetic runs in float64, so that rounding to 8 bits
does not depend on how the frames were grouped.

``protocol="published"`` makes the measurement the published code makes for the
paper's problems (its scripts ``LVTINO.py`` and ``LVTINO_VIDUE.py``): the ground
truth held in bfloat16, y = A(x) rounded to bfloat16, noise 0.001 added after the
operator in bfloat16 (none in Problem C), and for JPEG the operator written for
[-1, 1] applied to frames in [0, 1] (a half-contrast picture is compressed). The
file holds what the published sampler receives, 2 y - 1 in bfloat16, at 16 bits
(FFV1), so no bfloat16 step is lost to 8-bit rounding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import torch

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import DiskFull, UserError, arg, is_disk_full, said
from lvtino.files import claiming
from lvtino.physics.base import frame_noise
from lvtino.pipeline.common import build_checked_physics, spooled
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.pipeline.words import Words
from lvtino.validation import Number, whole
from lvtino.video.convert import tensor_to_frames
from lvtino.video.frames import DecodedFrames
from lvtino.video.reader import probe
from lvtino.video.formats import Encoding
from lvtino.video.writer import VideoWriter

log = logging.getLogger("lvtino")

PROTOCOLS = ("lvtino", "published")
PUBLISHED_PROBLEMS = ("A", "B", "C", "jpeg")
PUBLISHED_NOISE_AFTER = 0.001  # the published LVTINO.py's --add_noise_std default, added after A (also for JPEG)
NOISE_STREAM = 10**12  # frame_noise rows of the second noise (after JPEG), apart from the first's


@dataclass(frozen=True)
class DegradeRequest:
    """``lvtino degrade INPUT -o OUTPUT`` and its options (see ``lvtino degrade --help``): built by the command
    line and the Python API, checked once (``check_inputs``), run by ``degrade``."""

    input: str | Path
    output: str | Path
    problem: str | None = None
    config: str | Path | None = None
    overrides: tuple[str, ...] = ()
    words: Words | None = None         # --scale, --fps-factor, --size, --fps, ...
    noise_std: float | None = None     # None: the preset's
    seed: int = 0
    fps: object = None                 # --input-fps: the rate of a frame folder
    no_audio: bool = False
    overwrite: str = "ask"
    accept_truncated: bool = False
    protocol: str = "lvtino"

    def check_inputs(self) -> "DegradeRequest":
        """The settings checked without reading a file (in the caller's words); the request with whole numbers."""
        worded = self.words is not None and self.words.given()
        if worded and self.problem is not None:
            raise UserError(f"{said('problem', self.problem)} and {arg('scale')}/{arg('fps_factor')}: give one of "
                            "them")
        if self.problem is None and self.config is None and not worded:
            raise UserError(f"{arg('problem')} is required, or {arg('scale')}/{arg('fps_factor')} (known problems: "
                            f"{', '.join(known_problems())})")
        if self.protocol not in PROTOCOLS:
            raise UserError(f"{said('protocol', self.protocol)}: expected one of {', '.join(PROTOCOLS)}")
        noise = None if self.noise_std is None else Number(ge=0, le=1).parse(self.noise_std, arg("noise_std"))
        return replace(self, noise_std=noise, seed=whole(0, 2**63 - 1).parse(self.seed, arg("seed")),
                       overrides=tuple(self.overrides or ()))

    def config_for(self, info) -> ProblemConfig:
        """The degradation: the words measured against the clean input, or the preset with its overrides."""
        if self.words is not None and self.words.given():
            return self.words.config(self.config, list(self.overrides), large=(info.width, info.height, info.fps))
        return from_dict(ProblemConfig, apply_overrides(load_raw(self.problem, self.config),
                                                        list(self.overrides))).validate()


@claiming
def degrade(request: DegradeRequest) -> dict:
    """Simulate y = A(x) + n from a clean video and write it losslessly with its metadata (``protocol``: lvtino's
    measurement, or the published code's, see the module's text); ``-`` as the input reads standard input."""
    request = request.check_inputs()
    with spooled(request.input, request.output) as source:
        if source != request.input:  # a pipe's frame count is what it holds (see pipeline.restore)
            request = replace(request, input=source, accept_truncated=True)
        return _degrade(request)


def _degrade(request: DegradeRequest) -> dict:
    input, protocol, noise_std, seed = request.input, request.protocol, request.noise_std, request.seed
    info = probe(input, request.fps, accept_truncated=request.accept_truncated)
    output = Path(request.output)
    encoding = Encoding.choose(output, lossless=True)  # a measurement is kept losslessly
    if protocol == "published" and encoding.format.name != "ffv1":
        raise UserError(f"{said('output', str(output))}: {said('protocol', 'published')} writes 16-bit FFV1 (its "
                        "bfloat16 values would not survive 8 bits): give a .mkv output")
    check_outputs([Output(arg("output"), output, "frames" if encoding.format.folder else "video")],
                  [("the input", input), (arg("config"), request.config)], request.overwrite)
    cfg = request.config_for(info)
    noise = cfg.noise_std if noise_std is None else noise_std
    if protocol == "published":
        if (request.words is not None and request.words.given()) or cfg.name not in PUBLISHED_PROBLEMS:
            raise UserError(f"{said('protocol', 'published')} is the published code's measurement of the paper's "
                            f"problems {', '.join(PUBLISHED_PROBLEMS)}: give {arg('problem')} one of them")
        if cfg.name == "C" and noise_std:
            raise UserError(f"{said('noise_std', noise_std)}: the published code adds no noise in Problem C; "
                            f"leave {arg('noise_std')} out, or use {said('protocol', 'lvtino')}")
        noise = 0.0 if cfg.name == "C" else noise
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
            "frames": info.frames, "height": info.height, "width": info.width, "fps": str(info.fps),
            **({"protocol": protocol} if protocol != "lvtino" else {})}
    out_fps = info.fps / physics.factors[0]
    encoding.check_frames(output, out_fps, measured[2], measured[1])
    try:
        with VideoWriter(output, out_fps, encoding, metadata=meta, rotation=info.rotation,
                         audio_from=None if request.no_audio or not info.has_audio else input) as writer:
            for y in measure_stream(physics, DecodedFrames(info, dtype=torch.float64), measured[0], noise, seed,
                                    published=cfg.name if protocol == "published" else None):
                for frame in tensor_to_frames(y, bits=16 if protocol == "published" else 8):
                    writer.write(frame)
    except OSError as err:
        if is_disk_full(err):  # lossless frames: about 3 bytes a pixel
            raise DiskFull(output, 3 * int(measured[0] * measured[1] * measured[2])) from None
        raise
    return {"output": str(output), "problem": cfg.name, "frames": measured[0], "height": measured[1],
            "width": measured[2], "fps": str(out_fps), "noise_std": noise, "protocol": protocol}


def measure_stream(physics, frames: DecodedFrames, rows: int, noise_std: float, seed: int,
                   chunk: int = 32, published: str | None = None) -> Iterator[torch.Tensor]:
    """y = A(x) + n, ``chunk`` signal frames' worth of measured frames at a time, in order (``published``: the
    problem whose published measurement ``published_measure`` makes).

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
        if published is None:
            yield part.measure(x, noise_std, noise=noise).float()
            continue
        after = None
        if published == "jpeg":
            after = frame_noise(seed, [NOISE_STREAM + r for r in block.tolist()], (x.shape[1], h, w))
        elif noise is not None:
            noise, after = None, noise
        yield published_measure(part, x, published, noise_std, noise, after)


def _bf16(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.bfloat16).to(x.dtype)


def published_measure(part, x: torch.Tensor, problem: str, noise_std: float, before: torch.Tensor | None,
                      after: torch.Tensor | None) -> torch.Tensor:
    """The published code's measurement of clean frames ``x`` (in [-1, 1]), as its sampler receives it.

    With x01 = bf16((x + 1) / 2), the ground truth in [0, 1] as it holds it:
    y = bf16(A(x01)) in float32, for JPEG y = A_jpeg(x01 + noise_std n1) (the operator clamps to
    [-1, 1] and maps [-1, 1] to 0..255, so x01 fills the upper half of the grey scale); then
    y = bf16(y + bf16(0.001 bf16(n2))) where ``after`` noise is given; returned as bf16(2 y - 1), lvtino's
    [-1, 1] units. A keeps constants, so A(x01) = (A(2 x01 - 1) + 1) / 2.
    """
    x01 = _bf16((x.float() + 1) / 2)
    if problem == "jpeg":
        y = part.A(x01 + noise_std * before.float() if before is not None else x01)
    else:
        y = (part.A(2 * x01 - 1) + 1) / 2
    y = _bf16(y)
    if after is not None:
        std = PUBLISHED_NOISE_AFTER if problem == "jpeg" else noise_std
        y = _bf16(y + _bf16(std * _bf16(after.float())))
    return _bf16(2 * y - 1)
