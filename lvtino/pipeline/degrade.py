"""``lvtino degrade``: simulate a measurement of a clean video and record how it was made."""

from __future__ import annotations

from pathlib import Path

import torch

import logging

from lvtino.config import ProblemConfig, apply_overrides, from_dict, known_problems, load_raw
from lvtino.errors import DiskFull, UserError, is_disk_full
from lvtino.pipeline.common import build_checked_physics
from lvtino.pipeline.outputs import Output, check_outputs
from lvtino.validation import Number
from lvtino.video.convert import frames_to_tensor, tensor_to_frames
from lvtino.video.reader import probe, read_frames
from lvtino.video.writer import VideoWriter, output_kind

log = logging.getLogger("lvtino")


def degrade(input: str | Path, output: str | Path, problem: str | None = None, config: str | Path | None = None,
            overrides: list[str] | None = None, noise_std: float | None = None, seed: int = 0, fps=None,
            no_audio: bool = False, overwrite: str = "ask", accept_truncated: bool = False) -> dict:
    """Simulate y = A(x) + n from a clean video and write it losslessly with its metadata."""
    if problem is None and config is None:
        raise UserError(f"--problem is required (known: {', '.join(known_problems())})")
    if noise_std is not None:
        noise_std = Number(ge=0, le=1).parse(noise_std, "--noise-std")
    info = probe(input, fps, accept_truncated=accept_truncated)
    output = Path(output)
    check_outputs([Output("-o", output, "frames" if output_kind(output) == "frames" else "video")],
                  [("the input", input), ("--config", config)], overwrite)
    raw = apply_overrides(load_raw(problem, config), overrides or [])
    cfg = from_dict(ProblemConfig, raw).validate()
    noise = cfg.noise_std if noise_std is None else noise_std
    if info.rate_note():
        log.info("%s", info.rate_note())
    shape = (info.frames, info.height, info.width)
    physics = build_checked_physics(cfg, shape)
    x = frames_to_tensor(read_frames(info))
    generator = torch.Generator().manual_seed(seed)
    y = physics.measure(x, noise, generator)
    meta = {"problem": cfg.name, "operator": cfg.operator, "noise_std": noise, "seed": seed,
            "frames": info.frames, "height": info.height, "width": info.width, "fps": str(info.fps)}
    out_fps = info.fps / physics.factors[0]
    try:
        with VideoWriter(output, out_fps, lossless=True, metadata=meta, rotation=info.rotation,
                         audio_from=None if no_audio or not info.has_audio else input) as writer:
            for frame in tensor_to_frames(y):
                writer.write(frame)
    except OSError as err:
        if is_disk_full(err):  # lossless frames: about 3 bytes a pixel
            raise DiskFull(output, 3 * int(y.shape[2] * y.shape[3] * y.shape[4])) from None
        raise
    return {"output": str(output), "problem": cfg.name, "frames": y.shape[2], "height": y.shape[3],
            "width": y.shape[4], "fps": str(out_fps), "noise_std": noise}
