"""A single-image upscaler model as a source of detail (``--upscaler FILE``).

Any model file spandrel recognises (Real-ESRGAN and its compact video model,
SwinIR, HAT, DAT, OmniSR, ...; the loader chaiNNer and ComfyUI use) in the
formats users have: ``.pth``/``.ckpt``/``.safetensors``. Its tensors are read
by lvtino (``weights.read_state_dict``: a torch file with ``weights_only``,
never pickled code; no TorchScript), and spandrel only recognises the
architecture from the names and shapes and builds it. The model runs on each
measured frame, in tiles when the frame is large (with a margin, so that tile
edges do not show), on the run's device.

spandrel is an optional extra: ``pip install lvtino[upscaler]``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from lvtino.errors import UserError, said

SUFFIXES = (".pth", ".ckpt", ".safetensors")
TILE = 256    # input pixels a side of one tile (a 4x model makes 1024x1024 of it)
MARGIN = 32   # input pixels each tile reads beyond its part, dropped after (a compact model sees 18)


@dataclass
class Upscaler:
    """A loaded single-image model: (N, 3, h, w) in [-1, 1] -> (N, 3, s h, s w) in [-1, 1]."""

    path: Path
    model: torch.nn.Module
    architecture: str
    scale: int
    parameters: int
    device: torch.device
    seconds: float = 0.0
    frames: int = 0
    tile: int = TILE
    _dtype: torch.dtype = field(default=torch.float32, repr=False)

    @classmethod
    def load(cls, path: str | Path, device: torch.device = torch.device("cpu")) -> "Upscaler":
        """The model in ``path``, refused in one line when it is not a 3-channel image model spandrel knows."""
        from lvtino.models.weights import read_state_dict

        path = Path(path)
        name = said("upscaler", str(path))
        if path.suffix.lower() not in SUFFIXES:
            raise UserError(f"{name}: expected a model file ({', '.join(SUFFIXES)}); a TorchScript .pt runs code and "
                            "is not loaded")
        if not path.is_file():
            raise UserError(f"{name}: no such file")
        try:
            import spandrel
        except ImportError:
            raise UserError(f"{name} needs spandrel, which is not installed: pip install 'lvtino[upscaler]'") \
                from None
        state = read_state_dict(path)
        if not isinstance(state, dict) or not state:
            raise UserError(f"{name}: holds no tensors")
        try:
            descriptor = spandrel.ModelLoader(device).load_from_state_dict(spandrel.canonicalize_state_dict(state))
        except spandrel.UnsupportedModelError:
            raise UserError(f"{name}: not a model spandrel knows (an upscaler's weights, e.g. from OpenModelDB)") \
                from None
        except (KeyError, RuntimeError, ValueError) as err:
            raise UserError(f"{name}: its tensors do not make the model they look like ({err})") from None
        if not isinstance(descriptor, spandrel.ImageModelDescriptor) or \
                (descriptor.input_channels, descriptor.output_channels) != (3, 3):
            raise UserError(f"{name}: a {descriptor.architecture.name} model, not an RGB image model")
        model = descriptor.model.eval().requires_grad_(False)
        return cls(path, model, descriptor.architecture.name, int(descriptor.scale),
                   sum(p.numel() for p in model.parameters()), device)

    def check_scale(self, factors: tuple[int, int]) -> None:
        """The model's scale must be the operator's spatial factor (height, width)."""
        if factors != (self.scale, self.scale):
            h, w = factors
            said_factor = f"{h}x" if h == w else f"{w}x{h}"
            raise UserError(f"{said('upscaler', str(self.path))}: a {self.scale}x model, and the input is {said_factor} "
                            f"smaller than the output; give a {said_factor} model")

    @torch.no_grad()
    def __call__(self, frames: Tensor) -> Tensor:
        t0 = time.process_time()
        out = torch.cat([self._one(f[None]) for f in frames])
        self.seconds += time.process_time() - t0
        self.frames += frames.shape[0]
        return out

    def _one(self, frame: Tensor) -> Tensor:
        """One (1, 3, h, w) frame in [-1, 1], in tiles of ``tile`` input pixels a side read with a margin."""
        x = frame.to(self.device, self._dtype).add(1).div(2)
        _, _, h, w = x.shape
        s = self.scale
        if h <= self.tile and w <= self.tile:
            return self.model(x).clamp(0, 1).mul(2).sub(1).to(frame)
        out = torch.empty(1, 3, h * s, w * s, device=self.device, dtype=self._dtype)
        for top in range(0, h, self.tile):
            for left in range(0, w, self.tile):
                bottom, right = min(top + self.tile, h), min(left + self.tile, w)
                t0, l0 = max(top - MARGIN, 0), max(left - MARGIN, 0)
                t1, l1 = min(bottom + MARGIN, h), min(right + MARGIN, w)
                part = self.model(x[:, :, t0:t1, l0:l1])
                out[:, :, top * s:bottom * s, left * s:right * s] = \
                    part[:, :, (top - t0) * s:(bottom - t0) * s, (left - l0) * s:(right - l0) * s]
        return out.clamp(0, 1).mul(2).sub(1).to(frame)

    def facts(self) -> dict:
        return {"file": str(self.path), "architecture": self.architecture, "scale": self.scale,
                "parameters": self.parameters, "frames": self.frames,
                "cpu_seconds": round(self.seconds, 3),
                "cpu_seconds_per_frame": round(self.seconds / self.frames, 4) if self.frames else None}
